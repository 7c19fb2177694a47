"""Storage errors.

Tree::

    StorageError
    ├── NotFound               no such record (the id a caller gave names nothing)
    │   ├── RunNotFound        no run with that id
    │   └── GateNotFound       no gate with that id (storage.gates)
    ├── RunChanged             a compare-and-set on a run lost: it changed since it was read
    ├── Duplicate              an insert found its key taken (the store turns it into an answer)
    ├── NoBudget               a child run would draw from a run with no step left (storage.ledger)
    ├── DatabaseError          the database failed: unreachable, locked, out of space (a one-line cause)
    ├── UnsupportedDatabase    a database URL the store cannot use
    └── WriteFailed            the step writer could not persist records of a run
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of the store's errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def quoted_id(value: str) -> str:
    """An id as a message quotes it: a caller's text, so cut short when it is longer than any id we make."""
    return repr(value) if len(value) <= 80 else f"{value[:80]!r}... ({len(value)} characters)"


class NotFound(StorageError):
    """The record a caller named does not exist: the caller's mistake, never the store's."""


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {quoted_id(run_id)}")
        self.run_id = run_id


class GateNotFound(NotFound):
    def __init__(self, gate_id: str) -> None:
        super().__init__(f"no gate with id {quoted_id(gate_id)}")
        self.gate_id = gate_id


class RunChanged(StorageError):
    """The run changed between reading it and writing a change based on that reading; nothing was written."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"run {run_id} changed while this change was being made (it is now {status}); nothing was changed: "
            f"look at it again with `podium runs show {run_id}`"
        )
        self.run_id = run_id
        self.status = status


class Duplicate(StorageError):
    """An insert whose key exists already (a tool version, an idempotency key): the store's callers decide."""


class NoBudget(StorageError):
    """A run started under ``run_id`` would draw from its budget, which has nothing left of ``limit``."""

    def __init__(self, run_id: str, limit: str, value: object, used: int, held: int) -> None:
        super().__init__(
            f"run {run_id} has no steps left to give a child run ({limit} {value}: {used} used by it, {held} held "
            f"or used by runs started under it)"
        )
        self.run_id = run_id
        self.limit = limit
        self.value = value


class DatabaseError(StorageError):
    """The database failed (unreachable, locked, full, ...): nothing above the store sees the driver's errors."""

    def __init__(self, cause: BaseException) -> None:
        detail = " ".join(str(getattr(cause, "orig", None) or cause).split()) or type(cause).__name__
        if len(detail) > 300:
            detail = detail[:300] + "..."
        super().__init__(f"the database failed: {detail}")


class UnsupportedDatabase(StorageError):
    """The database URL names a backend or form the store does not support."""


class WriteFailed(StorageError):
    """Records of a run could not be written; the run cannot be reported as durable."""

    def __init__(self, run_id: str | None, cause: str) -> None:
        where = f" for run {run_id}" if run_id else ""
        super().__init__(f"persisting step records{where} failed: {cause}")
        self.run_id = run_id
