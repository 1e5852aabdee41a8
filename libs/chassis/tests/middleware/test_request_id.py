from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from chassis.context import get_request_id
from chassis.logging import add_request_and_trace_ids
from chassis.middleware import BodyLimitMiddleware, TelemetryMiddleware
from chassis.types import Receive, Scope, Send

GENERATED = re.compile(r"[0-9a-f]{32}")


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "contextvar": get_request_id(),
            # What every log line gets (chassis.logging's processor reads the variable).
            "log_line": add_request_and_trace_ids(None, "", {}).get("request_id"),
            "state": request.state.request_id,
        }
    )


async def sets_its_own(request: Request) -> PlainTextResponse:
    return PlainTextResponse("proxied", headers={"X-Request-ID": "from-upstream"})


async def upload(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("stored")


async def hangs(request: Request) -> PlainTextResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def socket_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"contextvar": get_request_id(), "state": websocket.state.request_id})
    await websocket.close()


def app_with_request_id() -> Starlette:
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/proxied", sets_its_own),
            Route("/upload", upload, methods=["POST"]),
            Route("/hangs", hangs),
            WebSocketRoute("/ws", socket_whoami),
        ],
        middleware=[
            Middleware(TelemetryMiddleware, service="test", timeout_seconds=0.05),
            Middleware(BodyLimitMiddleware, max_body_bytes=8),
        ],
    )


@pytest.mark.parametrize("incoming", ["abc-123", "A.b_c:d-e", "x" * 128])
async def test_valid_incoming_id_is_echoed_and_used(
    incoming: str, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": incoming})

    assert response.headers["x-request-id"] == incoming
    assert response.json() == {"contextvar": incoming, "log_line": incoming, "state": incoming}


@pytest.mark.parametrize(
    "incoming", ["x" * 129, "has space", "<script>", "semi;colon", "new\\nline", ""]
)
async def test_invalid_incoming_id_is_replaced(
    incoming: str, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": incoming})

    assert response.headers["x-request-id"] != incoming
    assert GENERATED.fullmatch(response.headers["x-request-id"])
    assert response.json()["contextvar"] == response.headers["x-request-id"]


async def test_id_is_generated_when_absent(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_request_id()) as client:
        first = await client.get("/whoami")
        second = await client.get("/whoami")

    assert GENERATED.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_413_from_inner_middleware_carries_the_id(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.post(
            "/upload", content=b"far too large", headers={"X-Request-ID": "big-1"}
        )

    assert response.status_code == 413
    assert response.headers["x-request-id"] == "big-1"
    assert response.json()["request_id"] == "big-1"


async def test_504_from_inner_middleware_carries_the_id(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.get("/hangs")

    assert response.status_code == 504
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_context_is_reset_after_the_request(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": "scoped"})

    assert response.json()["contextvar"] == "scoped"
    # ASGITransport runs the app in this very task: a leaked value would be visible here.
    assert get_request_id() is None
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_id_the_app_set_itself_is_not_duplicated(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(app_with_request_id()) as client:
        response = await client.get("/proxied")

    assert response.headers.get_list("x-request-id") == ["from-upstream"]


async def test_custom_header_name(asgi_client: Callable[..., Any]) -> None:
    app = TelemetryMiddleware(app_with_request_id(), service="test", header_name="X-Correlation-ID")
    async with asgi_client(app) as client:
        response = await client.get("/whoami", headers={"X-Correlation-ID": "corr-9"})

    assert response.headers["x-correlation-id"] == "corr-9"


async def test_websocket_gets_an_id_in_context_and_state(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    call = raw_call([{"type": "websocket.connect"}])
    scope = make_scope(
        "/ws", scope_type="websocket", headers=[(b"x-request-id", b"socket-7")], scheme="ws"
    )

    await call(app_with_request_id(), scope)

    sent = [message for message in call.sent if message["type"] == "websocket.send"]
    assert json.loads(sent[0]["text"]) == {"contextvar": "socket-7", "state": "socket-7"}
    assert get_request_id() is None


async def test_lifespan_passes_through_untouched(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    await raw_call()(TelemetryMiddleware(record, service="test"), {"type": "lifespan"})

    assert seen == [{"type": "lifespan"}]
