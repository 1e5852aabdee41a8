"""A tiny app behind the rate limiter, a stand-in auth middleware and a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from chassis.middleware.ratelimit import RateLimitBackend, RateLimitMiddleware
from chassis.testing.clock import ManualClock
from chassis.types import ASGIApp, Receive, Scope, Send


class PrincipalFromHeader:
    """Plays the auth middleware: an ``X-Subject`` header becomes the principal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            subject = dict(scope["headers"]).get(b"x-subject")
            if subject is not None:
                principal = SimpleNamespace(subject=subject.decode())
                scope["state"] = {**scope.get("state", {}), "principal": principal}
        await self.app(scope, receive, send)


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.method} {request.url.path}")


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def inner_app() -> Starlette:
    methods = ["GET", "POST", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/items", ok, methods=methods),
            Route("/auth/login", ok, methods=methods),
            Route("/auth/login/sso", ok, methods=methods),
            Route("/auth/refresh", ok, methods=methods),
            Route("/health/live", ok),
            WebSocketRoute("/ws", echo_socket),
        ]
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limited_app() -> Callable[..., ASGIApp]:
    """``limited_app(backend, default_limit=.., ...)``: the inner app behind the limiter."""

    def build(backend: RateLimitBackend, **options: Any) -> ASGIApp:
        options.setdefault("default_limit", 3)
        options.setdefault("default_window_seconds", 60)
        return PrincipalFromHeader(RateLimitMiddleware(inner_app(), backend=backend, **options))

    return build
