"""Plain data exchanged by the scheduler and the runner (vLLM's ``SchedulerOutput``): no tensors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One iteration: ``leaves`` drop out of the batch first, then every row of ``decode`` feeds its
    last token in one batched forward, then each of ``joins`` feeds its question (extend) and enters
    the batch. Each of ``decode`` and ``joins`` samples exactly one token this step."""

    leaves: tuple[str, ...] = ()
    decode: tuple[str, ...] = ()
    joins: tuple[str, ...] = ()

    @property
    def rows(self) -> tuple[str, ...]:
        return self.decode + self.joins

    @property
    def empty(self) -> bool:
        return not (self.leaves or self.decode or self.joins)


@dataclass(frozen=True)
class RowOutput:
    """One row's result of a step: the sampled token and what it means for stopping, or an error."""

    token_id: int | None = None
    is_eos: bool = False
    hit_stop: bool = False  # a stop string or one of the request's stop_token_ids
    error: str | None = None


@dataclass(frozen=True)
class RowEvent:
    """The scheduler's verdict on a row after a step: finished (with a reason) or not."""

    request_id: str
    finish_reason: str | None = None
