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

- ``needs``: presses that score with a trained artifact (KVzap, Q-Filters, DuoAttention, Fast
  KVzip, ExpectedAttentionStats, LU-KV) take it as an argument (``required``) naming a file or
  directory under the operator's ``presses.artifact_dir`` (``artifact_args``, presses/policy.py);
  without it the spec is a 422 that says what file is needed. kvpress itself would download
  them from a hub; kvfleet never downloads at run time (see artifacts.py).
- ``servable``: False for a press listed only to say why it cannot run here (RestoreKV loads a
  LoRA adapter into the model, which every session of a replica shares).

Every press class kvpress 0.5.5 exports is here (``BasePress`` and ``ScorerPress`` are the
abstract bases a custom press ``package.module:ClassName`` derives from).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import kvpress

from deployments.engine.presses import artifacts
from deployments.engine.presses.kvzip_blocked import BlockedKVzipPress
from deployments.engine.presses.moe_router import MoERouterPress
from deployments.engine.presses.non_causal_grouped import GroupedNonCausalAttnPress
from deployments.engine.presses.seeded import SeededCompactorPress, SeededCURPress, SeededLeverageScorePress
from deployments.engine.presses.window_finch import WindowFinchPress


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
    required: tuple[str, ...] = ()  # arguments that must be given (e.g. local artifact names)
    needs: str | None = None  # what the required arguments must point to
    servable: bool = True
    rerotates: bool = False  # keys re-rotated to contiguous positions: next position = kept length
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
        e("cur", SeededCURPress, True, summary="CUR-decomposition leverage scores of keys/values (a random "
                                                "sketch is drawn from a fixed seed: seeded.py)"),
        e("leverage", SeededLeverageScorePress, True,
          summary="approximate leverage scores of keys (Gaussian sketch from a fixed seed: seeded.py)"),
        e("compactor", SeededCompactorPress, True,
          summary="leverage scores + chunked non-causal attention (sketch from a fixed seed: seeded.py)"),
        e("kvzip", BlockedKVzipPress, True, per_head=True,
          summary="score by context reconstruction (query-agnostic by design, 2x prefill cost); kvpress's "
                  "KVzipPress with its scoring in float32 query blocks (kvzip_blocked.py)"),
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
        e("key_rerotation", kvpress.KeyRerotationPress, None, inner="press", rerotates=True,
          summary="prune with an inner scorer, then re-rotate keys to contiguous positions"),
        e("composed", kvpress.ComposedPress, None, inner="presses", summary="apply several presses in turn"),
        e("per_layer", kvpress.PerLayerCompressionPress, None, inner="press",
          summary="an inner press with one ratio per layer (kwargs.compression_ratios)"),
        e("decoding", kvpress.DecodingPress, True, inner="base_press", phase="decoding",
          summary="compress during decoding every compression_interval steps to target_size"),
        e("prefill_decoding", kvpress.PrefillDecodingPress, None, inner="prefilling_press,decoding_press",
          phase="both", summary="presses[0] prunes the context, presses[1] (a decoding press) bounds generation"),
        *_entries_added_for_kvpress_055(),
        e("moe_router", MoERouterPress, True, artifact_args=("router_path",),
          summary="trained per-layer, per-head router over kvpress scorers (knorm, keydiff, expected_attention, "
                  "streaming_llm); router_type pikv|topk_balanced|adaptive|eplb|hierarchical; dropout and "
                  "aux_loss_weight are accepted and inert; cache_aware raises the ratio with KV pool pressure "
                  "(docs/presses.md)"),
    ]


def _entries_added_for_kvpress_055() -> list[PressEntry]:
    e = PressEntry
    return [
        e("pyramidkv", kvpress.PyramidKVPress, False,
          summary="SnapKV scores with a pyramid of per-layer budgets (more tokens in lower layers)"),
        e("simlayerkv", kvpress.SimLayerKVPress, False,
          summary="lazy layers (attention of the last tokens on sinks + recent window) keep only those; "
                  "ratio follows from lazy_threshold"),
        e("think", kvpress.ThinKPress, False,
          summary="prune key channels (key_channel_compression_ratio), not tokens; channels are zeroed, "
                  "stored bytes do not shrink"),
        e("finch", WindowFinchPress, False, rerotates=True,
          summary="FINCH: attention of the last window_tokens (no delimiter), chunked top-k, re-rotated keys"),
        e("kvgrad", kvpress.KVgradPress, True, per_head=True,
          summary="KVzip-style context replay scored by gradients (3-4x prefill cost)"),
        e("non_causal_attn", GroupedNonCausalAttnPress, True,
          summary="non-causal attention within chunks of the context"),
        e("kvcompose", kvpress.KVComposePress, True,
          summary="composite tokens from aggregated attention (structured); ~2x KV memory during prefill"),
        e("cap", kvpress.CapPress, True, summary="expected attention capped by a temperature tau"),
        e("merging", kvpress.MergingPress, None, inner="press",
          summary="merge pruned KV pairs into similar kept ones (inner: a scorer press)"),
        e("entropy_gated_chunkkv", kvpress.EntropyGatedChunkKVPress, None, inner="press",
          summary="ChunkKV with shorter chunks where attention entropy is low"),
        e("dms", kvpress.DMSPress, None, per_head=True, inner="press", required=("threshold",),
          needs="a score threshold for the inner scorer (tokens scoring below it are evicted)",
          summary="Dynamic Memory Sparsification (dense-prefill, no trained evictor): evict below a threshold "
                  "outside a sliding window"),
        e("cam", kvpress.CAMPress, True, inner="base_press", phase="decoding",
          summary="decoding press that merges evicted values into kept ones (CaM)"),
        e("compression_ratio_decoding", kvpress.CompressionRatioDecodingPress, True, inner="base_press",
          phase="decoding", summary="decoding press that keeps target_compression_ratio of the generated cache"),
        e("kvzap", artifacts.LocalKVzapPress, True, required=("model_path",),
          artifact_args=("model_path",),
          needs="model_path: a local directory with a trained KVzap scorer (KVzapModel.save_pretrained, "
                "e.g. a copy of nvidia/KVzap-mlp-<model>)",
          summary="KVzip approximated by a small surrogate model on hidden states"),
        e("qfilter", artifacts.LocalQFilterPress, True, required=("filters_path",),
          artifact_args=("filters_path",),
          needs="filters_path: a local directory with trained Q-Filters for this model "
                "(QFilters.save_pretrained, e.g. a copy of nthngdy/<model>_qfilt)",
          summary="score keys by their projection on learned query filters"),
        e("duo_attention", artifacts.LocalDuoAttentionPress, True, per_head=True, required=("pattern_path",),
          artifact_args=("pattern_path",),
          needs="pattern_path: a local directory with DuoAttention's config.json and full_attention_heads.tsv "
                "for this model",
          summary="streaming heads keep sinks + recent tokens (head_compression_ratio), retrieval heads all"),
        e("fastkvzip", artifacts.LocalFastKVzipPress, True, per_head=True, required=("gates_path",),
          artifact_args=("gates_path",),
          needs="gates_path: a local Fast KVzip gates file (q<groups>_dim16_sink16.pt) trained for this model",
          summary="KVzip scores predicted by trained gates (one prefill)"),
        e("expected_attention_stats", artifacts.LocalExpectedAttentionStatsPress, True, required=("stats_folder",),
          artifact_args=("stats_folder",),
          needs="stats_folder: a local directory of query statistics (ExpectedAttentionStats.save_pretrained) "
                "for this model",
          summary="expected attention with precomputed query statistics"),
        e("lukv", artifacts.LocalLUKVPress, True, per_head=True, required=("budget_curve_path",),
          artifact_args=("budget_curve_path",),
          needs="budget_curve_path: a local .npy budget curve [99, layers, kv_heads] for this model and inner press",
          summary="head-wise budgets from a precomputed curve around ExpectedAttention"),
        e("restorekv", kvpress.RestoreKVPress, True, per_head=True, servable=False,
          needs="a RestoreKV LoRA adapter loaded into the model: not servable, because every session of a "
                "replica shares one model",
          summary="KVzip with learned restore tokens"),
    ]



CATALOG: dict[str, PressEntry] = {entry.name: entry for entry in _entries()}
# other names a spec may use for a catalog press (PressSpec lower-cases names): PiKVPress's class name
ALIASES: dict[str, str] = {"moerouterpress": "moe_router"}
NO_PRESS_NAME = "none"


def valid_names() -> list[str]:
    return [NO_PRESS_NAME, *sorted(CATALOG)]
