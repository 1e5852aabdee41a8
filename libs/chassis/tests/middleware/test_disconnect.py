"""A client that leaves while its body is read: a quiet 499, and no stall for anyone else."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY
from pydantic import BaseModel

from chassis.builder import AppBuilder
from chassis.errors import install_error_handlers
from chassis.logging import configure_logging
from chassis.middleware import TelemetryMiddleware, UnhandledErrorMiddleware
from chassis.settings import BaseServiceSettings, RateLimitSettings, ServerSettings
from chassis.testing.servers import serve_in_thread
from chassis.types import Scope

LogEvents = list[dict[str, Any]]
DEADLINE_SECONDS = 1.0


class Credentials(BaseModel):
    email: str
    password: str


def body_routes() -> APIRouter:
    router = APIRouter()

    @router.post("/raw")
    async def read_raw(request: Request) -> dict[str, int]:
        # Starlette raises ClientDisconnect straight out of the handler.
        return {"received": len(await request.body())}

    @router.post("/model")
    async def read_model(credentials: Credentials) -> dict[str, str]:
        # FastAPI turns ClientDisconnect into a 400 "error parsing the body" here.
        return {"email": credentials.email}

    return router


def chain(service: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(body_routes())
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(TelemetryMiddleware, service=service, metrics=True)
    return app


def posting(make_scope: Callable[..., Scope], path: str) -> Scope:
    return make_scope(
        path,
        method="POST",
        headers=[
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"200"),
        ],
    )


def count(service: str, route: str, status: str) -> float:
    labels = {"service": service, "method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


@pytest.mark.parametrize("path", ["/raw", "/model"])
async def test_a_client_gone_mid_body_is_a_quiet_499(
    path: str, raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    service = f"gone{path.replace('/', '-')}"
    # Part of the body, then the server reports the client gone.
    call = raw_call([{"type": "http.request", "body": b'{"email": "a', "more_body": True}])

    await call(chain(service), posting(make_scope, path))

    assert call.sent == []  # nobody is left to answer
    [gone] = [event for event in log_events if event["event"] == "client_disconnected"]
    assert gone["log_level"] == "info"
    assert gone["path"] == path
    assert "exception" not in gone
    [access] = [event for event in log_events if event["event"] == "http_request"]
    assert access["status"] == 499
    assert access["log_level"] == "info"
    assert not any(event["log_level"] == "error" for event in log_events)
    assert count(service, path, "499") == 1
    assert count(service, path, "500") == count(service, path, "400") == 0


async def test_an_unanswered_crash_is_still_a_500(
    raw_call: Any, make_scope: Callable[..., Scope], log_events: LogEvents
) -> None:
    router = APIRouter()

    @router.post("/crash")
    async def crash() -> None:
        raise RuntimeError("not a disconnect")

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(TelemetryMiddleware, service="crash-not-gone", metrics=True)
    call = raw_call()

    with pytest.raises(RuntimeError):
        await call(app, posting(make_scope, "/crash"))

    [access] = [event for event in log_events if event["event"] == "http_request"]
    assert access["status"] == 500
    assert count("crash-not-gone", "/crash", "500") == 1


# --- over a real socket ---------------------------------------------------------------------


@dataclass
class Served:
    url: str
    log: io.StringIO


@pytest.fixture
def served() -> Iterator[Served]:
    """The full chassis stack on a real socket, logging to the console as in development."""
    settings = BaseServiceSettings(
        service_name="disconnects",
        server=ServerSettings(request_timeout_seconds=DEADLINE_SECONDS),
        rate_limit=RateLimitSettings(enabled=False),
    )
    app = AppBuilder(settings).with_metrics().with_routes(body_routes()).build()
    log = io.StringIO()
    # What build() configured, onto a stream the test can read.
    configure_logging(settings, stream=log)
    try:
        with serve_in_thread(app) as url:
            yield Served(url, log)
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers = [handler for handler in root.handlers if handler.get_name() != "chassis"]


async def open_post(
    url: str, path: str, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    return reader, writer


async def leave_mid_body(url: str, path: str, body: bytes) -> None:
    _, writer = await open_post(url, path, body)
    writer.write(body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()


async def drip_until_answered(url: str, path: str, body: bytes) -> tuple[int, float]:
    """Send `body` a byte every 0.2 s; the status line and the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await open_post(url, path, body)

    async def drip() -> None:
        for byte in body:
            await asyncio.sleep(0.2)
            writer.write(bytes([byte]))
            await writer.drain()

    sender = asyncio.create_task(drip())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=20)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    return int(status_line.split()[1]), loop.time() - started


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/raw", "/model"])
async def test_clients_leaving_mid_body_do_not_delay_another_requests_deadline(
    served: Served, path: str
) -> None:
    body = json.dumps({"email": "drip@example.com", "password": "x" * 40}).encode()

    # Every one of these used to render a traceback with every frame's locals: seconds
    # of a blocked event loop each, in which no deadline of the process could fire.
    dripping = asyncio.create_task(drip_until_answered(served.url, path, body))
    await asyncio.gather(*(leave_mid_body(served.url, path, body) for _ in range(3)))
    status, elapsed = await dripping

    assert status == 504
    # The body alone would take 12 s; the 504 comes at the deadline, plus scheduling slack.
    assert elapsed < DEADLINE_SECONDS + 2
    output = served.log.getvalue()
    assert output.count("client_disconnected") == 3
    assert "Traceback" not in output
