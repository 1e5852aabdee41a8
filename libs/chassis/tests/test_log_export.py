"""Log lines over OTLP: every line, with its trace, redacted, beside stdout."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chassis.log_export import OTLPLogSink, configure_log_export, log_export_wanted
from chassis.logging import configure_logging
from chassis.middleware import TelemetryMiddleware
from chassis.settings import BaseServiceSettings, LogSettings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exported() -> Iterator[InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    settings = BaseServiceSettings(service_name="shop", log=LogSettings(otlp_export=True))
    configure_logging(
        settings, json_output=True, stream=io.TextIOWrapper(io.BytesIO()), log_exporter=exporter
    )
    yield exporter
    structlog.reset_defaults()
    logging.getLogger().handlers = [
        handler for handler in logging.getLogger().handlers if handler.get_name() != "chassis"
    ]


def records(exporter: InMemoryLogRecordExporter) -> list[Any]:
    (sink,) = [p for p in structlog.get_config()["processors"] if isinstance(p, OTLPLogSink)]
    sink.provider.force_flush()
    return [readable.log_record for readable in exporter.get_finished_logs()]


async def test_every_line_and_the_access_line_reach_the_collector_with_their_trace(
    exported: InMemoryLogRecordExporter, span_exporter: Any
) -> None:
    async def order(request: Request) -> PlainTextResponse:
        structlog.get_logger("shop.orders").warning("stock_low", sku="A-1", password="hunter2")
        return PlainTextResponse("ok")

    app = TelemetryMiddleware(
        Starlette(routes=[Route("/orders", order)]), service="shop", tracing=True
    )
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        await client.get("/orders", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    logging.getLogger("uvicorn.error").error("stdlib line")

    inside, access, stdlib = records(exported)
    assert inside.body == "stock_low"
    assert inside.severity_text == "WARNING"
    assert inside.attributes["sku"] == "A-1"
    assert inside.attributes["password"] == "[REDACTED]"
    assert inside.attributes["service"] == "shop"
    assert access.body == "http_request"
    assert access.attributes["status"] == 200
    assert access.attributes["route"] == "/orders"
    # Both lines carry the request's span, which continues the caller's trace.
    (span,) = span_exporter.get_finished_spans()
    for record in (inside, access):
        assert format(record.trace_id, "032x") == TRACE_ID
        assert record.span_id == span.context.span_id
    assert stdlib.body == "stdlib line"
    assert stdlib.severity_text == "ERROR"


def test_export_is_off_without_the_setting_or_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", raising=False)
    wanted = BaseServiceSettings(log=LogSettings(otlp_export=True))
    assert not log_export_wanted(wanted)
    assert configure_log_export(wanted) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert log_export_wanted(wanted)
    assert not log_export_wanted(BaseServiceSettings())


class CollectorDown(LogRecordExporter):
    """What OTLPLogExporter does without a collector: logs a warning, exports nothing."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.batches.append([str(readable.log_record.body) for readable in batch])
        if len(self.batches) > 10:
            return LogRecordExportResult.FAILURE  # the loop is proven: end it, fail fast
        logging.getLogger("opentelemetry.exporter.otlp.proto.http._log_exporter").warning(
            "Failed to export logs batch due to timeout, max retries or shutdown."
        )
        return LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_a_collector_outage_does_not_feed_the_exporters_own_warnings_back_to_it() -> None:
    # Seen in make compose-smoke (no collector there): every failed export logged a warning,
    # the warning became the next batch, and each process retried the collector (a new
    # connection, a name lookup) for good, at rest, tens of DNS queries a second in all.
    exporter = CollectorDown()
    stream = io.StringIO()
    settings = BaseServiceSettings(service_name="shop", log=LogSettings(otlp_export=True))
    configure_logging(settings, json_output=True, stream=stream, log_exporter=exporter)
    try:
        structlog.get_logger("shop.orders").info("order_placed")
        (sink,) = [p for p in structlog.get_config()["processors"] if isinstance(p, OTLPLogSink)]
        for _ in range(3):
            sink.provider.force_flush()
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = [
            handler for handler in logging.getLogger().handlers if handler.get_name() != "chassis"
        ]

    assert exporter.batches == [["order_placed"]]
    # The operator still reads it where every line goes first.
    assert "Failed to export logs batch" in stream.getvalue()
