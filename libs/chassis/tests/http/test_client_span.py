"""The chassis client's own span (aiohttp transport) against a real upstream: sampled or not."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import chassis.tracing
from chassis.errors import ServiceError
from chassis.http import UpstreamClient
from chassis.settings import UpstreamSettings
from chassis.testing.processes import free_port
from chassis.tracing.sampling import unsampled_trace

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


@pytest.fixture
def tracing_on(span_exporter: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # What configure_tracing sets once a provider exports; span_exporter is that provider.
    monkeypatch.setitem(chassis.tracing._state, "active", True)
    return span_exporter


def client_spans(exporter: Any) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]


async def test_a_sampled_call_gets_one_client_span_that_parents_the_upstream(
    tracing_on: Any, live_upstream: str, upstream_name: str
) -> None:
    settings = UpstreamSettings(base_url=live_upstream)
    assert settings.transport == "aiohttp"
    async with UpstreamClient(upstream_name, settings) as client:
        with trace.get_tracer("test").start_as_current_span("server") as server:
            response = await client.get("/echo", params={"q": "1"})

    (span,) = client_spans(tracing_on)
    assert span.name == "GET"
    assert span.parent.span_id == server.get_span_context().span_id
    assert span.context.trace_id == server.get_span_context().trace_id
    port = int(live_upstream.rsplit(":", 1)[1])
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": f"{live_upstream}/echo?q=1",
        "peer.service": upstream_name,
        "http.response.status_code": 200,
    }
    assert span.status.status_code == StatusCode.UNSET
    # The upstream's parent is the client span, not the caller's server span.
    trace_id, parent = response.json()["headers"]["traceparent"].split("-")[1:3]
    assert (trace_id, parent) == (
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    )


async def test_an_unsampled_call_records_nothing_and_says_so_downstream(
    tracing_on: Any, live_upstream: str, upstream_name: str
) -> None:
    token = unsampled_trace.set(TRACE_ID)
    try:
        async with UpstreamClient(upstream_name, UpstreamSettings(base_url=live_upstream)) as c:
            response = await c.get("/echo")
    finally:
        unsampled_trace.reset(token)

    assert tracing_on.get_finished_spans() == ()
    traceparent = response.json()["headers"]["traceparent"]
    assert traceparent.startswith(f"00-{TRACE_ID:032x}-")
    assert traceparent.endswith("-00")


async def test_an_error_answer_marks_the_span_as_failed(
    tracing_on: Any, live_upstream: str, upstream_name: str
) -> None:
    async with UpstreamClient(upstream_name, UpstreamSettings(base_url=live_upstream)) as client:
        with trace.get_tracer("test").start_as_current_span("server"):
            response = await client.get("/missing")

    assert response.status_code == 404
    (span,) = client_spans(tracing_on)
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["error.type"] == "404"
    assert span.status.status_code == StatusCode.ERROR


async def test_each_failed_attempt_ends_its_span_with_the_error_type(
    tracing_on: Any, upstream_name: str
) -> None:
    settings = UpstreamSettings(
        base_url=f"http://127.0.0.1:{free_port()}",
        retry_attempts=2,
        retry_backoff_initial_seconds=0,
    )
    async with UpstreamClient(upstream_name, settings) as client:
        with trace.get_tracer("test").start_as_current_span("server"), pytest.raises(ServiceError):
            await client.get("/echo")

    spans = client_spans(tracing_on)
    assert len(spans) == 2
    assert {s.attributes["error.type"] for s in spans} == {"ConnectError"}
    assert all(s.status.status_code == StatusCode.ERROR for s in spans)
    assert all("http.response.status_code" not in s.attributes for s in spans)
