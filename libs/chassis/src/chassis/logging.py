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

import asyncio
import functools
import json
import logging
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace

from chassis.context import request_id_var
from chassis.log_export import OTLPLogSink, configure_log_export, log_export_wanted
from chassis.settings import BaseServiceSettings
from chassis.tracing.sampling import unsampled_trace

REDACTED = "[REDACTED]"

# Substrings: a key containing any of them is redacted (access_token, x-api-key ...).
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "credential",
)

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


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    # Cached: the same few dozen keys recur on every line.
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


# Values that can never hide a nested secret: skipped without an ABC isinstance check.
_SCALARS = (str, int, float, bool, type(None))


def _redact_value(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_sensitive_key(key) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    return value


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace values under sensitive keys, recursively."""
    for key, value in event_dict.items():
        if key == "event":
            continue
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        elif not isinstance(value, _SCALARS):
            event_dict[key] = _redact_value(value)
    return event_dict


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


# (second, "YYYY-MM-DDTHH:MM:SS") of the last line: formatting a date is most of
# what a timestamp costs, and consecutive lines nearly always share the second.
# One slot replaced whole, so that threads logging at once never see a torn pair.
_second_cache: list[tuple[int, str]] = [(-1, "")]


def add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``timestamp`` as ISO 8601 UTC with microseconds and ``Z``.

    The same text as ``TimeStamper(fmt="iso", utc=True)`` at a quarter of its cost.
    """
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_cache[0]
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache[0] = (second, prefix)
    micros = min(int((now - second) * 1_000_000), 999_999)
    event_dict["timestamp"] = "%s.%06dZ" % (prefix, micros)  # noqa: UP031 (faster here)
    return event_dict


def _json_fallback(value: Any) -> Any:
    """What neither orjson nor json can encode: its ``__structlog__()`` or its repr."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one compact JSON object; orjson, or json for what orjson refuses.

    orjson is about ten times faster than ``json.dumps`` here; it refuses integers
    beyond 64 bits and a few other values, which the stdlib encoder still writes.
    """
    try:
        return orjson.dumps(
            event_dict, default=_json_fallback, option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:
        return json.dumps(event_dict, default=_json_fallback, separators=(",", ":"))


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

    _access_lines[0] = (
        _AccessLineWriter(chain, output, service, logging.getLevelName(level_name), sink)
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


# --- the access line ----------------------------------------------------------------------
# One per request: through structlog's chain (contextvars merge, level, logger name, ids,
# redaction, timestamp, renderer) it cost more than the rest of the telemetry layer. In
# JSON mode the line's fields are known and safe, so it is rendered here with the same
# keys and format, straight to the stream's bytes. Anything else (console output, a test's
# structlog.testing.capture_logs, a reconfigured structlog) goes through structlog.
_ACCESS_EVENT = "http_request"
_ACCESS_LOGGER_NAME = "chassis.access"
_INFO = logging.INFO
_access_logger = structlog.get_logger(_ACCESS_LOGGER_NAME)


class _AccessLineWriter:
    def __init__(
        self,
        chain: list[Any],
        output: TextIO,
        service: str | None,
        level_no: int,
        sink: OTLPLogSink | None = None,
    ) -> None:
        self.chain = chain
        self.sink = sink
        self.service = service
        self.level_no = level_no
        self._text = output
        # Bytes straight to the buffer: orjson makes bytes, and the text layer would
        # decode and re-encode them. structlog flushes the text layer after every line,
        # so it never holds text that a line written here could overtake.
        self._binary = getattr(output, "buffer", None)
        self._flush_pending = False

    def usable(self) -> bool:
        # capture_logs edits the configured list in place; configure() replaces it.
        chain = self.chain
        return structlog.get_config()["processors"] is chain and chain[-1] is render_json

    def write(self, fields: dict[str, Any], *, error: bool) -> None:
        if not error and self.level_no > _INFO:
            return
        fields["event"] = _ACCESS_EVENT
        if self.service is not None:
            fields["service"] = self.service
        fields["level"] = "error" if error else "info"
        fields["logger"] = _ACCESS_LOGGER_NAME
        bound = structlog.contextvars.get_contextvars() if _bound_anything() else None
        if bound:
            for key, value in bound.items():
                fields.setdefault(key, value)
            redact_sensitive(None, "", fields)
        add_timestamp(None, "", fields)
        if self.sink is not None:
            self.sink.emit(fields, level=fields["level"])
        try:
            line = orjson.dumps(fields, default=_json_fallback) + b"\n"
        except TypeError:
            text = json.dumps(fields, default=_json_fallback, separators=(",", ":"))
            line = (text + "\n").encode()
        if self._binary is None:
            self._text.write(line.decode())
            self._text.flush()
            return
        self._binary.write(line)
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._binary.flush()
            return
        # One write(2) per turn of the event loop, not per line: under load a turn finishes
        # many requests. The line is out before the loop waits for I/O again, so a crash
        # loses at most the lines of the turn it crashed in.
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._binary is not None:
            try:
                self._binary.flush()
            except (OSError, ValueError):
                # A closed or broken stream: the line is lost, as a print would lose it.
                return


def _bound_anything() -> bool:
    """Whether anything was ever bound with structlog.contextvars in this process.

    Merging costs a copy of the whole context; the services bind nothing per request
    (the request id is read from its own variable), so the merge is skipped until
    something is bound. The registry is structlog's; without it, always merge.
    """
    registry = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    return registry is None or bool(registry)


_access_lines: list[_AccessLineWriter | None] = [None]


def write_access_line(fields: dict[str, Any], *, error: bool) -> None:
    """Log one request's access line (`fields` is consumed)."""
    writer = _access_lines[0]
    if writer is not None and writer.usable():
        writer.write(fields, error=error)
    elif error:
        _access_logger.error(_ACCESS_EVENT, **fields)
    else:
        _access_logger.info(_ACCESS_EVENT, **fields)
