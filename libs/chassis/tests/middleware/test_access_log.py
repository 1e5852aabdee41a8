from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from chassis.middleware import TelemetryMiddleware
from chassis.types import Receive, Scope, Send

LogEvents = list[dict[str, Any]]


async def get_item(request: Request) -> JSONResponse:
    return JSONResponse({"item_id": request.path_params["item_id"]})


async def readiness(request: Request) -> PlainTextResponse:
    ready = request.app.state.ready
    return PlainTextResponse("ready" if ready else "not ready", status_code=200 if ready else 503)


def routes_only(*, ready: bool = True, middleware: list[Middleware] | None = None) -> Starlette:
    app = Starlette(
        routes=[Route("/items/{item_id}", get_item), Route("/health/ready", readiness)],
        middleware=middleware,
    )
    app.state.ready = ready
    return app


def logged_app(*, ready: bool = True) -> Starlette:
    return routes_only(
        ready=ready,
        middleware=[Middleware(TelemetryMiddleware, service="test")],
    )


def access_lines(events: LogEvents) -> LogEvents:
    return [event for event in events if event["event"] == "http_request"]


async def test_one_line_per_request_names_the_route_template(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async with asgi_client(logged_app()) as client:
        response = await client.get("/items/42", headers={"User-Agent": "probe/1.0"})

    [line] = access_lines(log_events)
    assert line["route"] == "/items/{item_id}"
    assert line["path"] == "/items/42"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["bytes"] == len(response.content)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"
    assert line["user_agent"] == "probe/1.0"
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["log_level"] == "info"


async def test_unmatched_path_is_not_used_as_route(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async with asgi_client(logged_app()) as client:
        await client.get("/nothing/here")

    [line] = access_lines(log_events)
    assert line["route"] == "<unmatched>"
    assert line["path"] == "/nothing/here"
    assert line["status"] == 404


async def test_quiet_path_is_not_logged_when_it_succeeds(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async with asgi_client(logged_app(ready=True)) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert access_lines(log_events) == []


async def test_quiet_path_is_logged_as_error_when_it_fails(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async with asgi_client(logged_app(ready=False)) as client:
        await client.get("/health/ready")

    [line] = access_lines(log_events)
    assert line["status"] == 503
    assert line["route"] == "/health/ready"
    assert line["log_level"] == "error"


async def test_app_raising_before_answering_is_logged_as_500_and_reraised(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async def crashes(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async with asgi_client(TelemetryMiddleware(crashes, service="test")) as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.get("/crash")

    [line] = access_lines(log_events)
    assert line["status"] == 500
    assert line["failed"] is True
    assert line["log_level"] == "error"
    assert line["route"] == "<unmatched>"
    assert len(line["request_id"]) == 32  # the telemetry layer gives even a crash an id


async def test_response_cut_short_is_logged_as_failed_with_its_status(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    async def dies_mid_stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError):
        await raw_call()(
            TelemetryMiddleware(dies_mid_stream, service="test"), make_scope("/health/live")
        )

    [line] = access_lines(log_events)
    assert line["status"] == 200
    assert line["bytes"] == 4
    assert line["failed"] is True
    assert line["log_level"] == "error"


async def test_trailers_are_not_counted_as_body_bytes(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"12345"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    await raw_call()(TelemetryMiddleware(with_trailers, service="test"), make_scope())

    [line] = access_lines(log_events)
    assert line["bytes"] == 5


async def test_without_quiet_paths_every_request_is_logged(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    app = TelemetryMiddleware(routes_only(), service="test", quiet_paths=())
    async with asgi_client(app, client=("203.0.113.9", 4000)) as client:
        await client.get("/health/ready")

    [line] = access_lines(log_events)
    assert line["route"] == "/health/ready"
    assert line["client"] == "203.0.113.9"
    assert line["user_agent"].startswith("python-httpx/")


async def test_lifespan_is_not_logged(raw_call: Any, log_events: LogEvents) -> None:
    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    await raw_call()(TelemetryMiddleware(lifespan, service="test"), {"type": "lifespan"})

    assert log_events == []


async def test_request_without_client_or_user_agent(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    await raw_call()(
        TelemetryMiddleware(routes_only(), service="test"), make_scope("/items/1", client=None)
    )

    [line] = access_lines(log_events)
    assert line["client"] is None
    assert line["user_agent"] is None
