"""BatchRunner: carries out one ``Step`` on the model (vLLM's model runner).

Order within a step: rows in ``step.leaves`` leave the batch cache; one decode forward feeds every
``step.decode`` row its last token (``input_ids``/``position_ids`` ``[B, 1]``, per-row positions,
attention mask ``[B, length + 1]`` over each row's own columns, per-head padding as kvpress masked
key indices); then each joiner feeds its question as an extend forward on its own copy of its
cache - exactly the one-row path's first forward, so its first token matches it - and joins the
batch cache. Every row is sampled by its own ``TokenSampler`` on its own ``[vocab]`` float32 logits
and detokenized by its own ``StreamingDetokenizer``.

Errors: a joiner whose extend fails, or a row whose sampling fails, gets ``RowOutput(error=...)``
alone. An exception from the batched forward propagates (the loop fails that step's rows and
``reset``s the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from deployments.engine.decode.batch_cache import BatchCache
from deployments.engine.decode.step import RowOutput, Step
from deployments.engine.detokenizer import StreamingDetokenizer
from deployments.engine.sampling import TokenChoice, TokenSampler
from kvpool.compressed_kv import CompressedKV


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

    def reset(self) -> None:
        self.cache = BatchCache()

    def run(self, step: Step, work: dict[str, RowWork]) -> dict[str, RowResult]:
        self.cache.leave(step.leaves)
        results: dict[str, RowResult] = {}
        if step.decode:
            if list(step.decode) != self.cache.row_ids:
                raise RuntimeError(f"batch rows {self.cache.row_ids} differ from the step's {list(step.decode)}")
            logits = self._decode_forward([work[r] for r in step.decode])
            for i, request_id in enumerate(step.decode):
                results[request_id] = self._sample(work[request_id], logits[i])
        for request_id in step.joins:
            results[request_id] = self._join(work[request_id])
        return results

    # ---- forwards ------------------------------------------------------------------------------
    def _decode_forward(self, rows: list[RowWork]) -> torch.Tensor:
        engine, device = self.engine, self.engine.device
        ids = torch.tensor([[w.last_token] for w in rows], device=device)
        positions = torch.tensor([[w.next_position] for w in rows], device=device)
        with engine._lock, torch.inference_mode():
            mask = self.cache.attention_mask(1)
            by_keys = self.row_padding == "masked_keys"
            if by_keys:  # no mask: SDPA keeps its GQA kernel (no repeat_kv copy of the cache)
                mask = None
            for module, masked in zip(engine._layers, self.cache.masked_key_indices(row_padding=by_keys)):
                module.masked_key_indices = masked
            try:
                out = engine.model(input_ids=ids, past_key_values=self.cache.model_cache(), position_ids=positions,
                                   attention_mask=mask, logits_to_keep=1)
            finally:
                for module in engine._layers:
                    module.masked_key_indices = None
        for w in rows:
            w.next_position += 1
        return out.logits[:, -1]

    def _join(self, w: RowWork) -> RowResult:
        """Extend forward of the joiner's question on its own cache copy, then join the batch."""
        engine = self.engine
        try:
            cache, masks = engine._working_cache(w.ckv)
            ids = torch.tensor([w.input_ids], device=engine.device)
            positions = torch.arange(w.next_position, w.next_position + len(w.input_ids),
                                     device=engine.device).unsqueeze(0)
            logits = engine._forward(ids, positions, cache, masks, None)
        except Exception as exc:  # noqa: BLE001 - the joiner fails alone; the batch goes on
            w.error = exc
            return RowResult(RowOutput(error=f"{type(exc).__name__}: {exc}"))
        w.next_position += len(w.input_ids)
        result = self._sample(w, logits)
        if result.output.error is None:
            n = cache.layers[0].keys.shape[2]
            pads = [_pad_from_indices(m, cache.layers[i].keys.shape[1], n) for i, m in enumerate(masks)]
            self.cache.join(w.request_id, [layer.keys for layer in cache.layers],
                            [layer.values for layer in cache.layers], pads)
        return result

    # ---- per-row sampling ----------------------------------------------------------------------
    def _sample(self, w: RowWork, logits: torch.Tensor) -> RowResult:
        try:
            choice = w.sampler(logits.float())
            text = w.detok.push(choice.token_id)
        except Exception as exc:  # noqa: BLE001 - a row whose sampling fails fails alone
            w.error = exc
            return RowResult(RowOutput(error=f"{type(exc).__name__}: {exc}"))
        w.last_token = choice.token_id
        w.produced += 1
        out = RowOutput(choice.token_id, choice.token_id in self.engine.eos_ids, w.detok.stopped_by is not None)
        return RowResult(out, choice, text)


def _pad_from_indices(masked: tuple | None, heads: int, columns: int) -> torch.Tensor | None:
    """kvpress ``(batch, head, seq)`` indices of one row -> ``[heads, columns]`` bool head padding."""
    if masked is None:
        return None
    pad = torch.zeros((heads, columns), dtype=torch.bool, device=masked[1].device)
    pad[masked[1], masked[2]] = True
    return pad
