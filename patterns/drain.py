"""Graceful shutdown: an engine that drains starts no new step, and knows when the steps in flight are done."""

from __future__ import annotations

import anyio


class Drain:
    """Counts the tool calls in flight and, once draining, holds every run before its next step.

    A held run is not failed or recorded: it waits until the engine stops, and another engine resumes it from its
    records. Tool steps call ``hold`` before they begin and ``enter``/``leave`` around the call.
    """

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0
        self._idle = anyio.Event()

    def start(self) -> None:
        self.draining = True
        if self.inflight == 0:
            self._idle.set()

    async def hold(self) -> None:
        """While draining, wait for the engine's shutdown to cancel this run; otherwise return at once."""
        if self.draining:
            await anyio.sleep_forever()

    def enter(self) -> None:
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.draining and self.inflight == 0:
            self._idle.set()

    async def idle(self) -> None:
        """Return once draining and no tool call is in flight."""
        await self._idle.wait()
