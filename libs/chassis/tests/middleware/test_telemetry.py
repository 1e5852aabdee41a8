"""The fused telemetry layer: what one layer promises that five used to.

The request id, access line, metrics, span and deadline each have their own
test module; these are the promises that come from fusing them: the sampling
draw before any span, the access line rendered without structlog's chain but
with the same keys, access-line sampling, and the stack order (every answer of
the layers inside carries the id and is logged).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from chassis.builder import AppBuilder
from chassis.logging import configure_logging
from chassis.middleware import TelemetryMiddleware
from chassis.settings import BaseServiceSettings, LogSettings, SecuritySettings
from chassis.tracing import ChassisSampler, inject_trace_context
from chassis.types import ASGIApp

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
ACCESS_FIELDS = ("method", "route", "path", "status", "bytes", "client", "request_id")


def traced(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ChassisSampler(ratio))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def downstream_app(provider: TracerProvider, *, status: int = 200) -> ASGIApp:
    """A handler that does what a service does under a request: a child span, an upstream call."""

    async def handler(request: Request) -> JSONResponse:
        with provider.get_tracer("test.child").start_as_current_span("SELECT orders"):
            under_child = inject_trace_context()
        return JSONResponse(
            {
                "traceparent": inject_trace_context().get("traceparent"),
                "under_child": under_child.get("traceparent"),
            },
            status_code=status,
        )

    from starlette.applications import Starlette

    return Starlette(routes=[Route("/orders", handler)])


def traced_app(ratio: float) -> tuple[ASGIApp, InMemorySpanExporter]:
    """`downstream_app` behind the telemetry layer, traced at `ratio` by its own provider."""
    provider, exporter = traced(ratio)
    app = TelemetryMiddleware(
        downstream_app(provider), service="test", tracing=True, tracer_provider=provider
    )
    return app, exporter


# --- sampling happens before any span ------------------------------------------------------


async def test_an_unsampled_request_records_nothing_and_tells_downstream_so(
    asgi_client: Callable[..., Any],
) -> None:
    app, exporter = traced_app(0.0)
    async with asgi_client(app) as client:
        fresh = (await client.get("/orders")).json()
        continued = (
            await client.get("/orders", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-00"})
        ).json()

    # Neither the server span nor the database span under it: the child did not start a trace.
    assert exporter.get_finished_spans() == ()
    # Downstream keeps the decision instead of drawing again, with the caller's trace id
    # where no span of another library is current.
    for answer in (fresh, continued):
        for header in answer.values():
            assert not sampled(header), header
    assert continued["traceparent"].startswith(f"00-{TRACE_ID}-")


async def test_library_instrumentation_is_suppressed_only_under_an_unsampled_request(
    asgi_client: Callable[..., Any],
) -> None:
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from starlette.applications import Starlette

    async def handler(request: Request) -> JSONResponse:
        return JSONResponse({"instrumented": is_instrumentation_enabled()})

    answers = {}
    for ratio in (0.0, 1.0):
        provider, _ = traced(ratio)
        app = TelemetryMiddleware(
            Starlette(routes=[Route("/orders", handler)]),
            service="test",
            tracing=True,
            tracer_provider=provider,
        )
        async with asgi_client(app) as client:
            answers[ratio] = (await client.get("/orders")).json()["instrumented"]

    # Unsampled: the SQL, Redis and httpx instrumentations skip their spans altogether.
    assert answers == {0.0: False, 1.0: True}
    # And the suppression ends with the request.
    assert is_instrumentation_enabled()


def sampled(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 1)


async def test_a_sampled_request_has_one_server_span_and_its_children(
    asgi_client: Callable[..., Any],
) -> None:
    app, exporter = traced_app(1.0)
    async with asgi_client(app) as client:
        outgoing = (await client.get("/orders")).json()["traceparent"]

    child, server = exporter.get_finished_spans()
    assert server.name == "GET /orders"
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id
    assert sampled(outgoing)


async def test_the_draw_samples_at_the_ratio_not_its_square(
    asgi_client: Callable[..., Any],
) -> None:
    # 400 requests at 0.5: binomial mean 200, sd 10. Drawing twice (0.25) would give 100.
    app, exporter = traced_app(0.5)
    async with asgi_client(app) as client:
        for _ in range(400):
            await client.get("/orders")

    servers = [span for span in exporter.get_finished_spans() if span.name == "GET /orders"]
    assert 140 <= len(servers) <= 260


def test_the_sampler_follows_parents_and_drops_roots_under_an_unsampled_request() -> None:
    from opentelemetry.sdk.trace.sampling import Decision

    from chassis.tracing.sampling import (
        clear_drawn_sampled,
        mark_drawn_sampled,
        unsampled_trace,
    )

    never = ChassisSampler(0.0)
    always = ChassisSampler(1.0)
    assert never.should_sample(None, 1, "job").decision is Decision.DROP
    assert always.should_sample(None, 1, "job").decision is Decision.RECORD_AND_SAMPLE
    drawn = mark_drawn_sampled()
    try:
        assert never.should_sample(None, 1, "GET").decision is Decision.RECORD_AND_SAMPLE
    finally:
        clear_drawn_sampled(drawn)
    unsampled = unsampled_trace.set(0)
    try:
        assert always.should_sample(None, 1, "SELECT").decision is Decision.DROP
    finally:
        unsampled_trace.reset(unsampled)


# --- the access line -----------------------------------------------------------------------


@pytest.fixture
def json_stream() -> Iterator[io.TextIOWrapper]:
    """The process's JSON logging onto a text stream over bytes, as stdout is."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    configure_logging(BaseServiceSettings(service_name="shop"), json_output=True, stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers = [
        handler for handler in logging.getLogger().handlers if handler.get_name() != "chassis"
    ]


def written(stream: io.TextIOWrapper) -> list[dict[str, Any]]:
    stream.flush()
    raw = stream.buffer.getvalue().decode()  # type: ignore[attr-defined]
    return [json.loads(line) for line in raw.splitlines()]


async def ok(request: Request) -> PlainTextResponse:
    structlog.get_logger("handler").info("inside")
    return PlainTextResponse("fine")


async def broken(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=503)


def plain_app() -> ASGIApp:
    from starlette.applications import Starlette

    return Starlette(routes=[Route("/ok", ok), Route("/broken", broken)])


async def test_the_access_line_has_the_shape_of_every_other_line_in_order(
    asgi_client: Callable[..., Any], json_stream: io.TextIOWrapper
) -> None:
    async with asgi_client(TelemetryMiddleware(plain_app(), service="shop")) as client:
        await client.get("/ok", headers={"User-Agent": "probe/1", "X-Request-ID": "r-1"})
    inside, access = written(json_stream)
    # The same fields sent through structlog's whole chain, for comparison.
    structlog.get_logger("chassis.access").info(
        "http_request",
        **{key: access[key] for key in (*ACCESS_FIELDS, "duration_ms")},
        user_agent="probe/1",
    )
    *_, through_structlog = written(json_stream)

    assert inside["event"] == "inside"
    assert inside["request_id"] == "r-1"
    assert access["event"] == "http_request"
    assert access["status"] == 200
    assert set(access) == set(through_structlog)
    for key in set(access) - {"timestamp"}:
        assert access[key] == through_structlog[key], key


async def test_access_lines_can_be_sampled_but_failures_never_are(
    asgi_client: Callable[..., Any], json_stream: io.TextIOWrapper
) -> None:
    app = TelemetryMiddleware(plain_app(), service="shop", access_sample_ratio=0.0)
    async with asgi_client(app) as client:
        for _ in range(5):
            await client.get("/ok")
        await client.get("/broken")

    access = [line for line in written(json_stream) if line["event"] == "http_request"]
    assert [line["status"] for line in access] == [503]
    assert access[0]["level"] == "error"


# --- the order: every answer below the layer has an id and a line ---------------------------


def stacked_app() -> FastAPI:
    router = APIRouter()

    @router.get("/items")
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    settings = BaseServiceSettings(
        service_name="shop",
        log=LogSettings(quiet_paths=[], json_output=True),
        security=SecuritySettings(
            allowed_hosts=["shop.example.com"], cors_origins=["https://app.example.com"]
        ),
    )
    return AppBuilder(settings).with_routes(router).build()


async def test_preflights_and_host_refusals_carry_an_id_and_are_logged(
    asgi_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The builder configures JSON logging onto stdout: the access lines are read there.
    async with asgi_client(stacked_app(), base_url="http://shop.example.com") as client:
        preflight = await client.options(
            "/items",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
            },
        )
        refused = await client.get("/items", headers={"Host": "evil.example.com"})

    assert preflight.status_code == 200
    assert preflight.headers["x-request-id"]
    assert refused.status_code == 400
    assert refused.headers["x-request-id"]
    # Security headers are outside the telemetry layer: its 504s and these answers get them.
    assert refused.headers["x-content-type-options"] == "nosniff"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    statuses = {
        line["request_id"]: line["status"] for line in lines if line["event"] == "http_request"
    }
    assert statuses[preflight.headers["x-request-id"]] == 200
    assert statuses[refused.headers["x-request-id"]] == 400


async def test_an_access_line_is_written_out_before_the_loop_waits_again(
    asgi_client: Callable[..., Any], tmp_path: Any
) -> None:
    # A real file under a buffered writer, as stdout is: what a log collector would read.
    path = tmp_path / "stdout.log"
    with path.open("w", encoding="utf-8") as stream:
        configure_logging(BaseServiceSettings(service_name="shop"), json_output=True, stream=stream)
        try:
            async with asgi_client(TelemetryMiddleware(plain_app(), service="shop")) as client:
                await client.get("/ok")
                await asyncio.sleep(0)
                on_disk = [json.loads(line) for line in path.read_text().splitlines()]
        finally:
            structlog.reset_defaults()
            logging.getLogger().handlers = [
                handler
                for handler in logging.getLogger().handlers
                if handler.get_name() != "chassis"
            ]
    assert [line["event"] for line in on_disk] == ["inside", "http_request"]
