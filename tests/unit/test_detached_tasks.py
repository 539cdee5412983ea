"""deployments.common.detached: work started from a request outlives the request's cancellation and does
not inherit its context (Serve's request context is how it cancels child requests)."""

from __future__ import annotations

import asyncio
import contextvars

from deployments.common.detached import DetachedTasks

REQUEST = contextvars.ContextVar("request", default=None)


def test_a_cancelled_request_does_not_cancel_its_detached_work():
    async def scenario():
        tasks = DetachedTasks()
        seen: list = []

        async def work():
            seen.append(REQUEST.get())
            await asyncio.sleep(0.05)
            return "done"

        async def route():
            REQUEST.set("req-1")
            task = tasks.start(work(), name="load")
            await asyncio.shield(task)
            return task

        handler = asyncio.get_running_loop().create_task(route())
        await asyncio.sleep(0.01)
        handler.cancel()  # the client hung up
        await asyncio.gather(handler, return_exceptions=True)
        assert handler.cancelled() and len(tasks) == 1
        await asyncio.sleep(0.1)
        assert len(tasks) == 0 and seen == [None]  # finished, and ran outside the request's context

    asyncio.run(scenario())


def test_a_failing_detached_task_is_retrieved():
    async def scenario():
        tasks = DetachedTasks()

        async def boom():
            raise RuntimeError("x")

        task = tasks.start(boom(), name="boom")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        assert len(tasks) == 0 and isinstance(task.exception(), RuntimeError)

    asyncio.run(scenario())
