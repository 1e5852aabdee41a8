"""Shared helpers for the middleware tests: an ASGI client factory, log capture, raw calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog

from chassis.types import ASGIApp, Message, Scope

ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
def asgi_client() -> ClientFactory:
    """``async with asgi_client(app) as client`` - httpx over ASGI, no sockets, no lifespan."""

    def make(
        app: ASGIApp,
        *,
        base_url: str = "http://testserver",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        root_path: str = "",
        raise_app_exceptions: bool = True,
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=app,
            client=client,
            root_path=root_path,
            raise_app_exceptions=raise_app_exceptions,
        )
        return httpx.AsyncClient(transport=transport, base_url=base_url)

    return make


@pytest.fixture
def log_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event logged during the test, with contextvars and tracebacks rendered."""
    with structlog.testing.capture_logs(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.format_exc_info,
        ]
    ) as events:
        yield events


class RawCall:
    """Drives an ASGI app directly with scripted ``receive`` messages, recording ``send``."""

    def __init__(self, incoming: list[Message] | None = None) -> None:
        self.incoming = list(incoming or [{"type": "http.request", "body": b""}])
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def __call__(self, app: ASGIApp, scope: Scope) -> None:
        await app(scope, self.receive, self.send)

    @property
    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return None

    @property
    def headers(self) -> dict[bytes, bytes]:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return dict(message.get("headers", []))
        return {}


@pytest.fixture
def raw_call() -> type[RawCall]:
    return RawCall


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    scheme: str = "http",
    scope_type: str = "http",
) -> Scope:
    return {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers if headers is not None else [(b"host", b"testserver")],
        "client": client,
        "server": ("testserver", 80),
    }


@pytest.fixture
def make_scope() -> Callable[..., Scope]:
    return http_scope
