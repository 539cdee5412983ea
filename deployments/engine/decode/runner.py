"""BatchRunner: carries out one ``Step`` on the model (vLLM's model runner).

A step is ONE packed forward (``packed.PackedStep``): every decoding row feeds its last token and
every joiner its question, as one ``[1, N]`` sequence at per-row positions (each session continues
at its own ``next_position``); the linear layers run once over all N tokens and attention runs per
row on the row's own ``RowKV`` buffers, so rows of different lengths and per-head layouts share
the forward without padding and a joiner's question (its extend / prefill chunk) rides along with
the decoding rows. Logits are taken after each row's last token (``[B, vocab]``); every row is
sampled by its own ``TokenSampler`` on its own float32 logits and detokenized by its own
``StreamingDetokenizer``.

What a join or leave costs: a joiner's stored cache is copied once into its own buffers (with room
for its question and up to ``SPARE_TOKENS`` generated tokens; beyond that the row grows its own
buffers), as the one-request path copies it too; a leave drops the row's buffers. No other row
is touched either way, and a decode step copies nothing.

Errors: a joiner whose cache cannot be prepared, or a row whose sampling fails, gets
``RowOutput(error=...)`` alone. If the packed forward raises, every row is retried alone (a
forward changes no row until it returns), so only a bad row fails (e.g. a joiner's out-of-range
token, or a row whose per-head fake keys cannot be found); the others go on. Only an exception
outside the forwards propagates (the loop then fails that step's rows and ``reset``s the batch).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import torch

from deployments.engine.decode import packed
from deployments.engine.decode.row_kv import RowKV
from deployments.engine.decode.step import RowOutput, Step
from deployments.engine.detokenizer import StreamingDetokenizer
from deployments.engine.sampling import TokenChoice, TokenSampler
from kvpool.compressed_kv import CompressedKV

log = logging.getLogger(__name__)


@dataclass
class RowWork:
    """The runtime side of one generation. ``ckv``: its stored cache (codec "none", never mutated);
    ``input_ids``: the question fed at join; ``next_position``: RoPE position of the next token fed;
    ``max_tokens``: tokens it may sample (up to ``SPARE_TOKENS`` of them reserved at join);
    ``stop_token_ids``: vLLM's tokens that end it (EOS is the scheduler's, which knows ``ignore_eos``)."""

    request_id: str
    ckv: CompressedKV
    input_ids: list[int]
    sampler: TokenSampler
    detok: StreamingDetokenizer
    next_position: int
    max_tokens: int = 16
    stop_token_ids: frozenset[int] = frozenset()
    last_token: int | None = None
    produced: int = 0
    error: BaseException | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RowResult:
    """A row's token this step (``choice``/``text``, for its stream) and ``output`` for the scheduler."""

    output: RowOutput
    choice: TokenChoice | None = None
    text: str = ""


SPARE_TOKENS = 256  # generated tokens reserved at join; a longer generation doubles its own buffers
Feed = tuple[RowWork, RowKV, list[int]]  # a row, its KV, the tokens it feeds this step


class BatchRunner:
    def __init__(self, engine):
        self.engine = engine
        self.rows: dict[str, RowKV] = {}  # the running rows' KV caches
        self.extend_forwards = 0  # forwards that fed joiners' questions (the loop counts them per step)
        packed.install()

    def reset(self) -> None:
        self.rows = {}

    def __len__(self) -> int:
        return len(self.rows)

    def run(self, step: Step, work: dict[str, RowWork]) -> dict[str, RowResult]:
        for request_id in step.leaves:
            self.rows.pop(request_id, None)
        if set(step.decode) != set(self.rows):
            raise RuntimeError(f"batch rows {list(self.rows)} differ from the step's {list(step.decode)}")
        results: dict[str, RowResult] = {}
        decoding: list[Feed] = [(work[r], self.rows[r], [work[r].last_token]) for r in step.decode]
        joining: list[Feed] = []
        for request_id in step.joins:
            w = work[request_id]
            try:
                joining.append((w, self._row_kv(w), list(w.input_ids)))
            except Exception as exc:  # noqa: BLE001 - the joiner fails alone; the batch goes on
                results[request_id] = _failed(w, exc)
        for feeds, logits in self._forwards(decoding, joining, results):
            for (w, kv, _), row_logits in zip(feeds, logits):
                result = self._sample(w, row_logits)
                results[w.request_id] = result
                if result.output.error is None and w.request_id not in self.rows:
                    self.rows[w.request_id] = kv
        return results

    # ---- forwards ------------------------------------------------------------------------------
    def _forwards(self, decoding: list[Feed], joining: list[Feed],
                  results: dict[str, RowResult]) -> list[tuple[list[Feed], torch.Tensor]]:
        """One packed forward of every row; if it raises, every row again alone, and a row that
        fails alone too gets its error in ``results`` (a forward changes no row until it returns,
        so the retry feeds each row exactly what it fed before)."""
        feeds = decoding + joining
        if not feeds:
            return []
        try:
            done = [(feeds, self._forward(feeds))]
            self.extend_forwards += bool(joining)
            return done
        except Exception as exc:  # noqa: BLE001
            if len(feeds) > 1:
                log.warning("packed forward of %d rows (%d joining) failed (%s); retrying them one by one",
                            len(feeds), len(joining), exc)
            else:
                results[feeds[0][0].request_id] = _failed(feeds[0][0], exc)
                return []
        done = []
        for feed in feeds:
            try:
                done.append(([feed], self._forward([feed])))
                self.extend_forwards += feed in joining
            except Exception as exc:  # noqa: BLE001
                results[feed[0].request_id] = _failed(feed[0], exc)
        return done

    def _forward(self, feeds: list[Feed]) -> torch.Tensor:
        """Feed each row its tokens at its own positions, in one packed forward appending to the
        rows' caches; returns ``[B, vocab]`` logits after each row's last token and advances the
        rows' positions."""
        device = self.engine.device
        tokens = [t for _, _, t in feeds]
        counts = [len(t) for t in tokens]
        ids = torch.tensor([list(itertools.chain.from_iterable(tokens))], device=device)
        positions = torch.tensor([[p for (w, _, t) in feeds for p in range(w.next_position, w.next_position + len(t))]],
                                 device=device)
        step = packed.PackedStep([kv for _, kv, _ in feeds], counts)
        ends = torch.tensor([stop - 1 for _, stop in step.spans], device=device)
        with self.engine._lock, torch.inference_mode():
            out = self.engine.model(input_ids=ids, past_key_values=step, position_ids=positions,
                                    cache_position=torch.arange(step.tokens, device=device),
                                    attention_mask=packed.packed_mask(device), logits_to_keep=ends,
                                    kvfleet_packed=step)
        step.commit()
        for w, count in zip((w for w, _, _ in feeds), counts):
            w.next_position += count
        return out.logits[0].float()  # upcast once per step: sampling, logprobs, grammars work in float32

    def _row_kv(self, w: RowWork) -> RowKV:
        """The joiner's own KV buffers: its stored cache (moved to the model's device, per-head
        layouts padded as the one-request path pads them) and room for what it will feed."""
        if not w.input_ids:
            raise ValueError("a generation must feed at least one token after its cache")
        spare = len(w.input_ids) + min(w.max_tokens, SPARE_TOKENS)
        pairs, masked = self.engine.decode_layers(w.ckv, spare=spare)  # one copy, into the row's own buffers
        return RowKV.adopt([k for k, _ in pairs], [v for _, v in pairs], masked, spare=spare)

    # ---- per-row sampling ----------------------------------------------------------------------
    def _sample(self, w: RowWork, logits: torch.Tensor) -> RowResult:
        try:
            choice = w.sampler(logits)
            text = w.detok.push(choice.token_id)
        except Exception as exc:  # noqa: BLE001 - a row whose sampling fails fails alone
            return _failed(w, exc)
        w.last_token = choice.token_id
        w.produced += 1
        stopped = w.detok.stopped_by is not None or choice.token_id in w.stop_token_ids
        out = RowOutput(choice.token_id, choice.token_id in self.engine.eos_ids, stopped)
        return RowResult(out, choice, text)


def _failed(w: RowWork, exc: BaseException) -> RowResult:
    w.error = exc
    return RowResult(RowOutput(error=f"{type(exc).__name__}: {exc}"))
