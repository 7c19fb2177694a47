"""Durable state: tools, runs and step records in SQLite (default) or PostgreSQL."""

from storage.engine import Database, Durability, parse_database_url
from storage.errors import RunNotFound, StorageError, UnsupportedDatabase, WriteFailed
from storage.records import (
    STEP_CANCELLED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
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
    "STEP_CANCELLED",
    "STEP_COMPLETED",
    "STEP_FAILED",
    "STEP_STARTED",
    "Database",
    "Durability",
    "NewRun",
    "RunNotFound",
    "RunRecord",
    "RunUpdate",
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
