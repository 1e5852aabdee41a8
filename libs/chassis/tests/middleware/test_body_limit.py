from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chassis.errors import install_error_handlers
from chassis.middleware import BodyLimitMiddleware, RequestBodyTooLarge
from chassis.types import Message, Receive, Scope, Send

LIMIT = 1024


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece


async def digest(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


def limited_app() -> Starlette:
    return Starlette(
        routes=[Route("/upload", digest, methods=["POST"])],
        middleware=[Middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)],
    )


class ConsumesReceive:
    """A raw ASGI endpoint reading the whole body, so the limit's signal reaches the middleware."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def assert_413_problem(response: Any) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413


async def test_declared_length_over_limit_is_refused_before_the_app_runs(
    asgi_client: Callable[..., Any],
) -> None:
    endpoint = ConsumesReceive()
    async with asgi_client(BodyLimitMiddleware(endpoint, max_body_bytes=LIMIT)) as client:
        response = await client.post("/", content=b"x" * (LIMIT + 1))

    assert_413_problem(response)
    assert endpoint.called is False


async def test_chunked_body_over_limit_is_refused(asgi_client: Callable[..., Any]) -> None:
    endpoint = ConsumesReceive()
    async with asgi_client(BodyLimitMiddleware(endpoint, max_body_bytes=LIMIT)) as client:
        response = await client.post("/", content=chunks(LIMIT * 3))

    assert "content-length" not in response.request.headers
    assert_413_problem(response)


async def test_chunked_body_over_limit_read_by_a_fastapi_route_is_a_413_problem(
    asgi_client: Callable[..., Any],
) -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)

    @app.post("/items")
    async def create_item(item: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(item)}

    async def big_json() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        async for piece in chunks(LIMIT * 2):
            yield piece
        yield b'"}'

    async with asgi_client(app) as client:
        response = await client.post(
            "/items", content=big_json(), headers={"content-type": "application/json"}
        )

    assert_413_problem(response)


@pytest.mark.parametrize("size", [0, LIMIT - 1, LIMIT])
async def test_body_within_limit_passes_intact(size: int, asgi_client: Callable[..., Any]) -> None:
    expected = hashlib.sha256(b"x" * size).hexdigest()
    async with asgi_client(limited_app()) as client:
        declared = await client.post("/upload", content=b"x" * size)
        chunked = await client.post("/upload", content=chunks(size))

    for response in (declared, chunked):
        assert response.status_code == 200
        assert response.json() == {"size": size, "sha256": expected}


async def test_body_over_limit_after_response_started_aborts(
    asgi_client: Callable[..., Any],
) -> None:
    async def answers_then_reads(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body", False):
            pass

    app = BodyLimitMiddleware(answers_then_reads, max_body_bytes=LIMIT)
    async with asgi_client(app) as client:
        with pytest.raises(RequestBodyTooLarge):
            await client.post("/", content=chunks(LIMIT * 2))


async def test_malformed_content_length_is_counted_instead(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    incoming: list[Message] = [
        {"type": "http.request", "body": b"x" * LIMIT, "more_body": True},
        {"type": "http.request", "body": b"x", "more_body": False},
    ]
    call = raw_call(incoming)
    scope = make_scope(method="POST", headers=[(b"content-length", b"twelve")])

    await call(BodyLimitMiddleware(ConsumesReceive(), max_body_bytes=LIMIT), scope)

    assert call.status == 413


async def test_http2_body_without_length_is_counted(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    incoming: list[Message] = [
        {"type": "http.request", "body": b"x" * LIMIT, "more_body": True},
        {"type": "http.request", "body": b"x", "more_body": False},
    ]
    call = raw_call(incoming)
    scope = {**make_scope(method="POST", headers=[]), "http_version": "2"}

    await call(BodyLimitMiddleware(ConsumesReceive(), max_body_bytes=LIMIT), scope)

    assert call.status == 413


async def test_client_disconnect_mid_upload_reaches_the_app(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    incoming: list[Message] = [
        {"type": "http.request", "body": b"x" * 10, "more_body": True},
        {"type": "http.disconnect"},
    ]
    call = raw_call(incoming)
    scope = make_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])

    await call(BodyLimitMiddleware(ConsumesReceive(), max_body_bytes=LIMIT), scope)

    assert call.status == 200
    assert call.sent[-1]["body"] == b"10"


async def test_websocket_passes_through(raw_call: Any, make_scope: Callable[..., Scope]) -> None:
    endpoint = ConsumesReceive()
    await raw_call()(
        BodyLimitMiddleware(endpoint, max_body_bytes=0), make_scope(scope_type="websocket")
    )

    assert endpoint.called is True


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        BodyLimitMiddleware(ConsumesReceive(), max_body_bytes=-1)
