"""Logging: JSON lines with ids, stdlib loggers routed through structlog, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chassis.context import request_id_var
from chassis.logging import REDACTED, configure_logging
from chassis.settings import BaseServiceSettings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging(BaseServiceSettings(service_name="shop"), json_output=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()
    logging.getLogger().handlers = [
        handler for handler in logging.getLogger().handlers if handler.get_name() != "chassis"
    ]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_line_carries_service_request_and_trace_ids(stream: io.StringIO) -> None:
    context = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    token = request_id_var.set("req-42")
    try:
        with trace.use_span(NonRecordingSpan(context)):
            structlog.get_logger("test").info("order_placed", items=3)
    finally:
        request_id_var.reset(token)
    (line,) = lines(stream)
    assert line["event"] == "order_placed"
    assert line["items"] == 3
    assert line["service"] == "shop"
    assert line["request_id"] == "req-42"
    assert line["trace_id"] == format(0xABC, "032x")
    assert line["span_id"] == format(0xDEF, "016x")
    assert line["level"] == "info"
    assert "timestamp" in line


def test_sensitive_values_are_redacted_wherever_they_are(stream: io.StringIO) -> None:
    structlog.get_logger("test").info(
        "login",
        password="hunter2",
        refresh_token="rt-123",
        headers={"Authorization": "Bearer abc", "Accept": "json"},
        attempts=[{"client_secret": "cs-1"}],
    )
    (line,) = lines(stream)
    text = json.dumps(line)
    for secret in ("hunter2", "rt-123", "Bearer abc", "cs-1"):
        assert secret not in text
    assert line["password"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}


def test_stdlib_loggers_are_routed_through_structlog(stream: io.StringIO) -> None:
    token = request_id_var.set("req-7")
    try:
        logging.getLogger("uvicorn.error").warning("worker %s busy", 3)
        logging.getLogger("arq.worker").info("job done", extra={"token": "t-1"})
    finally:
        request_id_var.reset(token)
    first, second = lines(stream)
    assert first["event"] == "worker 3 busy"
    assert first["logger"] == "uvicorn.error"
    assert first["request_id"] == "req-7"
    assert second["token"] == REDACTED


def test_exceptions_are_logged_with_their_traceback(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("test").exception("failed")
    (line,) = lines(stream)
    assert "ValueError" in json.dumps(line["exception"])


def fail_with_a_secret_local() -> None:
    signing_key = "local-secret-4242"  # noqa: F841 - what a traceback must not show
    raise ValueError("boom")


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "console"])
def test_tracebacks_leave_out_local_variables(json_output: bool) -> None:
    buffer = io.StringIO()
    configure_logging(BaseServiceSettings(), json_output=json_output, stream=buffer)
    try:
        try:
            fail_with_a_secret_local()
        except ValueError:
            structlog.get_logger("test").exception("failed")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers = [handler for handler in root.handlers if handler.get_name() != "chassis"]
    output = buffer.getvalue()
    assert "fail_with_a_secret_local" in output
    assert "ValueError" in output
    assert "local-secret-4242" not in output


def test_console_output_in_development() -> None:
    buffer = io.StringIO()
    configure_logging(BaseServiceSettings(), stream=buffer)
    try:
        structlog.get_logger("test").info("hello", password="p")
        output = buffer.getvalue()
        assert "hello" in output
        assert "p'" not in output.replace(REDACTED, "")
        assert not output.lstrip().startswith("{")
    finally:
        structlog.reset_defaults()


def test_values_orjson_refuses_are_still_written(stream: io.StringIO) -> None:
    class Custom:
        def __repr__(self) -> str:
            return "<custom>"

    structlog.get_logger("test").info("big", huge=2**70, custom=Custom(), by_id={7: "seven"})

    (line,) = lines(stream)
    assert line["huge"] == 2**70
    assert line["custom"] == "<custom>"
    assert line["by_id"] == {"7": "seven"}


def test_timestamp_is_iso_8601_utc_with_microseconds(stream: io.StringIO) -> None:
    structlog.get_logger("test").info("first")
    structlog.get_logger("test").info("second")

    stamps = [str(line["timestamp"]) for line in lines(stream)]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert parsed.utcoffset() == timedelta(0)
    assert stamps[0] <= stamps[1]
