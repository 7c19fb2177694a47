"""The server's log lines: text for people (the default), or one JSON object per line (``PODIUM_LOG_FORMAT=json``)
for log pipelines, each naming the run and the trace it belongs to.

A line belongs to a run when the task that wrote it executes that run (``patterns.tracing.RUN``), or when the
code gave ``extra={"run_id": ...}``; its trace is the run's, else the current span's (an MCP request's).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from patterns import tracing

FORMATS = ("text", "json")
TEXT = "%(levelname)s %(name)s: %(message)s"


class LogFormatError(ValueError):
    """``PODIUM_LOG_FORMAT`` names no format."""


class RunContext(logging.Filter):
    """Give each record ``run_id`` and ``trace_id`` (None where it belongs to no run or trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = tracing.current_ids()
        run_id = getattr(record, "run_id", None) or (run[0] if run is not None else None)
        trace_id = getattr(record, "trace_id", None)
        if trace_id is None:
            if run is not None and run[0] == run_id:
                trace_id = run[1]
            else:
                context = trace.get_current_span().get_span_context()
                trace_id = format(context.trace_id, "032x") if context.is_valid else None
        record.__dict__.update(run_id=run_id, trace_id=trace_id)
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "run_id"?, "trace_id"?, "exception"?}``, one per line."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("run_id", "trace_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    level: int = logging.WARNING, chosen: str | None = None, environ: Mapping[str, str] = os.environ
) -> None:
    """Send log lines at ``level`` and above to stderr in the format ``chosen``, by default the one
    ``PODIUM_LOG_FORMAT`` names (the setting ``log_format``, read before the settings are).

    Raises:
        LogFormatError: a format other than text or json.
    """
    if chosen is None:
        chosen = environ.get("PODIUM_LOG_FORMAT", "text").strip().lower() or "text"
    if chosen not in FORMATS:
        raise LogFormatError(f"PODIUM_LOG_FORMAT is {chosen[:40]!r}: it is text (the default) or json")
    handler = _PodiumHandler(sys.stderr)
    handler.addFilter(RunContext())
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if isinstance(h, _PodiumHandler)]:  # ours only: an embedder's stay
        root.removeHandler(earlier)
    root.addHandler(handler)
    root.setLevel(level)


class _PodiumHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (and replaces when called again)."""
