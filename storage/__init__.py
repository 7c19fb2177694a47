"""Durable state: tools, runs and step records in SQLite (default) or PostgreSQL.

The names below load on first use (PEP 562): ``from storage import GATE_PENDING`` imports ``storage.records`` only,
and SQLAlchemy loads with the first name that needs it (``Store``, ``Database``, ``GateStore``, ...). A server
answers ``initialize`` and ``tools/list`` before it has loaded SQLAlchemy (see ``server.lifespan``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers
    from storage.database import (
        Database as Database,
        Durability as Durability,
        parse_database_url as parse_database_url,
    )
    from storage.errors import (
        GateNotFound as GateNotFound,
        NoBudget as NoBudget,
        NotFound as NotFound,
        RunChanged as RunChanged,
        RunNotFound as RunNotFound,
        StorageError as StorageError,
        UnsupportedDatabase as UnsupportedDatabase,
        WriteFailed as WriteFailed,
    )
    from storage.gates import (
        GateStore as GateStore,
    )
    from storage.records import (
        GATE_DECIDED as GATE_DECIDED,
        GATE_EXPIRED as GATE_EXPIRED,
        GATE_PENDING as GATE_PENDING,
        GATE_TIMED_OUT as GATE_TIMED_OUT,
        STEP_CANCELLED as STEP_CANCELLED,
        STEP_COMPLETED as STEP_COMPLETED,
        STEP_FAILED as STEP_FAILED,
        STEP_STARTED as STEP_STARTED,
        STEP_WAITING as STEP_WAITING,
        GateRecord as GateRecord,
        NewGate as NewGate,
        NewRun as NewRun,
        RunRecord as RunRecord,
        RunUpdate as RunUpdate,
        StepRecord as StepRecord,
        StepWrite as StepWrite,
        StoredTool as StoredTool,
        dumps as dumps,
        loads as loads,
    )
    from storage.store import (
        Store as Store,
    )

_WHERE = {
    "storage.database": ("Database", "Durability", "parse_database_url"),
    "storage.errors": (
        "GateNotFound",
        "NoBudget",
        "NotFound",
        "RunChanged",
        "RunNotFound",
        "StorageError",
        "UnsupportedDatabase",
        "WriteFailed",
    ),
    "storage.gates": ("GateStore",),
    "storage.records": (
        "GATE_DECIDED",
        "GATE_EXPIRED",
        "GATE_PENDING",
        "GATE_TIMED_OUT",
        "STEP_CANCELLED",
        "STEP_COMPLETED",
        "STEP_FAILED",
        "STEP_STARTED",
        "STEP_WAITING",
        "GateRecord",
        "NewGate",
        "NewRun",
        "RunRecord",
        "RunUpdate",
        "StepRecord",
        "StepWrite",
        "StoredTool",
        "dumps",
        "loads",
    ),
    "storage.store": ("Store",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
