"""The request-head limit: 431 problem for oversized headers, everything else untouched."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from chassis.middleware.header_limit import HeaderLimitMiddleware, head_size

LIMIT = 2048


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def limited_app() -> Starlette:
    return Starlette(
        routes=[Route("/", ok), WebSocketRoute("/ws", echo)],
        middleware=[Middleware(HeaderLimitMiddleware, max_header_bytes=LIMIT)],
    )


async def get(headers: dict[str, str], path: str = "/") -> httpx.Response:
    transport = httpx.ASGITransport(app=limited_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_headers_within_the_limit_pass() -> None:
    response = await get({"X-Padding": "a" * (LIMIT // 2)})

    assert response.status_code == 200
    assert response.text == "ok"


async def test_oversized_headers_get_a_431_problem() -> None:
    response = await get({"Authorization": "Bearer " + "a" * LIMIT})

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Request Header Fields Too Large"


async def test_many_small_headers_add_up() -> None:
    response = await get({f"X-Part-{n}": "a" * 40 for n in range(60)})

    assert response.status_code == 431


async def test_an_oversized_query_string_counts_too() -> None:
    response = await get({}, path="/?q=" + "a" * LIMIT)

    assert response.status_code == 431


async def websocket_handshake(headers: list[tuple[bytes, bytes]]) -> list[dict[str, object]]:
    """What the middleware sends for a websocket connection with `headers`."""
    sent: list[dict[str, object]] = []
    messages = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect"}])

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": headers,
        "scheme": "ws",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    await limited_app()(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def test_an_oversized_websocket_handshake_is_refused() -> None:
    sent = await websocket_handshake([(b"x-padding", b"a" * LIMIT)])

    assert sent == [{"type": "websocket.close", "code": 1009}]


async def test_a_normal_websocket_handshake_passes() -> None:
    sent = await websocket_handshake([(b"host", b"test")])

    assert sent[0]["type"] == "websocket.accept"


def test_head_size_counts_target_names_values_and_separators() -> None:
    scope = {
        "type": "http",
        "path": "/a",
        "raw_path": b"/a",
        "query_string": b"x=1",
        "headers": [(b"host", b"test")],
    }

    assert head_size(scope) == len(b"/a") + len(b"x=1") + len(b"host") + len(b"test") + 4


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        HeaderLimitMiddleware(ok, max_header_bytes=0)  # type: ignore[arg-type]


async def test_lifespan_passes_through() -> None:
    received = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        received.append(scope["type"])

    await HeaderLimitMiddleware(app, max_header_bytes=LIMIT)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]

    assert received == ["lifespan"]
