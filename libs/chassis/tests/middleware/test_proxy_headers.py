from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.responses import JSONResponse

from chassis.middleware import ProxyHeadersMiddleware, SecurityHeadersMiddleware
from chassis.types import Receive, Scope, Send

TRUSTED = ["10.0.0.0/8", "fd00::/8"]
PROXY_PEER = ("10.0.0.1", 4321)
STRANGER_PEER = ("198.51.100.9", 4321)


async def echo_peer(scope: Scope, receive: Receive, send: Send) -> None:
    client = scope["client"]
    response = JSONResponse({"client": client[0] if client else None, "scheme": scope["scheme"]})
    await response(scope, receive, send)


def behind_proxy(trusted: list[str] | None = None) -> ProxyHeadersMiddleware:
    secured = SecurityHeadersMiddleware(
        echo_peer, hsts_max_age_seconds=600, content_security_policy="default-src 'none'"
    )
    return ProxyHeadersMiddleware(secured, trusted_proxies=TRUSTED if trusted is None else trusted)


async def test_forwarded_headers_from_trusted_proxy_are_honoured(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(behind_proxy(), client=PROXY_PEER) as client:
        response = await client.get(
            "/",
            headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2", "X-Forwarded-Proto": "https"},
        )

    assert response.json() == {"client": "203.0.113.7", "scheme": "https"}
    assert response.headers["strict-transport-security"].startswith("max-age=600")


async def test_forwarded_headers_from_untrusted_peer_are_ignored(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(behind_proxy(), client=STRANGER_PEER) as client:
        response = await client.get(
            "/", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        )

    assert response.json() == {"client": "198.51.100.9", "scheme": "http"}
    assert "strict-transport-security" not in response.headers


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        # The left-most entry was written by the client itself: it is never believed.
        ("1.1.1.1, 2.2.2.2, 10.0.0.3", "2.2.2.2"),
        ("10.0.0.9, 10.0.0.3", "10.0.0.9"),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8::2, fd00::1", "2001:db8::2"),
        ("unknown, 10.0.0.3", "10.0.0.3"),
        ("2.2.2.2, , 10.0.0.3", "10.0.0.3"),
        ("garbage", "10.0.0.1"),
    ],
)
async def test_client_is_the_rightmost_untrusted_hop(
    forwarded_for: str, client: str, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(behind_proxy(), client=PROXY_PEER) as http:
        response = await http.get("/", headers={"X-Forwarded-For": forwarded_for})

    assert response.json()["client"] == client


async def test_repeated_forwarded_for_headers_are_one_list(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(behind_proxy(), client=PROXY_PEER) as client:
        response = await client.get(
            "/", headers=[("X-Forwarded-For", "2.2.2.2"), ("X-Forwarded-For", "10.0.0.5")]
        )

    assert response.json()["client"] == "2.2.2.2"


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        ("https", "https"),
        ("HTTPS", "https"),
        ("http, https", "https"),
        ("ftp", "http"),
        ("wss", "https"),
        ("", "http"),
    ],
)
async def test_only_known_schemes_are_taken(
    proto: str, scheme: str, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(behind_proxy(), client=PROXY_PEER) as client:
        response = await client.get("/", headers={"X-Forwarded-Proto": proto})

    assert response.json() == {"client": "10.0.0.1", "scheme": scheme}


async def test_ipv4_mapped_peer_is_recognised(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(behind_proxy(), client=("::ffff:10.0.0.1", 1)) as client:
        response = await client.get("/", headers={"X-Forwarded-For": "203.0.113.7"})

    assert response.json()["client"] == "203.0.113.7"


async def test_nothing_is_trusted_without_proxies(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(behind_proxy(trusted=[]), client=PROXY_PEER) as client:
        response = await client.get("/", headers={"X-Forwarded-For": "203.0.113.7"})

    assert response.json()["client"] == "10.0.0.1"


async def test_peer_that_is_not_an_address_is_not_trusted(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(behind_proxy(), client=("testclient", 1)) as client:
        response = await client.get("/", headers={"X-Forwarded-For": "203.0.113.7"})

    assert response.json()["client"] == "testclient"


async def test_caller_scope_is_not_mutated(raw_call: Any, make_scope: Callable[..., Scope]) -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = make_scope(
        headers=[(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
        client=PROXY_PEER,
    )
    await raw_call()(ProxyHeadersMiddleware(record, trusted_proxies=TRUSTED), scope)

    assert scope["client"] == PROXY_PEER
    assert scope["scheme"] == "http"
    assert seen[0]["client"] == ("203.0.113.7", 0)
    assert seen[0]["scheme"] == "https"


async def test_unchanged_scope_is_passed_as_is(
    raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = ProxyHeadersMiddleware(record, trusted_proxies=TRUSTED)
    plain = make_scope(client=PROXY_PEER)
    same_values = make_scope(
        headers=[(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-proto", b"http")],
        client=PROXY_PEER,
    )
    no_client = make_scope(headers=[(b"x-forwarded-for", b"1.2.3.4")], client=None)
    for scope in (plain, same_values, no_client):
        await raw_call()(middleware, scope)

    assert seen[0] is plain
    assert seen[1] is same_values
    assert seen[2] is no_client


@pytest.mark.parametrize(("proto", "scheme"), [("https", "wss"), ("http", "ws"), ("wss", "wss")])
async def test_websocket_scheme_follows_the_proxy(
    proto: str, scheme: str, raw_call: Any, make_scope: Callable[..., Scope]
) -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = make_scope(
        scope_type="websocket",
        scheme="ws" if proto != "http" else "wss",
        headers=[(b"x-forwarded-proto", proto.encode())],
        client=PROXY_PEER,
    )
    await raw_call()(ProxyHeadersMiddleware(record, trusted_proxies=TRUSTED), scope)

    assert seen[0]["scheme"] == scheme


async def test_lifespan_passes_through(raw_call: Any) -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    await raw_call()(ProxyHeadersMiddleware(record, trusted_proxies=TRUSTED), {"type": "lifespan"})

    assert seen == [{"type": "lifespan"}]
