"""An app for the two-process test: uvicorn imports it with ``--factory``.

Configured through ``RATELIMIT_TEST_REDIS_URL`` and ``RATELIMIT_TEST_LIMIT``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chassis.middleware.ratelimit import RateLimitMiddleware, RedisSlidingWindow
from chassis.types import ASGIApp


def create_app() -> ASGIApp:
    client = redis.Redis.from_url(os.environ["RATELIMIT_TEST_REDIS_URL"], socket_timeout=2)
    pid = str(os.getpid())

    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(pid)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = Starlette(
        routes=[Route("/whoami", whoami), Route("/health/live", whoami)], lifespan=lifespan
    )
    return RateLimitMiddleware(
        app,
        backend=RedisSlidingWindow(client, key_prefix="rl-shared"),
        default_limit=int(os.environ["RATELIMIT_TEST_LIMIT"]),
        default_window_seconds=60,
        exempt_paths=["/health/"],
    )
