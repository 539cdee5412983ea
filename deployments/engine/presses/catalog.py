"""The presses kvfleet offers: kvpress 0.5.5 presses that run on CPU with the embedded model.

Each entry says how the press is built from a PressSpec and what it means for serving:

- ``query_agnostic``: the kept set does not depend on text appended after the context, so a
  stored cache can serve any question and be reused as a compressed prefix. Presses that score
  with attention from the *end* of the prefilled text (SnapKV, TOVA, ObservedAttention, ...)
  are query-aware: compressing "context + question" keeps what that question needs.
- ``per_head``: kvpress masks pruned entries per head instead of dropping them; kvfleet stores
  these caches ragged so the bytes really shrink (see kvpool.compressed_kv).
- ``inner``: the wrapper's field(s) holding inner presses (``press``, ``base_press``, ``presses``,
  or the pair ``prefilling_press,decoding_press``), filled from ``PressSpec.presses`` in order.
- ``phase``: "prefill" presses prune the context once; "decoding" presses keep a long
  generation's cache bounded while it decodes.

Left out, with the reason: presses that download weights or datasets from a hub at run time
(ExpectedAttentionStats, KVzap, DuoAttention, QFilter, FastKVzip), PyramidKV (per-layer budgets
give layers of different lengths, which transformers' attention mask rejects: shape error),
DMS (needs a model trained for it), Finch (needs a delimiter token in the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import kvpress


@dataclass(frozen=True)
class PressEntry:
    name: str
    press_class: type
    query_agnostic: bool | None  # None: inherited from the inner presses
    per_head: bool = False
    inner: Literal["press", "base_press", "presses", "prefilling_press,decoding_press"] | None = None
    phase: Literal["prefill", "decoding", "both"] = "prefill"
    attn_implementation: Literal["sdpa", "eager"] | None = None  # required implementation, if any
    summary: str = ""
    # arguments that name files: a request gives a relative name, resolved under the operator's
    # presses.artifact_dir (presses/policy.py artifact_path); never a path, URL or hub id
    artifact_args: tuple[str, ...] = ()


def _entries() -> list[PressEntry]:
    e = PressEntry
    return [
        e("knorm", kvpress.KnormPress, True, summary="drop keys with the largest L2 norm"),
        e("streaming_llm", kvpress.StreamingLLMPress, True, summary="keep sink tokens + the most recent window"),
        e("random", kvpress.RandomPress, True, summary="drop random tokens (a baseline)"),
        e("keydiff", kvpress.KeyDiffPress, True, summary="keep keys least similar to the mean key"),
        e("lagkv", kvpress.LagKVPress, True, summary="score by lagged key/value statistics"),
        e("expected_attention", kvpress.ExpectedAttentionPress, True,
          summary="score by attention expected from statistics of future queries"),
        e("cur", kvpress.CURPress, True, summary="CUR-decomposition leverage scores of keys/values"),
        e("leverage", kvpress.LeverageScorePress, True, summary="approximate leverage scores of keys"),
        e("compactor", kvpress.CompactorPress, True, summary="leverage scores + attention, sketched"),
        e("kvzip", kvpress.KVzipPress, True, per_head=True,
          summary="score by context reconstruction (query-agnostic by design, 2x prefill cost)"),
        e("snapkv", kvpress.SnapKVPress, False, summary="attention of the last window of the prefilled text"),
        e("tova", kvpress.TOVAPress, False, summary="attention of the last token"),
        e("observed_attention", kvpress.ObservedAttentionPress, False, attn_implementation="eager",
          summary="attention observed during prefill (needs eager attention)"),
        e("critical_kv", kvpress.CriticalKVPress, None, inner="press",
          summary="refine an inner scorer with value-norm projections"),
        e("adakv", kvpress.AdaKVPress, None, per_head=True, inner="press",
          summary="head-adaptive budget over an inner scorer press"),
        e("critical_adakv", kvpress.CriticalAdaKVPress, None, per_head=True, inner="press",
          summary="CriticalKV with head-adaptive budgets"),
        e("block", kvpress.BlockPress, None, inner="press", summary="apply an inner scorer block by block"),
        e("chunk", kvpress.ChunkPress, None, inner="press", summary="apply an inner scorer per fixed chunk"),
        e("chunkkv", kvpress.ChunkKVPress, None, inner="press", summary="keep whole chunks by inner scores"),
        e("key_rerotation", kvpress.KeyRerotationPress, None, inner="press",
          summary="prune with an inner scorer, then re-rotate keys to contiguous positions"),
        e("composed", kvpress.ComposedPress, None, inner="presses", summary="apply several presses in turn"),
        e("per_layer", kvpress.PerLayerCompressionPress, None, inner="press",
          summary="an inner press with one ratio per layer (kwargs.compression_ratios)"),
        e("decoding", kvpress.DecodingPress, True, inner="base_press", phase="decoding",
          summary="compress during decoding every compression_interval steps to target_size"),
        e("prefill_decoding", kvpress.PrefillDecodingPress, None, inner="prefilling_press,decoding_press",
          phase="both", summary="presses[0] prunes the context, presses[1] (a decoding press) bounds generation"),
    ]


CATALOG: dict[str, PressEntry] = {entry.name: entry for entry in _entries()}
NO_PRESS_NAME = "none"


def valid_names() -> list[str]:
    return [NO_PRESS_NAME, *sorted(CATALOG)]
