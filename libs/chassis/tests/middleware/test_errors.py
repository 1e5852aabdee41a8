from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from chassis.errors import install_error_handlers
from chassis.middleware import (
    TelemetryMiddleware,
    UnhandledErrorMiddleware,
)
from chassis.types import Receive, Scope, Send

LogEvents = list[dict[str, Any]]
SECRET_MESSAGE = "password=hunter2 at db.internal:5432"


def crashing_api() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(TelemetryMiddleware, service="test")

    @app.get("/crash")
    async def crash() -> None:
        raise ValueError(SECRET_MESSAGE)

    return app


async def test_500_problem_reveals_nothing_and_names_the_request(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(crashing_api()) as client:
        response = await client.get("/crash")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500
    assert body["detail"] == "An unexpected error occurred."
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert "hunter2" not in response.text
    assert "ValueError" not in response.text


async def test_crash_is_logged_with_traceback_and_request_id(
    asgi_client: Callable[..., Any], log_events: LogEvents
) -> None:
    async with asgi_client(crashing_api()) as client:
        response = await client.get("/crash", headers={"X-Request-ID": "crash-1"})

    [event] = [e for e in log_events if e["event"] == "unhandled_error"]
    assert event["request_id"] == "crash-1" == response.headers["x-request-id"]
    assert event["log_level"] == "error"
    assert event["path"] == "/crash"
    assert "Traceback (most recent call last)" in event["exception"]
    assert SECRET_MESSAGE in event["exception"]
    [access] = [e for e in log_events if e["event"] == "http_request"]
    assert access["status"] == 500
    assert access["request_id"] == "crash-1"


async def test_crash_after_response_started_is_logged_and_reraised(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    async def dies_mid_stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("stream broke")

    call = raw_call()
    with pytest.raises(RuntimeError, match="stream broke"):
        await call(UnhandledErrorMiddleware(dies_mid_stream), make_scope())

    assert [message["type"] for message in call.sent] == ["http.response.start"]
    [event] = log_events
    assert event["event"] == "unhandled_error"
    assert event["response_started"] is True


async def test_escaped_http_exception_keeps_its_status(asgi_client: Callable[..., Any]) -> None:
    async def refuses(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(405, detail="Use POST.", headers={"Allow": "POST"})

    async with asgi_client(UnhandledErrorMiddleware(refuses)) as client:
        response = await client.get("/")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["detail"] == "Use POST."


async def test_escaped_http_exception_after_response_started_is_reraised(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    async def refuses_late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise HTTPException(413)

    call = raw_call()
    with pytest.raises(HTTPException):
        await call(UnhandledErrorMiddleware(refuses_late), make_scope())

    assert call.status == 200


async def test_non_http_scopes_pass_through(raw_call: Any) -> None:
    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("startup failed")

    with pytest.raises(RuntimeError, match="startup failed"):
        await raw_call()(UnhandledErrorMiddleware(lifespan), {"type": "lifespan"})


async def test_websocket_passes_through(raw_call: Any, make_scope: Callable[..., Scope]) -> None:
    async def socket(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})

    call = raw_call()
    await call(UnhandledErrorMiddleware(socket), make_scope(scope_type="websocket"))

    assert call.sent == [{"type": "websocket.accept"}]
