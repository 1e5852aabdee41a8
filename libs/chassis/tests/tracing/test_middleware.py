"""The server span: one per request, named by route template, child of the caller's trace."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode

from chassis.middleware import TelemetryMiddleware
from chassis.tracing import FASTAPI_TELEMETRY_OFF

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


def make_app() -> FastAPI:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_middleware(TelemetryMiddleware, service="test", tracing=True)
    return app


async def request(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get(path, headers=headers)).status_code


async def test_span_continues_the_callers_trace(span_exporter: Any) -> None:
    status = await request(
        make_app(), "/items/7", {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
    )
    assert status == 200
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/items/7"


async def test_one_span_per_request_without_message_spans(span_exporter: Any) -> None:
    await request(make_app(), "/items/1")
    spans = span_exporter.get_finished_spans()
    assert [span.name for span in spans] == ["GET /items/{item_id}"]
    assert spans[0].parent is None


async def test_unsampled_parent_records_nothing(span_exporter: Any) -> None:
    await request(make_app(), "/items/1", {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00"})
    assert span_exporter.get_finished_spans() == ()


async def test_server_errors_mark_the_span(span_exporter: Any) -> None:
    assert await request(make_app(), "/broken") == 500
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


async def test_unmatched_path_keeps_the_method_name(span_exporter: Any) -> None:
    assert await request(make_app(), "/nowhere") == 404
    (span,) = span_exporter.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in span.attributes
