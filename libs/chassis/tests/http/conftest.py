"""Fixtures for the HTTP client tests: scripted upstreams, a fake clock, a live server."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chassis.http import UpstreamClient
from chassis.settings import UpstreamSettings
from chassis.testing.clock import ManualClock
from chassis.testing.servers import serve_in_thread

# The client tests share metric readers (client_metrics.py) that are not fixtures.
sys.path.insert(0, str(Path(__file__).parent))


class ScriptedUpstream:
    """An in-memory upstream that plays `steps` in order (the last one repeats).

    A step is a status code, an ``httpx.Response``, an exception to raise, or
    an async callable taking the request.
    """

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps) or [200]
        self.requests: list[httpx.Request] = []
        self.closed = False
        self.transport = _ClosingMockTransport(self._handle, on_close=self._on_close)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def _on_close(self) -> None:
        self.closed = True

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        # Read a streamed body so that the request is complete, as a server would.
        await request.aread()
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, int):
            return httpx.Response(step, json={"attempt": len(self.requests)})
        if isinstance(step, httpx.Response):
            return step
        result: httpx.Response = await step(request)
        return result


class _ClosingMockTransport(httpx.MockTransport):
    def __init__(self, handler: Any, *, on_close: Callable[[], None]) -> None:
        super().__init__(handler)
        self._on_close = on_close

    async def aclose(self) -> None:
        self._on_close()


@pytest.fixture
def upstream_name() -> str:
    """A name of its own, so that metric samples are this test's only."""
    return f"up-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def recorded_sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_sleep(recorded_sleeps: list[float]) -> Callable[[float], Any]:
    """Backoff that records the wait and yields to the loop without waiting."""

    async def sleep(seconds: float) -> None:
        recorded_sleeps.append(seconds)
        await asyncio.sleep(0)

    return sleep


@pytest.fixture
def make_upstream_settings() -> Callable[..., UpstreamSettings]:
    def make(base_url: str = "http://upstream.internal", **overrides: Any) -> UpstreamSettings:
        values: dict[str, Any] = {
            "base_url": base_url,
            "retry_attempts": 3,
            "retry_backoff_initial_seconds": 0.001,
            "retry_backoff_max_seconds": 0.002,
            "deadline_seconds": 5.0,
            "breaker_failure_threshold": 3,
            "breaker_open_seconds": 30.0,
        }
        values.update(overrides)
        return UpstreamSettings(**values)

    return make


@pytest.fixture
async def make_upstream_client(
    upstream_name: str,
    clock: ManualClock,
    fake_sleep: Callable[[float], Any],
    make_upstream_settings: Callable[..., UpstreamSettings],
) -> AsyncIterator[Callable[..., UpstreamClient]]:
    """``make(scripted_upstream, **settings)``: a client on the scripted upstream."""
    created: list[UpstreamClient] = []

    def make(
        upstream: ScriptedUpstream | None = None,
        *,
        real_sleep: bool = False,
        **overrides: Any,
    ) -> UpstreamClient:
        client = UpstreamClient(
            upstream_name,
            make_upstream_settings(**overrides),
            transport=upstream.transport if upstream else None,
            clock=clock,
            sleep=asyncio.sleep if real_sleep else fake_sleep,
        )
        created.append(client)
        return client

    yield make
    for client in created:
        await client.aclose()


@pytest.fixture
def scripted() -> type[ScriptedUpstream]:
    return ScriptedUpstream


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"headers": dict(request.headers), "path": request.url.path})


@pytest.fixture(scope="module")
def live_upstream() -> Iterator[str]:
    """A real HTTP server (uvicorn, own thread, free port) echoing request headers."""
    app = Starlette(routes=[Route("/echo", _echo, methods=["GET", "POST"])])
    with serve_in_thread(app, lifespan="off") as base_url:
        yield base_url
