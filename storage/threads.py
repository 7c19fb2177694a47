"""Worker threads for plain functions (sync tools, SQLite reads): a call is one hand-off to a thread and one back
to the event loop.

``anyio.to_thread.run_sync`` costs about twice a bare hand-off here (a capacity limiter, run-scoped lookups and a
cancel scope per call), and a chain of sync steps, or a stream of point reads, pays it once per call. This pool
keeps only what such a call needs: at most ``max_threads`` threads, started when calls wait and none is idle,
ending after ``idle_s`` without work; calls beyond ``max_threads`` wait their turn in order. A caller that is
cancelled stops waiting at once (its call, if already running, finishes in its thread and its result is dropped);
a call not yet started never runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_S = 10.0

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[[], Any]]


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop: hand the outcome to a caller still waiting for it."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WorkerThreads:
    """Runs plain functions in worker threads for asyncio code (see the module's docstring)."""

    def __init__(self, max_threads: int, idle_s: float = IDLE_S, name: str = "podium-worker") -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self.max_threads = max_threads
        self._idle_s = idle_s
        self._name = name
        self._ready = threading.Condition(threading.Lock())
        self._jobs: deque[_Job] = deque()
        self._threads = 0
        self._idle = 0  # threads waiting for a job (counted until they wake)

    @property
    def threads(self) -> int:
        """Threads alive now (busy or idle)."""
        return self._threads

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, with the caller's context variables; its result or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._ready:
            self._jobs.append((loop, future, contextvars.copy_context(), fn))
            if self._idle >= len(self._jobs):
                self._ready.notify()
            elif self._threads < self.max_threads:
                self._threads += 1
                threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return await future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._idle += 1
                    woken = self._ready.wait(self._idle_s)
                    self._idle -= 1
                    if not woken and not self._jobs:
                        self._threads -= 1
                        return
                loop, future, context, fn = self._jobs.popleft()
            if future.cancelled():  # its caller stopped waiting before it started: do not run it
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(fn)
            except BaseException as exc:  # handed to the caller, whatever it is
                error = exc
            try:
                loop.call_soon_threadsafe(_deliver, future, result, error)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass
            del result, error, future, fn  # drop references before waiting for the next job
