"""The access line: one per request, rendered straight to JSON (chassis.logging configures it).

Through structlog's chain (contextvars merge, level, logger name, ids, redaction,
timestamp, renderer) it cost more than the rest of the telemetry layer. In JSON
mode the line's fields are known and safe, so it is rendered here with the same
keys and format, straight to the stream's bytes. Anything else (console output,
a test's structlog.testing.capture_logs, a reconfigured structlog) goes through
structlog.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import structlog

from chassis.log_render import add_timestamp, json_fallback, redact_sensitive, render_json

if TYPE_CHECKING:
    from chassis.log_export import OTLPLogSink

_ACCESS_EVENT = "http_request"
_ACCESS_LOGGER_NAME = "chassis.access"
_INFO = logging.INFO
_access_logger = structlog.get_logger(_ACCESS_LOGGER_NAME)


class AccessLineWriter:
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
            line = orjson.dumps(fields, default=json_fallback) + b"\n"
        except TypeError:
            text = json.dumps(fields, default=json_fallback, separators=(",", ":"))
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


_access_lines: list[AccessLineWriter | None] = [None]


def install_access_lines(writer: AccessLineWriter | None) -> None:
    """The writer configure_logging made (None: every line through structlog)."""
    _access_lines[0] = writer


def write_access_line(fields: dict[str, Any], *, error: bool) -> None:
    """Log one request's access line (`fields` is consumed)."""
    writer = _access_lines[0]
    if writer is not None and writer.usable():
        writer.write(fields, error=error)
    elif error:
        _access_logger.error(_ACCESS_EVENT, **fields)
    else:
        _access_logger.info(_ACCESS_EVENT, **fields)
