"""Work that must finish whatever happens to the HTTP request that started it.

Ray Serve cancels a request's asyncio task when its client disconnects, and propagates the
cancellation to every handle call made in that request's context (child requests). A session
load accepted by ``POST /v1/sessions`` must still complete, or end ``failed`` (issue 14): it runs
as a task in a fresh ``contextvars.Context`` (so its handle calls are not the request's children),
held by a strong reference until done, and the route awaits it through ``asyncio.shield``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Coroutine

log = logging.getLogger(__name__)


class DetachedTasks:
    """Starts coroutines detached from the caller's request; ``len()`` is the number running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # retrieved here: reported by its awaiter, if any
            log.info("detached task %s ended with %r", task.get_name(), task.exception())

    def __len__(self) -> int:
        return len(self._tasks)
