"""Which asyncio event loop the ``podium`` commands run on: uvloop where it is installed, else the standard one.

A sync tool's step is two hand-offs between the event loop and a worker thread, and the one back wakes the loop
from the worker's thread and takes a turn of its poll: uvloop runs that turn in C. Over stdio, a chain of sync
steps cost about a fifth less per step with it when it came (``bench/mcp_bench.py``, part 3; README,
"Performance"); nothing else the server does changed measurably. ``event_loop`` (setting) chooses: ``auto``
(uvloop if it can be imported), ``uvloop`` (required: a clear error where it is missing) or ``asyncio`` (the
standard loop, e.g. to rule uvloop out when looking into a problem).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from server.config import ConfigError, EventLoop


def loop_options(choice: EventLoop) -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for ``choice``."""
    if choice == "asyncio":
        return {}
    try:
        importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError(
                f"event_loop is 'uvloop' but uvloop cannot be imported ({exc}): install it (pip install uvloop; "
                "Linux and macOS only), or set event_loop to 'auto' or 'asyncio'"
            ) from None
        return {}
    return {"use_uvloop": True}


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the package of the loop this code runs on."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
