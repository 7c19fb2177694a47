"""Exporting spans: the OpenTelemetry SDK with an OTLP/HTTP exporter, configured from the standard variables.

``podium serve`` calls ``start_tracing`` before it serves. It installs a tracer provider only when the ``otel`` extra
is installed (``pip install -e '.[otel]'``) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` says where to send, and ``OTEL_SDK_DISABLED`` is not ``true``; the exporter
and the resource read the rest of ``OTEL_*`` themselves (headers, timeout, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``). Otherwise nothing is installed, the API stays a no-op and the engine opens no
step spans at all (``patterns.tracing.recording``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

log = logging.getLogger("podium.telemetry")

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def start_tracing(environ: Mapping[str, str] = os.environ) -> Callable[[], None] | None:
    """Install the SDK's tracer provider exporting over OTLP/HTTP, if asked for and installed. Returns what
    flushes and stops it (call it when the server stops), or None when nothing was installed."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(environ.get(name) for name in ENDPOINTS):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "%s is set, but the OpenTelemetry SDK is not installed: no spans are exported "
            "(install the otel extra: pip install -e '.[otel]' in the checkout, or 'podium-mcp[otel]')",
            next(name for name in ENDPOINTS if environ.get(name)),
        )
        return None
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "podium"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("exporting spans over OTLP/HTTP to %s", next(environ[name] for name in ENDPOINTS if environ.get(name)))
    return provider.shutdown
