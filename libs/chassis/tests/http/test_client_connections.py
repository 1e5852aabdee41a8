"""UpstreamClient: methods, metric labels, the base URL, cookies and pooled connections."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvicorn
from client_metrics import requests_counted
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chassis.http import (
    UpstreamBadGateway,
    UpstreamClient,
)
from chassis.settings import UpstreamSettings
from chassis.testing.servers import serve_in_thread


async def test_patch_is_not_retried_unless_marked(scripted, make_upstream_client):
    upstream = scripted(503, 503, 200)
    client = make_upstream_client(upstream)

    first = await client.patch("/things/1", json={})
    second = await client.patch("/things/1", json={}, idempotent=True)

    assert (first.status_code, second.status_code) == (503, 200)
    assert upstream.calls == 3


async def test_unusual_methods_share_one_metric_label(
    scripted, make_upstream_client, upstream_name
):
    client = make_upstream_client(scripted(200))

    await client.request("PROPFIND", "/things")

    assert requests_counted(upstream_name, "OTHER", "200") == 1


async def test_client_uses_the_configured_base_url_and_closes(scripted, upstream_name):
    upstream = scripted(200)
    settings = UpstreamSettings(base_url="http://orders.internal:8002/api")

    async with UpstreamClient(upstream_name, settings, transport=upstream.transport) as client:
        await client.get("/orders")

    assert str(upstream.requests[0].url) == "http://orders.internal:8002/api/orders"
    assert upstream.closed


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_cookie_set_by_the_upstream_never_rides_on_a_later_call(
    upstream_name: str, transport: str
) -> None:
    """One client serves every user: a kept cookie would go out with someone else's call."""

    async def login(request: Request) -> Response:
        response = JSONResponse({"cookie": request.headers.get("cookie")})
        response.set_cookie("session", "alice-secret", path="/")
        return response

    async def whoami(request: Request) -> Response:
        return JSONResponse({"cookie": request.headers.get("cookie")})

    app = Starlette(routes=[Route("/login", login), Route("/whoami", whoami)])
    with serve_in_thread(app) as base_url:
        async with UpstreamClient(
            upstream_name, UpstreamSettings(base_url=base_url, transport=transport)
        ) as client:
            first = await client.get("/login")
            later = await client.get("/whoami")
            own = await client.get("/whoami", cookies={"mine": "1"})

    # The caller still sees the upstream's Set-Cookie; the client kept nothing.
    assert first.headers["set-cookie"].startswith("session=alice-secret")
    assert later.json() == {"cookie": None}
    # A cookie the caller passes goes out with that request only.
    assert own.json() == {"cookie": "mine=1"}


async def test_a_post_after_an_idle_spell_never_reuses_a_connection_the_server_is_closing(
    upstream_name: str,
) -> None:
    """A server closes a connection left idle for its keep-alive timeout. A call that reuses
    it at that moment fails, and a POST is never retried: the gateway answered a signup with
    a 502 so. An expiry below the server's means the client never offers such a connection.
    (aiohttp's pool is the one exposed: httpcore checks that a socket is still quiet before
    reusing it.) Scaled down here to 1 s for the server, 0.8 s for the client; the defaults
    keep the same order (test_the_client_drops_idle_connections_before_our_servers_do)."""

    async def created(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(0.05)  # the first calls overlap, so each opens a connection
        return Response(status_code=201)

    app = Starlette(routes=[Route("/", created, methods=["POST"])])
    server_keep_alive, calls, step = 1, 40, 0.001
    settings = UpstreamSettings(
        base_url="http://unused",
        transport="aiohttp",
        keepalive_expiry_seconds=0.8,
        max_keepalive_connections=calls,
    )
    outcomes: list[int | str] = []
    with serve_in_thread(app, keep_alive_seconds=server_keep_alive) as base_url:
        async with UpstreamClient(
            upstream_name, settings.model_copy(update={"base_url": base_url})
        ) as client:

            async def after_idling(idle_from: float, idle: float) -> int | str:
                await asyncio.sleep(idle_from + idle - time.monotonic())
                try:
                    return (await client.post("/", content=b"{}")).status_code
                except UpstreamBadGateway as exc:
                    return repr(exc)

            for _ in range(4):
                await asyncio.gather(*(client.post("/", content=b"{}") for _ in range(calls)))
                idle_from = time.monotonic()
                # Idle spells spread over the moments the server closes its connections
                # (it starts counting when it sends, a little before the client's clock).
                outcomes += await asyncio.gather(
                    *(
                        after_idling(idle_from, server_keep_alive - 0.03 + i * step)
                        for i in range(calls)
                    )
                )

    assert outcomes == [201] * len(outcomes)


def test_the_client_drops_idle_connections_before_our_servers_do() -> None:
    """The services run uvicorn with its default keep-alive (the images' ``KEEP_ALIVE``)."""
    server_keep_alive = uvicorn.Config(Starlette()).timeout_keep_alive
    expiry = UpstreamSettings(base_url="http://unused").keepalive_expiry_seconds
    assert expiry < server_keep_alive
