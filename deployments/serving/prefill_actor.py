"""PrefillActor: reads a context once under a press and returns the CompressedKV.

A plain Ray actor (not a Serve deployment), owned by its Replica and scheduled on the replica's
node. Its result goes straight to the replica's DecodeActor as an object reference, so the cache
moves prefill -> decode through the node's shared-memory object store without passing through
the replica process.
"""

from __future__ import annotations

from typing import Any

import ray

from deployments.engine.model_loader import ModelConfig
from deployments.engine.presses import install_press_policy
from deployments.serving import start_priority
from deployments.serving.model_process import start_engine
from kvpool.compressed_kv import CompressedKV
from kvpool.press_spec import PressSpec


@ray.remote(concurrency_groups={"health": 1, "background": 1})
class PrefillActor:
    """Live prefills run one at a time (the default group); background prefills (recoveries no
    client waits for) have their own thread and queue, and give way to a live prefill at the next
    decoder layer (deployments/engine/preemption.py), so a client's load never waits out a
    recovery's forward. ``ready`` and ``stats`` have their own thread, so a replica's health check
    is answered while a long prefill - or a queue of them - runs."""

    def __init__(self, model: dict, torch_threads: int, presses: dict | None = None):
        install_press_policy(presses)  # AppConfig.presses: allowlisted custom presses, artifact directory
        self.engine = start_engine(ModelConfig.model_validate(model), torch_threads)
        start_priority.restore()  # a restarted actor started below live work: it serves now

    @ray.method(concurrency_group="health")
    def ready(self) -> bool:
        return True

    @ray.method(concurrency_group="health")
    def stats(self) -> dict[str, int]:
        """``preemptions``: background prefills abandoned (and redone) because a live one waited."""
        return {"preemptions": self.engine.priority.preemptions}

    def prefill(self, context: str | list[dict[str, Any]] | list[int], press: dict,
                pool_pressure: float | None = None) -> CompressedKV:
        """Prefill ``context`` under ``press``; raises PressSpecError, ContextTooLongError, PromptError.
        ``pool_pressure``: the replica's KV pool use in [0, 1], for ``cache_aware`` presses."""
        return self.engine.prefill(context, PressSpec.model_validate(press), pool_pressure=pool_pressure)

    @ray.method(concurrency_group="background")
    def prefill_background(self, context: str | list[dict[str, Any]] | list[int], press: dict,
                           pool_pressure: float | None = None) -> CompressedKV:
        """``prefill`` for work no client waits for: it yields to live prefills (and is redone)."""
        return self.engine.prefill(context, PressSpec.model_validate(press), pool_pressure=pool_pressure,
                                   background=True)

    def count_tokens(self, context: str | list[dict[str, Any]]) -> int:
        return len(self.engine.frame_for(context)[1])
