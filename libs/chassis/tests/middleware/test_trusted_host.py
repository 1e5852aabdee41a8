from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.responses import PlainTextResponse

from chassis.middleware import TrustedHostMiddleware
from chassis.types import Receive, Scope, Send

ALLOWED = ["api.example.org", "*.example.com", "[::1]"]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    await PlainTextResponse("hello")(scope, receive, send)


def guarded(allowed: list[str] | None = None) -> TrustedHostMiddleware:
    return TrustedHostMiddleware(hello, allowed_hosts=ALLOWED if allowed is None else allowed)


@pytest.mark.parametrize(
    "host",
    ["api.example.org", "API.Example.org:8443", "a.example.com", "b.a.example.com", "[::1]:8000"],
)
async def test_allowed_host_passes(host: str, asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(guarded()) as client:
        response = await client.get("/", headers={"Host": host})

    assert response.status_code == 200
    assert response.text == "hello"


@pytest.mark.parametrize(
    "host",
    ["evil.test", "example.com", "evilexample.com", "api.example.org.evil.test", "[::2]", "[::1"],
)
async def test_wrong_host_is_refused_with_problem(
    host: str, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(guarded()) as client:
        response = await client.get("/", headers={"Host": host})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Invalid host header"


async def test_star_allows_any_host(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(guarded(["*"])) as client:
        response = await client.get("/", headers={"Host": "whatever.test"})

    assert response.status_code == 200


async def test_missing_host_is_refused(raw_call: Any, make_scope: Callable[..., Scope]) -> None:
    call = raw_call()
    await call(guarded(), make_scope(headers=[]))

    assert call.status == 400


async def test_websocket_to_wrong_host_is_closed_before_accept(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    refused = raw_call()
    await refused(guarded(), make_scope(scope_type="websocket", headers=[(b"host", b"evil.test")]))
    accepted = raw_call()
    await accepted(
        guarded(), make_scope(scope_type="websocket", headers=[(b"host", b"x.example.com")])
    )

    assert refused.sent == [{"type": "websocket.close", "code": 1008}]
    assert accepted.sent == [{"type": "websocket.accept"}]


async def test_lifespan_passes_through(raw_call: Any) -> None:
    seen: list[str] = []

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await raw_call()(
        TrustedHostMiddleware(lifespan, allowed_hosts=["a.test"]), {"type": "lifespan"}
    )

    assert seen == ["lifespan"]
