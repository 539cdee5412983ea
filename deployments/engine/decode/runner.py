"""BatchRunner: carries out one ``Step`` on the model (vLLM's model runner).

Order within a step: rows in ``step.leaves`` leave the batch cache; one decode forward feeds every
running row its last token (``input_ids``/``position_ids`` ``[B, 1]``, per-row positions, row
padding as an attention mask ``[B, length + 1]`` or as kvpress masked keys, per-head padding as
kvpress masked key indices); then the joiners feed their questions as extend forwards: joiners
of similar question lengths (``budget.extend_groups``) share one forward over a fresh block of
their caches (questions right-padded, causal attention keeps a row's padding out of its real
tokens, and the padding columns become row padding afterwards), which then merges into the batch
cache in one copy. Every row is sampled by its own ``TokenSampler`` on its own ``[vocab]`` float32
logits and detokenized by its own ``StreamingDetokenizer``.

Errors: a joiner whose extend fails, or a row whose sampling fails, gets ``RowOutput(error=...)``
alone (a shared extend that raises is retried row by row). An exception from the decode forward
propagates (the loop fails that step's rows and ``reset``s the batch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from deployments.engine.decode import budget, fake_keys
from deployments.engine.decode.batch_cache import BatchCache
from deployments.engine.decode.step import RowOutput, Step
from deployments.engine.detokenizer import StreamingDetokenizer
from deployments.engine.sampling import TokenChoice, TokenSampler
from kvpool.compressed_kv import CompressedKV

log = logging.getLogger(__name__)


@dataclass
class RowWork:
    """The runtime side of one generation. ``ckv``: its cache (codec "none", never mutated);
    ``input_ids``: the question fed at join; ``next_position``: RoPE position of the next token fed."""

    request_id: str
    ckv: CompressedKV
    input_ids: list[int]
    sampler: TokenSampler
    detok: StreamingDetokenizer
    next_position: int
    last_token: int | None = None
    produced: int = 0
    error: BaseException | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RowResult:
    """A row's token this step (``choice``/``text``, for its stream) and ``output`` for the scheduler."""

    output: RowOutput
    choice: TokenChoice | None = None
    text: str = ""


class BatchRunner:
    def __init__(self, engine, row_padding: str = "attention_mask"):
        self.engine = engine
        self.row_padding = row_padding
        self.cache = BatchCache()
        self.extend_forwards = 0  # joiners' extend forwards so far (the loop thread counts them per step)
        fake_keys.install()

    def reset(self) -> None:
        self.cache = BatchCache()

    def run(self, step: Step, work: dict[str, RowWork]) -> dict[str, RowResult]:
        self.cache.leave(step.leaves)
        results: dict[str, RowResult] = {}
        if step.decode:
            if set(step.decode) != set(self.cache.row_ids):
                raise RuntimeError(f"batch rows {self.cache.row_ids} differ from the step's {list(step.decode)}")
            rows = [work[r] for r in self.cache.row_ids]
            logits = self._forward(self.cache, rows, [[w.last_token] for w in rows])
            for w, row_logits in zip(rows, logits):
                results[w.request_id] = self._sample(w, row_logits)
        if step.joins:
            results.update(self._join([work[r] for r in step.joins]))
        return results

    # ---- forwards ------------------------------------------------------------------------------
    def _forward(self, cache: BatchCache, rows: list[RowWork], tokens: list[list[int]]) -> torch.Tensor:
        """Feed row ``b`` its ``tokens[b]`` (right-padded to the longest; a decode step feeds one
        each) at its own positions, in one forward appending to ``cache``; returns ``[B, vocab]``
        logits after each row's last real token and advances the rows' positions.

        Row padding: a decode step (one token per row) follows ``row_padding``; an extend (several)
        uses the attention mask when the block has row padding (transformers builds a 4D causal mask
        for it anyway, so kvpress fake keys would only add work) and none otherwise - a block of one
        row is then exactly the one-row path's forward. Padding tokens repeat a row's last position."""
        engine, device = self.engine, self.engine.device
        width = max(len(t) for t in tokens)
        ids = torch.tensor([t + t[-1:] * (width - len(t)) for t in tokens], device=device)
        starts = torch.tensor([[w.next_position] for w in rows], device=device)
        lasts = starts + torch.tensor([[len(t) - 1] for t in tokens], device=device)
        positions = torch.minimum(starts + torch.arange(width, device=device), lasts)
        ends = sorted({len(t) - 1 for t in tokens})
        keep: int | torch.Tensor = 1 if ends == [width - 1] else torch.tensor(ends, device=device)
        length = cache.length
        with engine._lock, torch.inference_mode():
            row_padded = cache.has_row_padding()
            mask = cache.attention_mask(width)
            by_keys = width == 1 and self.row_padding == "masked_keys"
            if by_keys or not row_padded:  # no mask: SDPA keeps its GQA kernel (no repeat_kv copy of the cache)
                mask = None
            gaps = cache.row_gaps() if by_keys and row_padded else None
            for module, masked in zip(engine._layers, cache.masked_key_indices()):
                module.masked_key_indices = masked  # per-head padding: kvpress's patch
                module.kvfleet_row_gaps = gaps      # row padding: fake_keys, as column ranges
            try:
                out = engine.model(input_ids=ids, past_key_values=cache.model_cache(), position_ids=positions,
                                   attention_mask=mask, logits_to_keep=keep)
            finally:
                for module in engine._layers:
                    module.masked_key_indices = module.kvfleet_row_gaps = None
        for b, (w, t) in enumerate(zip(rows, tokens)):
            if len(t) < width:
                cache.release_columns(b, length + len(t), length + width)
            w.next_position += len(t)
        if isinstance(keep, int):
            return out.logits[:, -1]
        picks = torch.tensor([ends.index(len(t) - 1) for t in tokens], device=out.logits.device)
        return out.logits[torch.arange(len(rows), device=out.logits.device), picks]

    def _join(self, joiners: list[RowWork]) -> dict[str, RowResult]:
        """Joiners' questions as extend forwards (``budget.extend_groups``: similar lengths share
        one), each over a fresh block of its rows' caches; then sampling, and every block enters
        the batch in one merge. A shared forward that raises is retried row by row (a forward has
        no effect on the rows until it returns), so a bad row fails alone. A failing merge
        propagates: the loop fails the step and restarts the batch."""
        results: dict[str, RowResult] = {}
        ready: list[tuple[RowWork, tuple]] = []
        for w in joiners:
            try:
                ready.append((w, self._row_kv(w)))
            except Exception as exc:  # noqa: BLE001 - the joiner fails alone; the batch goes on
                results[w.request_id] = _failed(w, exc)
        done: list[tuple[BatchCache, list[RowWork], torch.Tensor]] = []
        for group in budget.extend_groups([len(w.input_ids) for w, _ in ready]):
            members = [ready[i] for i in group]
            try:
                done.append(self._extend(members))
                continue
            except Exception as exc:  # noqa: BLE001
                if len(members) == 1:
                    results[members[0][0].request_id] = _failed(members[0][0], exc)
                    continue
                log.warning("batched extend of %d joiners failed (%s); retrying them one by one", len(members), exc)
            for member in members:
                try:
                    done.append(self._extend([member]))
                except Exception as exc:  # noqa: BLE001
                    results[member[0].request_id] = _failed(member[0], exc)
        joined = BatchCache()
        for block, rows, logits in done:
            sampled = {w.request_id: self._sample(w, row_logits) for w, row_logits in zip(rows, logits)}
            block.leave([r for r, res in sampled.items() if res.output.error is not None])
            joined.merge(block)
            results.update(sampled)
        self.cache.merge(joined)
        return results

    def _row_kv(self, w: RowWork) -> tuple:
        """The joiner's cache as ``from_rows`` takes it: per-layer keys, values, head padding."""
        if not w.input_ids:
            raise ValueError("a generation must feed at least one token after its cache")
        ckv = w.ckv if w.ckv.device == self.engine.device else w.ckv.to(self.engine.device)
        pairs, pads = ckv.padded_layers()
        return [k for k, _ in pairs], [v for _, v in pairs], pads

    def _extend(self, members: list[tuple[RowWork, tuple]]) -> tuple[BatchCache, list[RowWork], torch.Tensor]:
        """One extend forward over a fresh block of ``members``; returns the block, its rows and
        their ``[B, vocab]`` logits."""
        rows = [w for w, _ in members]
        tokens = [w.input_ids for w in rows]
        block = BatchCache.from_rows([w.request_id for w in rows], [kv[0] for _, kv in members],
                                     [kv[1] for _, kv in members], [kv[2] for _, kv in members],
                                     spare_columns=max(len(t) for t in tokens) + 1)
        logits = self._forward(block, rows, tokens)
        self.extend_forwards += 1
        return block, rows, logits

    # ---- per-row sampling ----------------------------------------------------------------------
    def _sample(self, w: RowWork, logits: torch.Tensor) -> RowResult:
        try:
            choice = w.sampler(logits.float())
            text = w.detok.push(choice.token_id)
        except Exception as exc:  # noqa: BLE001 - a row whose sampling fails fails alone
            return _failed(w, exc)
        w.last_token = choice.token_id
        w.produced += 1
        out = RowOutput(choice.token_id, choice.token_id in self.engine.eos_ids, w.detok.stopped_by is not None)
        return RowResult(out, choice, text)


def _failed(w: RowWork, exc: BaseException) -> RowResult:
    w.error = exc
    return RowResult(RowOutput(error=f"{type(exc).__name__}: {exc}"))
