from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from chassis.middleware import TelemetryMiddleware, UnhandledErrorMiddleware
from chassis.types import Receive, Scope, Send

DEADLINE = 0.05


async def never_answers(request: Request) -> PlainTextResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def fast(request: Request) -> PlainTextResponse:
    return PlainTextResponse("done")


async def slow_but_exempt(request: Request) -> PlainTextResponse:
    await asyncio.sleep(DEADLINE * 2)
    return PlainTextResponse("patient")


async def long_stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(4):
            # Four pauses add up to more than the deadline; the stream must survive them.
            await asyncio.sleep(DEADLINE * 0.6)
            yield f"chunk{index};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


def app_with_deadline(**options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/slow", never_answers),
            Route("/fast", fast),
            Route("/stream", long_stream),
            Route("/exempt/slow", slow_but_exempt),
        ],
        middleware=[
            Middleware(TelemetryMiddleware, service="test", timeout_seconds=DEADLINE, **options),
        ],
    )


async def test_slow_handler_is_answered_with_504_problem(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_deadline()) as client:
        response = await client.get("/slow")

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 504
    assert body["title"] == "Gateway Timeout"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_fast_handler_passes(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_deadline()) as client:
        response = await client.get("/fast")

    assert response.status_code == 200
    assert response.text == "done"


async def test_stream_started_in_time_is_not_cut(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_deadline()) as client:
        response = await client.get("/stream")

    assert response.status_code == 200
    assert response.text == "chunk0;chunk1;chunk2;chunk3;"


async def test_exempt_path_has_no_deadline(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_deadline(deadline_exempt_paths=["/exempt/"])) as client:
        response = await client.get("/exempt/slow")

    assert response.status_code == 200
    assert response.text == "patient"


async def test_deadline_is_logged(
    asgi_client: Callable[..., Any], log_events: list[dict[str, Any]]
) -> None:
    async with asgi_client(app_with_deadline()) as client:
        await client.get("/slow")

    [event] = [e for e in log_events if e["event"] == "request_deadline_exceeded"]
    assert event["path"] == "/slow"
    assert event["log_level"] == "warning"


async def test_app_own_timeout_error_is_not_a_504(asgi_client: Callable[..., Any]) -> None:
    async def upstream_timed_out(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("upstream read timed out")

    app = TelemetryMiddleware(
        UnhandledErrorMiddleware(upstream_timed_out), service="test", timeout_seconds=DEADLINE
    )
    async with asgi_client(app) as client:
        response = await client.get("/")

    assert response.status_code == 500


async def test_app_own_timeout_error_propagates_when_nothing_catches_it(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    async def upstream_timed_out(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("upstream read timed out")

    call = raw_call()
    with pytest.raises(TimeoutError, match="upstream"):
        await call(
            TelemetryMiddleware(upstream_timed_out, service="test", timeout_seconds=DEADLINE),
            make_scope(),
        )

    assert call.sent == []


async def test_deadline_hitting_a_starting_response_ends_it_without_second_start(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: list[dict[str, Any]]
) -> None:
    async def answers_while_cancelled(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise

    call = raw_call()
    await call(
        TelemetryMiddleware(answers_while_cancelled, service="test", timeout_seconds=DEADLINE),
        make_scope(),
    )

    assert [message["type"] for message in call.sent] == ["http.response.start"]
    assert call.status == 200
    events = [e["event"] for e in log_events if e["event"] != "http_request"]
    assert events == ["request_deadline_after_response_start"]


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_have_no_deadline(
    scope_type: str, raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    finished: list[str] = []

    async def long_lived(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(DEADLINE * 2)
        finished.append(scope["type"])

    await raw_call()(
        TelemetryMiddleware(long_lived, service="test", timeout_seconds=DEADLINE),
        make_scope(scope_type=scope_type),
    )

    assert finished == [scope_type]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TelemetryMiddleware(fast, service="test", timeout_seconds=0)  # type: ignore[arg-type]


async def test_the_callers_deadline_shortens_the_request_deadline(
    asgi_client: Callable[..., Any],
) -> None:
    import time

    # Our own deadline is far away; the caller (a chassis client) gives up in 50 ms.
    app = Starlette(
        routes=[Route("/slow", never_answers)],
        middleware=[Middleware(TelemetryMiddleware, service="test", timeout_seconds=3600)],
    )
    async with asgi_client(app) as client:
        response = await client.get(
            "/slow", headers={"X-Request-Deadline": f"{time.time() + DEADLINE:.6f}"}
        )

    assert response.status_code == 504
    assert response.json()["title"] == "Gateway Timeout"
