"""Structured logging: structlog for our lines, stdlib loggers routed through it.

JSON in staging/production, a readable console in development. Every line
carries request_id, trace_id and span_id when they exist, and values under
sensitive keys (password, token, authorization, secret, cookie ...) are
redacted before rendering, wherever they are nested.

structlog events are rendered and written directly (no stdlib LogRecord, no
handler lock): the access log writes one per request, and going through
stdlib logging cost about as much as the rest of the chassis middleware put
together. Library loggers (uvicorn, sqlalchemy, httpx, arq) still go through
stdlib logging and a formatter running the same processors, onto the same stream.
The JSON renderer (orjson) and the timestamp are written for
that per-request line: with structlog's stock JSONRenderer and TimeStamper the
access log alone cost a fifth of the request path (docs/adr/0010).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

from chassis.access_line import AccessLineWriter, install_access_lines
from chassis.context import request_id_var
from chassis.log_export import OTLPLogSink, configure_log_export, log_export_wanted
from chassis.log_render import (
    REDACTED,
    SENSITIVE_KEY_PARTS,
    add_timestamp,
    is_sensitive_key,
    json_fallback,
    redact_sensitive,
    render_json,
)
from chassis.settings import BaseServiceSettings
from chassis.tracing.sampling import unsampled_trace

__all__ = [
    "REDACTED",
    "ROUTED_LOGGERS",
    "SENSITIVE_KEY_PARTS",
    "add_request_and_trace_ids",
    "add_timestamp",
    "configure_logging",
    "is_sensitive_key",
    "json_fallback",
    "redact_sensitive",
    "render_json",
    "shared_processors",
]

# stdlib loggers that libraries log through; they get our handler and format.
ROUTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "sqlalchemy",
    "httpx",
    "httpcore",
    "arq",
    "alembic",
)


def add_request_and_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: request_id from contextvars, trace/span ids from OpenTelemetry."""
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    else:
        # A request served unsampled has no span, only the trace id it came with.
        unsampled = unsampled_trace.get()
        if unsampled:
            event_dict.setdefault("trace_id", format(unsampled, "032x"))
    return event_dict


def shared_processors() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_request_and_trace_ids,
        redact_sensitive,
        add_timestamp,
    ]


# Tracebacks without each frame's local variables, and plain ones on the console.
# structlog's defaults (locals everywhere; rich on the console when it is installed)
# are wrong for a server twice over: locals hold request bodies, passwords and keys
# that the redaction above never sees, and rendering is synchronous: one rich
# traceback of a FastAPI request took from 0.8 s (no locals) to 30 s (locals: a frame
# holds the whole dependency tree), blocking the event loop and with it every other
# request of the process, their deadlines included. A plain one takes about 1 ms.
_json_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _console_renderer() -> structlog.dev.ConsoleRenderer:
    return structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback
    )


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's direct writer, with the name `add_logger_name` reports."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(
    settings: BaseServiceSettings | None = None,
    *,
    level: str | None = None,
    json_output: bool | None = None,
    stream: TextIO | None = None,
    log_exporter: Any = None,
) -> None:
    """Configure structlog and the stdlib root logger for this process.

    Called by the app builder and the worker settings factory, never at import.
    Explicit arguments win over settings (tests pass a stream to read lines).
    """
    level_name = level or (settings.log.level if settings else "INFO")
    use_json = (
        json_output if json_output is not None else (settings.log_json if settings else False)
    )
    service = settings.service_name if settings else None
    output = stream or sys.stdout

    processors = shared_processors()
    if service:
        processors.insert(0, _static_fields(service=service))
    sink = _log_sink(settings, log_exporter)
    if sink is not None:
        # Last before rendering: the line is complete (ids, redaction, timestamp) by then.
        processors.append(sink)
    rendering: list[structlog.types.Processor] = (
        [_json_tracebacks, render_json] if use_json else [_console_renderer()]
    )

    def logger_factory(*args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(output, str(args[0]) if args else "")

    chain = [*processors, *rendering]
    structlog.configure(
        processors=chain,
        logger_factory=logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *processors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    handler.set_name("chassis")

    install_access_lines(
        AccessLineWriter(chain, output, service, logging.getLevelName(level_name), sink)
        if use_json
        else None
    )

    root = logging.getLogger()
    # Replace our own handler on reconfiguration; leave others (pytest's capture) alone.
    for existing in list(root.handlers):
        if existing.get_name() == "chassis":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level_name)

    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    # Our access log replaces uvicorn's; SQL echo and per-request client chatter stay off.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


#: One log provider per process: configure_logging may run more than once in one.
_sinks: list[OTLPLogSink] = []


def _log_sink(settings: BaseServiceSettings | None, exporter: Any) -> OTLPLogSink | None:
    if exporter is not None:
        return configure_log_export(settings, exporter=exporter)
    if not log_export_wanted(settings):
        return None
    if not _sinks:
        sink = configure_log_export(settings)
        if sink is None:
            return None
        _sinks.append(sink)
    return _sinks[0]


def _static_fields(**fields: str) -> structlog.types.Processor:
    def add_static(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
        return event_dict

    return add_static
