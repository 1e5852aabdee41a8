"""OpenTelemetry tracing: provider set-up, early sampling, propagation.

Tracing is on when ``tracing.enabled`` is true and an OTLP endpoint is set in
the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); otherwise nothing is installed and
requests pay nothing. The exporter reads the other ``OTEL_*`` variables
itself. Sampling is parent-based with a ratio (``tracing.sample_ratio``, else
``OTEL_TRACES_SAMPLER_ARG``, else 0.1).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from chassis.settings import BaseServiceSettings
from chassis.tracing.native import FASTAPI_TELEMETRY_OFF
from chassis.tracing.propagation import extract_trace_context, inject_trace_context
from chassis.tracing.sampling import ChassisSampler

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from chassis.builder_protocol import Builder

logger = structlog.get_logger("chassis.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SAMPLE_RATIO = 0.1

_state: dict[str, Any] = {"active": False, "libraries": False, "exporters": []}


def tracing_wanted(settings: BaseServiceSettings, *, exporter: SpanExporter | None = None) -> bool:
    if not settings.tracing.enabled:
        return False
    return exporter is not None or any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def tracing_active() -> bool:
    """True once this process exports spans (other modules instrument only then)."""
    return bool(_state["active"])


def sample_ratio(settings: BaseServiceSettings) -> float:
    if settings.tracing.sample_ratio is not None:
        return settings.tracing.sample_ratio
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG")
    try:
        return min(max(float(raw), 0.0), 1.0) if raw else DEFAULT_SAMPLE_RATIO
    except ValueError:
        logger.warning("invalid_sampler_arg", value=raw, using=DEFAULT_SAMPLE_RATIO)
        return DEFAULT_SAMPLE_RATIO


def configure_tracing(
    settings: BaseServiceSettings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install a TracerProvider for this process; return it if this call created it.

    The global provider can be set once per process; when one is already there
    (a test session's, or a second app in the same process) it is reused and
    left for its owner to shut down.
    """
    if not tracing_wanted(settings, exporter=exporter):
        logger.info("tracing_disabled", reason="no OTLP endpoint or tracing.enabled=false")
        return None
    created: TracerProvider | None = None
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME", settings.service_name),
                "service.version": settings.version,
                "deployment.environment.name": str(settings.environment),
            }
        )
        created = TracerProvider(resource=resource, sampler=ChassisSampler(sample_ratio(settings)))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        created.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(created)
    elif exporter is not None and not _already_exporting(exporter):
        current.add_span_processor(BatchSpanProcessor(exporter))
    if exporter is not None:
        _state["exporters"].append(exporter)
    _instrument_libraries()
    _state["active"] = True
    logger.info("tracing_enabled", sample_ratio=sample_ratio(settings))
    return created


def _already_exporting(exporter: SpanExporter) -> bool:
    return any(known is exporter for known in _state["exporters"])


def mark_exporting(exporter: SpanExporter) -> None:
    """Tell `configure_tracing` that `exporter` is already attached (test fixtures)."""
    if not _already_exporting(exporter):
        _state["exporters"].append(exporter)


def _instrument_libraries() -> None:
    """httpx and redis are patched at class level, once per process."""
    if _state["libraries"]:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    _state["libraries"] = True


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace SQL statements of `engine` when tracing is active (no-op otherwise).

    Uses the stock instrumentation's per-engine tracer directly: the
    instrumentor itself patches ``create_engine`` process-wide, instruments
    only once per process and refuses SQLAlchemy 2.1 by version, although the
    engine events it listens to are unchanged (test_builder shows the spans).
    """
    if not tracing_active():
        return
    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    meter = metrics.get_meter("chassis.sqlalchemy")
    EngineTracer(  # type: ignore[no-untyped-call]
        trace.get_tracer("chassis.sqlalchemy"),
        engine.sync_engine,
        meter.create_up_down_counter("db.client.connections.usage", unit="connections"),
    )


def setup_tracing(builder: Builder) -> None:
    """Builder step: provider at start-up (before other resources), flushed at shutdown."""
    settings = builder.settings
    exporter: SpanExporter | None = builder.span_exporter
    builder.tracing_enabled = tracing_wanted(settings, exporter=exporter)

    @asynccontextmanager
    async def tracing_resource(_app: FastAPI) -> AsyncIterator[TracerProvider | None]:
        provider = configure_tracing(settings, exporter=exporter)
        try:
            yield provider
        finally:
            if provider is not None:
                await shutdown_tracing(
                    provider, flush_seconds=settings.tracing.flush_timeout_seconds
                )

    builder.add_resource("tracing", tracing_resource, first=True)


async def shutdown_tracing(provider: TracerProvider, *, flush_seconds: float) -> bool:
    """Flush and stop `provider` without blocking the event loop for more than `flush_seconds`.

    The SDK's shutdown waits up to 30 s per processor and retries exports to a
    collector that is down; run inline it would stall the loop and with it the
    graceful shutdown of every request still in flight. Returns False if the
    flush was abandoned (its thread is a daemon and never delays process exit).
    """
    worker = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    worker.start()
    await asyncio.to_thread(worker.join, flush_seconds)
    if worker.is_alive():
        logger.warning("tracing_flush_abandoned", flush_seconds=flush_seconds)
        return False
    return True


__all__ = [
    "FASTAPI_TELEMETRY_OFF",
    "ChassisSampler",
    "configure_tracing",
    "extract_trace_context",
    "inject_trace_context",
    "instrument_engine",
    "mark_exporting",
    "sample_ratio",
    "setup_tracing",
    "shutdown_tracing",
    "tracing_active",
    "tracing_wanted",
]
