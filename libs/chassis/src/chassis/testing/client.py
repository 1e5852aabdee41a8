"""An httpx client that talks to an app over ASGI with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from chassis.types import ASGIApp, Receive, Scope, Send


def _state_per_request(app: ASGIApp) -> ASGIApp:
    """Give each request a shallow copy of the lifespan state, as uvicorn does.

    asgi-lifespan hands every request the same dict, which would let one
    request's data leak into the next and hide bugs that production can't have.
    """

    async def app_with_own_state(scope: Scope, receive: Receive, send: Send) -> None:
        if "state" in scope:
            scope = {**scope, "state": dict(scope["state"])}
        await app(scope, receive, send)

    return app_with_own_state


@asynccontextmanager
async def app_client(
    app: ASGIApp,
    *,
    base_url: str = "http://testserver",
    client: tuple[str, int] = ("127.0.0.1", 50000),
    startup_timeout: float = 10,
    shutdown_timeout: float = 10,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client bound to it (no sockets)."""
    async with LifespanManager(
        app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
    ) as manager:
        transport = httpx.ASGITransport(app=_state_per_request(manager.app), client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http
