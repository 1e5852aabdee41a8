"""A real upstream (uvicorn on a free port) sees the request id and the trace context."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chassis.context import request_id_var
from chassis.http import UpstreamClient
from chassis.settings import UpstreamSettings

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def active_span() -> NonRecordingSpan:
    return NonRecordingSpan(
        SpanContext(
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )


async def echoed_headers(client: UpstreamClient, **kwargs) -> dict[str, str]:
    response = await client.get("/echo", **kwargs)
    assert response.status_code == 200
    headers: dict[str, str] = response.json()["headers"]
    return headers


async def test_upstream_sees_the_request_id_and_traceparent(live_upstream, upstream_name):
    token = request_id_var.set("req-1234")
    try:
        settings = UpstreamSettings(base_url=live_upstream)
        async with UpstreamClient(upstream_name, settings) as client:
            with trace.use_span(active_span(), end_on_exit=False):
                headers = await echoed_headers(client)
    finally:
        request_id_var.reset(token)

    assert headers["x-request-id"] == "req-1234"
    assert headers["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"


async def test_a_request_id_the_caller_set_is_kept(live_upstream, upstream_name):
    token = request_id_var.set("req-from-context")
    try:
        settings = UpstreamSettings(base_url=live_upstream)
        async with UpstreamClient(upstream_name, settings) as client:
            headers = await echoed_headers(client, headers={"X-Request-ID": "req-explicit"})
    finally:
        request_id_var.reset(token)

    assert headers["x-request-id"] == "req-explicit"


async def test_outside_a_request_and_a_span_nothing_is_invented(live_upstream, upstream_name):
    async with UpstreamClient(upstream_name, UpstreamSettings(base_url=live_upstream)) as client:
        headers = await echoed_headers(client)

    assert "x-request-id" not in headers
    assert "traceparent" not in headers


async def test_every_retried_attempt_carries_the_request_id(scripted, make_upstream_client):
    upstream = scripted(503, 200)
    client = make_upstream_client(upstream)
    token = request_id_var.set("req-retried")
    try:
        with trace.use_span(active_span(), end_on_exit=False):
            await client.get("/things")
    finally:
        request_id_var.reset(token)

    assert [r.headers["x-request-id"] for r in upstream.requests] == ["req-retried"] * 2
    assert all(f"{TRACE_ID:032x}" in r.headers["traceparent"] for r in upstream.requests)


async def test_upstream_sees_when_the_call_stops_waiting(live_upstream, upstream_name):
    settings = UpstreamSettings(base_url=live_upstream, deadline_seconds=7.0)
    before = time.time()
    async with UpstreamClient(upstream_name, settings) as client:
        headers = await echoed_headers(client)
    after = time.time()

    assert before + 7.0 - 0.001 <= float(headers["x-request-deadline"]) <= after + 7.0
