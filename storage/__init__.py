"""Durable state: tools, runs and step records in SQLite (default) or PostgreSQL."""

from storage.engine import Database, Durability, parse_database_url
from storage.errors import RunNotFound, StorageError, UnsupportedDatabase, WriteFailed
from storage.gates import GateNotFound, GateStore
from storage.records import (
    GATE_DECIDED,
    GATE_EXPIRED,
    GATE_PENDING,
    GATE_TIMED_OUT,
    STEP_CANCELLED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
    STEP_WAITING,
    GateRecord,
    NewGate,
    NewRun,
    RunRecord,
    RunUpdate,
    StepRecord,
    StepWrite,
    StoredTool,
    dumps,
    loads,
)
from storage.store import Store

__all__ = [
    "Database",
    "Durability",
    "GATE_DECIDED",
    "GATE_EXPIRED",
    "GATE_PENDING",
    "GATE_TIMED_OUT",
    "GateNotFound",
    "GateRecord",
    "GateStore",
    "NewGate",
    "NewRun",
    "RunNotFound",
    "RunRecord",
    "RunUpdate",
    "STEP_CANCELLED",
    "STEP_COMPLETED",
    "STEP_FAILED",
    "STEP_STARTED",
    "STEP_WAITING",
    "StepRecord",
    "StepWrite",
    "StorageError",
    "Store",
    "StoredTool",
    "UnsupportedDatabase",
    "WriteFailed",
    "dumps",
    "loads",
    "parse_database_url",
]
