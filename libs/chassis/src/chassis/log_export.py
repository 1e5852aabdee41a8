"""Log lines to the OpenTelemetry collector over OTLP, beside stdout (``log.otlp_export``).

Every line the process writes (structlog's, the stdlib's routed through it, and
the access line) is also sent as an OTLP log record: its event as the body, its
other fields as attributes (already redacted), its level as the severity, and
its ``trace_id``/``span_id`` as the record's trace context, so the logs backend
links a line to its trace and a trace to its lines. Records are batched and
exported from a background thread; a collector that is down costs dropped
records, never a blocked request.

Off unless ``log.otlp_export`` is set and an OTLP endpoint is configured in the
standard variables (``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``): stdout stays the source of truth, and shipping
every line twice is a cost (docs/adr/0010) a deployment chooses.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chassis.settings import BaseServiceSettings

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: How long process exit waits for the last batch (a collector that is down must not hold it).
FLUSH_ON_EXIT_SECONDS = 2.0

_SEVERITIES = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "exception": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
#: Fields that become the record's own parts rather than attributes.
_RECORD_FIELDS = frozenset({"event", "level", "timestamp", "trace_id", "span_id"})
_SCALARS = (str, bool, int, float)
#: The OpenTelemetry SDK's own loggers (an export failed, a retry follows) stay on stdout only.
#: Exported, they fed a collector outage back into itself: each failed export logged a
#: warning, the warning was the next batch, and the exporter retried (a new connection, a
#: name lookup) for as long as the collector was away, with no traffic at all.
_SELF_LOGGERS = "opentelemetry"


def log_export_wanted(settings: BaseServiceSettings | None) -> bool:
    if settings is None or not settings.log.otlp_export:
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


class OTLPLogSink:
    """Turns rendered-ready event dicts into OTLP log records of one provider."""

    def __init__(self, provider: LoggerProvider, service: str) -> None:
        self.provider = provider
        self._logger = provider.get_logger("chassis")
        self._service = service

    def __call__(
        self, _logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor (before the renderer): export the line, pass it on unchanged."""
        if not str(event_dict.get("logger", "")).startswith(_SELF_LOGGERS):
            self.emit(event_dict, level=str(event_dict.get("level") or method))
        return event_dict

    def emit(self, fields: MutableMapping[str, Any], *, level: str) -> None:
        # A record's trace context needs both ids; a line with only a trace id (a request
        # served unsampled) keeps it as an attribute, which the backend still searches.
        traced = isinstance(fields.get("span_id"), str)
        attributes = {
            key: value if isinstance(value, _SCALARS) else str(value)
            for key, value in fields.items()
            if value is not None
            and (key not in _RECORD_FIELDS or (key == "trace_id" and not traced))
        }
        self._logger.emit(
            timestamp=time.time_ns(),
            context=_trace_context(fields.get("trace_id"), fields.get("span_id")),
            severity_number=_SEVERITIES.get(level.lower(), SeverityNumber.INFO),
            severity_text=level.upper(),
            body=str(fields.get("event", "")),
            attributes=attributes,
        )


def _trace_context(trace_id: Any, span_id: Any) -> Any:
    """The context carrying the line's trace (hex ids as the log line has them), or None."""
    if not isinstance(trace_id, str) or not isinstance(span_id, str):
        return None
    try:
        span_context = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    except ValueError:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def configure_log_export(
    settings: BaseServiceSettings | None, *, exporter: LogRecordExporter | None = None
) -> OTLPLogSink | None:
    """The sink for this process's lines, or None when log export is off."""
    if exporter is None and not log_export_wanted(settings):
        return None
    service = settings.service_name if settings else "unknown"
    provider = LoggerProvider(
        resource=Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME", service),
                "service.version": settings.version if settings else "",
            }
        )
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    atexit.register(_flush_bounded, provider)
    return OTLPLogSink(provider, service)


def _flush_bounded(provider: LoggerProvider) -> None:
    """Ship the last batch at exit, waiting at most FLUSH_ON_EXIT_SECONDS."""
    worker = threading.Thread(target=provider.shutdown, name="otel-logs-shutdown", daemon=True)
    worker.start()
    worker.join(FLUSH_ON_EXIT_SECONDS)
