"""Builder step and FastAPI dependencies for the per-upstream HTTP clients.

`setup_http_clients` opens one `UpstreamClient` per entry of
``settings.upstreams`` for the app's lifetime (``app.state.http_clients``)
and adds a non-critical readiness check showing every breaker: a dead
upstream must not take this service out of the load balancer, since that
would turn one failing dependency into a failing fleet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request

from chassis.http.client import UpstreamClient

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder

#: What ``app.state.http_clients`` holds: upstream name -> client.
UpstreamClients = Mapping[str, UpstreamClient]


def setup_http_clients(
    builder: Builder,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> None:
    """Register the ``http_clients`` resource and the ``upstreams`` readiness report.

    `transports` replaces the network for named upstreams (tests that route an
    upstream to an in-process app with ``httpx.ASGITransport``).
    """
    upstreams = dict(builder.settings.upstreams)
    overrides = dict(transports or {})

    @asynccontextmanager
    async def open_clients(app: FastAPI) -> AsyncIterator[UpstreamClients]:
        clients = {
            name: UpstreamClient(name, settings, transport=overrides.get(name))
            for name, settings in upstreams.items()
        }
        try:
            yield clients
        finally:
            await asyncio.gather(*(client.aclose() for client in clients.values()))

    builder.add_resource("http_clients", open_clients)
    builder.readiness.add("upstreams", upstreams_report, critical=False)


def upstreams_report(app: FastAPI) -> dict[str, Any]:
    """Readiness details: each upstream's breaker snapshot."""
    clients: UpstreamClients = app.state.http_clients
    return {name: client.breaker.snapshot() for name, client in clients.items()}


def get_upstream(request: Request, name: str) -> UpstreamClient:
    """The app's client for upstream `name`; a missing name is a wiring bug (500)."""
    clients: UpstreamClients = request.app.state.http_clients
    try:
        return clients[name]
    except KeyError:
        raise LookupError(f"no upstream named {name!r} is configured") from None


def upstream(name: str) -> Callable[[Request], Awaitable[UpstreamClient]]:
    """A dependency giving the client for `name`:

    ``OrdersClient = Annotated[UpstreamClient, Depends(upstream("orders"))]``
    """

    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
    async def dependency(request: Request) -> UpstreamClient:
        return get_upstream(request, name)

    return dependency
