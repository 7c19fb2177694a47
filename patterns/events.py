"""What happens in a run that its caller may want to hear about while it waits: retries, fallbacks, gaps, gates.

The engine publishes; whoever follows a run (an MCP call waiting on it, which forwards events as log messages)
listens for that run's events in this process. Publishing to a run nobody follows costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Level = Literal["debug", "info", "notice", "warning", "error"]
EventKind = Literal[
    "retry", "fallback", "gap", "gate_opened", "gate_escalated", "gate_decided", "settled", "breaker", "route"
]


@dataclass(frozen=True, slots=True)
class RunEvent:
    run_id: str
    kind: EventKind
    level: Level
    message: str
    step: str | None = None

    def to_dict(self) -> dict[str, str]:
        data = {"run_id": self.run_id, "event": self.kind, "message": self.message}
        if self.step is not None:
            data["step"] = self.step
        return data


Listener = Callable[[RunEvent], None]


class RunEvents:
    """Listeners by run id. A listener must not block: it is called in the publisher's task."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def publish(self, event: RunEvent) -> None:
        for listener in self._listeners.get(event.run_id, ()):
            listener(event)

    @contextmanager
    def listen(self, run_id: str, listener: Listener) -> Iterator[None]:
        """Call ``listener`` with each event of ``run_id`` until the block ends."""
        self._listeners.setdefault(run_id, []).append(listener)
        try:
            yield
        finally:
            listeners = self._listeners[run_id]
            listeners.remove(listener)
            if not listeners:
                del self._listeners[run_id]

    def __len__(self) -> int:
        """Runs followed right now."""
        return len(self._listeners)


def ignore(event: RunEvent) -> None:
    """The publisher of a run state that nobody follows."""
