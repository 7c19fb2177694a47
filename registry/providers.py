"""Providers: how a tool is invoked. ``python``: a callable, sync ones off the event loop, async ones on it.

Sync callables share a few worker threads (``Registry(sync_threads=...)``, ``storage.threads``): every thread
that runs Python code competes with the event loop for the interpreter lock, and dozens of busy ones (a wide fan-out
of a CPU-bound sync tool) would hold the loop back by a tenth of a second at a time.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from registry.errors import InvalidToolSpec
from registry.models import PythonProvider, ToolSpec
from storage.threads import WorkerThreads

Invoker = Callable[[Any], Awaitable[Any]]


class PermanentError(Exception):
    """Raise (or subclass) this in a tool for a failure that retrying cannot fix; it is never retried.

    Any exception with a true ``permanent`` attribute is treated the same way, so tools need not import Podium.
    """

    permanent = True


def is_permanent(exc: BaseException) -> bool:
    return bool(getattr(exc, "permanent", False))


def load_target(target: str) -> Callable[..., Any]:
    """Import ``module:attr.path`` and return the callable. Raises ``InvalidToolSpec`` naming what is missing."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidToolSpec(f"python provider {target!r}: cannot import module {module_name!r}: {exc}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidToolSpec(
                f"python provider {target!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(obj):
        raise InvalidToolSpec(f"python provider {target!r}: {attr_path!r} is not callable")
    return obj  # type: ignore[no-any-return]


def to_data(value: Any) -> Any:
    """Tool results as JSON data: pydantic models are dumped; everything else is passed through."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _python(provider: PythonProvider, threads: WorkerThreads) -> Invoker:
    fn = load_target(provider.target)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004

        async def call_async(payload: Any) -> Any:
            result = await (fn(**payload) if isinstance(payload, dict) else fn(payload))
            return to_data(result)

        return call_async

    async def call_sync(payload: Any) -> Any:
        bound = functools.partial(fn, **payload) if isinstance(payload, dict) else functools.partial(fn, payload)
        # a cancelled or timed-out run stops waiting at once; a call already running finishes in its thread
        return to_data(await threads.run(bound))

    return call_sync


def make_invoker(spec: ToolSpec, threads: WorkerThreads | None = None) -> Invoker:
    """The coroutine function that calls ``spec``'s provider with one input. Sync callables run in worker threads,
    at most as many at once as ``threads`` allows (when None, a pool of ``DEFAULT_THREADS`` shared by such
    invokers)."""
    global _shared
    if not isinstance(spec.provider, PythonProvider):
        raise InvalidToolSpec(f"tool {spec.ref}: a {spec.provider.type} tool is called through the engine's downstream")
    if threads is None:
        threads = _shared = _shared or WorkerThreads(DEFAULT_THREADS, name="podium-tool")
    return _python(spec.provider, threads)


DEFAULT_THREADS = 40
_shared: WorkerThreads | None = None
