"""Load shedding: 503 at once at the limit, slots freed whatever ends a request, callers gone."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from chassis.builder import AppBuilder
from chassis.disconnects import client_disconnected
from chassis.middleware import TelemetryMiddleware, UnhandledErrorMiddleware
from chassis.middleware.shedding import (
    DEFAULT_LIMIT_WITHOUT_DATABASE,
    LoadSheddingMiddleware,
    load_shedding_options,
)
from chassis.settings import (
    BaseServiceSettings,
    DatabaseSettings,
    MetricsSettings,
    RateLimitSettings,
    ServerSettings,
)
from chassis.types import Message, Scope

LIMIT = 2


class Gate:
    """Holds every request to /held until opened; counts entries, exits and cancellations."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0
        self.finished = 0
        self.cancelled = 0
        self.bodies: list[bytes] = []
        self._changed = asyncio.Event()

    async def held(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        self.entered += 1
        self._changed.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return PlainTextResponse("done")

    async def held_unread(self, request: Request) -> Response:
        """Like `held`, but never reads the request (as a FastAPI GET without a body)."""
        self.entered += 1
        self._changed.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        # Once watched, the body the server sent is still the app's to read.
        self.bodies.append(await request.body())
        self.finished += 1
        return PlainTextResponse("done")

    async def until_entered(self, count: int) -> None:
        while self.entered < count:
            self._changed.clear()
            await self._changed.wait()


def shed_count(service: str, reason: str) -> float:
    labels = {"service": service, "reason": reason}
    return REGISTRY.get_sample_value("http_requests_shed_total", labels) or 0.0


@pytest.fixture
def service() -> str:
    return f"shed-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def gate() -> Gate:
    return Gate()


def build(gate: Gate, service: str, **options: Any) -> tuple[Starlette, LoadSheddingMiddleware]:
    async def fast(request: Request) -> Response:
        return PlainTextResponse("fast")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first;"
            await gate.open.wait()
            yield b"last"

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(
        routes=[
            Route("/held", gate.held, methods=["GET", "POST"]),
            Route("/unread", gate.held_unread),
            Route("/fast", fast),
            Route("/stream", stream),
            Route("/health/live", fast),
        ],
        middleware=[
            Middleware(TelemetryMiddleware, service=service),
            Middleware(
                LoadSheddingMiddleware,
                max_concurrent=options.pop("max_concurrent", LIMIT),
                service=service,
                **options,
            ),
            Middleware(UnhandledErrorMiddleware),
        ],
    )
    return app, _shedding_layer(app)


def _shedding_layer(app: Starlette) -> LoadSheddingMiddleware:
    stack: Any = app.build_middleware_stack()
    app.middleware_stack = stack
    while not isinstance(stack, LoadSheddingMiddleware):
        stack = stack.app
    return stack


async def test_the_request_past_the_limit_gets_503_problem_at_once(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service, retry_after_seconds=3)
    async with asgi_client(app) as client:
        held = [asyncio.create_task(client.get("/held")) for _ in range(LIMIT)]
        await gate.until_entered(LIMIT)

        refused = await client.get("/held", headers={"X-Request-ID": "req-over-the-limit"})

        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "3"
        assert refused.headers["x-request-id"] == "req-over-the-limit"
        body = refused.json()
        assert body["status"] == 503
        assert body["request_id"] == "req-over-the-limit"
        assert gate.entered == LIMIT
        assert shed_count(service, "concurrency") == 1

        gate.open.set()
        assert [(await task).status_code for task in held] == [200] * LIMIT
    assert layer.in_flight == 0


async def test_finished_requests_free_their_slots(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service)
    async with asgi_client(app) as client:
        for _ in range(3):
            gate.open.clear()
            held = [asyncio.create_task(client.get("/held")) for _ in range(LIMIT)]
            await gate.until_entered(gate.finished + LIMIT)
            gate.open.set()
            assert [(await task).status_code for task in held] == [200] * LIMIT
        assert (await client.get("/fast")).status_code == 200
    assert shed_count(service, "concurrency") == 0
    assert layer.in_flight == 0


async def test_health_paths_answer_while_the_process_is_full(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, _ = build(gate, service)
    async with asgi_client(app) as client:
        held = [asyncio.create_task(client.get("/held")) for _ in range(LIMIT)]
        await gate.until_entered(LIMIT)

        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/fast")).status_code == 503

        gate.open.set()
        await asyncio.gather(*held)


async def test_a_started_response_gives_its_slot_back(
    make_scope: Callable[..., Scope],
    asgi_client: Callable[..., httpx.AsyncClient],
    gate: Gate,
    service: str,
) -> None:
    app, layer = build(gate, service, max_concurrent=1)
    connection = Connection()
    streaming = asyncio.create_task(app(make_scope("/stream"), connection.receive, connection.send))
    await connection.body_started.wait()

    # Headers are out: the stream no longer counts, its body may take as long as it likes.
    assert layer.in_flight == 0
    async with asgi_client(app) as client:
        assert (await client.get("/fast")).status_code == 200
    gate.open.set()
    await streaming
    assert b"".join(m.get("body", b"") for m in connection.sent[1:]) == b"first;last"


async def test_no_limit_when_zero(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, _ = build(gate, service, max_concurrent=0)
    async with asgi_client(app) as client:
        held = [asyncio.create_task(client.get("/held")) for _ in range(LIMIT * 5)]
        await gate.until_entered(LIMIT * 5)
        gate.open.set()
        assert {(await task).status_code for task in held} == {200}


async def test_a_cancelled_request_frees_its_slot(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service, max_concurrent=1)
    async with asgi_client(app) as client:
        abandoned = asyncio.create_task(client.get("/held"))
        await gate.until_entered(1)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned

        assert layer.in_flight == 0
        assert (await client.get("/fast")).status_code == 200


class Connection:
    """A server's side of one request: the body, then a disconnect when `leave()` is called."""

    def __init__(self, body: bytes = b"") -> None:
        self.incoming: list[Message] = [{"type": "http.request", "body": body}]
        self.left = asyncio.Event()
        self.sent: list[Message] = []
        self.body_started = asyncio.Event()

    def leave(self) -> None:
        self.left.set()

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.body_started.set()


@pytest.mark.parametrize("body", [b"", b'{"amount": 3}'], ids=["no-body", "body"])
async def test_a_client_that_leaves_has_its_handler_cancelled_and_its_slot_freed(
    make_scope: Callable[..., Scope],
    asgi_client: Callable[..., httpx.AsyncClient],
    gate: Gate,
    service: str,
    body: bytes,
) -> None:
    app, layer = build(gate, service, max_concurrent=1)
    headers = [(b"host", b"testserver")]
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = make_scope("/held", method="POST", headers=headers)
    connection = Connection(body)

    call = asyncio.create_task(app(scope, connection.receive, connection.send))
    await gate.until_entered(1)
    connection.leave()
    await call

    assert gate.bodies == [body]
    assert gate.cancelled == 1
    assert gate.finished == 0
    assert connection.sent == []
    assert client_disconnected(scope)
    assert shed_count(service, "client_gone") == 1
    assert layer.in_flight == 0
    async with asgi_client(app) as client:
        assert (await client.get("/fast")).status_code == 200


async def test_a_disconnect_after_the_answer_started_cancels_nothing(
    make_scope: Callable[..., Scope], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service)
    connection = Connection()

    call = asyncio.create_task(app(make_scope("/stream"), connection.receive, connection.send))
    await connection.body_started.wait()
    connection.leave()
    gate.open.set()
    await call

    assert shed_count(service, "client_gone") == 0
    assert layer.in_flight == 0


async def test_a_disconnect_with_cancelling_off_lets_the_handler_finish(
    make_scope: Callable[..., Scope], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service, cancel_on_disconnect=False)
    connection = Connection()

    call = asyncio.create_task(app(make_scope("/held"), connection.receive, connection.send))
    await gate.until_entered(1)
    connection.leave()
    gate.open.set()
    await call

    assert gate.finished == 1
    assert layer.in_flight == 0


async def test_a_request_past_its_callers_deadline_is_answered_504_unworked(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service)
    async with asgi_client(app) as client:
        past = f"{time.time() - 1:.3f}"
        answer = await client.post(
            "/held", content=b"{}", headers={"X-Request-Deadline": past, "X-Request-ID": "req-late"}
        )

    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"
    assert json.loads(answer.content)["request_id"] == "req-late"
    assert gate.entered == 0
    assert shed_count(service, "deadline") == 1
    assert layer.in_flight == 0


@pytest.mark.parametrize("deadline", ["soon", "nan", ""], ids=["future", "nan", "empty"])
async def test_a_future_or_unreadable_deadline_lets_the_request_run(
    asgi_client: Callable[..., httpx.AsyncClient], gate: Gate, service: str, deadline: str
) -> None:
    app, _ = build(gate, service)
    gate.open.set()
    value = f"{time.time() + 60:.3f}" if deadline == "soon" else deadline
    async with asgi_client(app) as client:
        answer = await client.get("/held", headers={"X-Request-Deadline": value})
    assert answer.status_code == 200
    assert shed_count(service, "deadline") == 0


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        LoadSheddingMiddleware(PlainTextResponse("x"), max_concurrent=-1)


def options_for(*, database: bool, **settings: Any) -> dict[str, Any]:
    """The middleware's arguments for a service with these settings, with or without a database."""
    builder = AppBuilder(BaseServiceSettings(**settings))
    if database:
        builder.with_database()
    return load_shedding_options(builder)


def test_the_default_limit_is_four_requests_per_pooled_connection() -> None:
    pool = DatabaseSettings(pool_size=4, max_overflow=3)
    with_pool = AppBuilder(BaseServiceSettings(database=pool)).with_database()
    assert load_shedding_options(with_pool)["max_concurrent"] == 4 * 7
    assert options_for(database=False)["max_concurrent"] == DEFAULT_LIMIT_WITHOUT_DATABASE


def test_a_configured_limit_wins_and_the_metrics_path_is_exempt() -> None:
    server = ServerSettings(max_concurrent_requests=0, shed_retry_after_seconds=5)
    options = options_for(database=True, server=server, metrics=MetricsSettings(path="/prom"))
    assert options["max_concurrent"] == 0
    assert options["retry_after_seconds"] == 5
    assert options["exempt_paths"] == ("/health/", "/prom")


async def test_the_built_stack_sheds_with_its_headers(
    make_client: Callable[..., Any], gate: Gate
) -> None:
    router = APIRouter()
    router.add_api_route("/held", gate.held)
    settings = BaseServiceSettings(
        server=ServerSettings(max_concurrent_requests=1),
        rate_limit=RateLimitSettings(enabled=False),
    )
    app = AppBuilder(settings).with_routes(router).build()
    async with make_client(app) as client:
        held = asyncio.create_task(client.get("/held"))
        await gate.until_entered(1)

        refused = await client.get("/held", headers={"X-Request-ID": "req-full"})
        probe = await client.get("/health/live")

        gate.open.set()
        assert (await held).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["x-request-id"] == "req-full"
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert refused.headers["retry-after"] == "1"
    assert probe.status_code == 200


async def test_a_watched_request_that_never_read_its_body_can_still_read_it(
    make_scope: Callable[..., Scope], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service, watch_after_seconds=0)
    connection = Connection()
    call = asyncio.create_task(app(make_scope("/unread"), connection.receive, connection.send))
    await gate.until_entered(1)
    await asyncio.sleep(0.01)  # let the zero-delay timer start the watch
    gate.open.set()
    await call

    assert gate.bodies == [b""]
    assert connection.sent[0]["status"] == 200
    assert layer.in_flight == 0


async def test_an_unread_request_is_cancelled_when_its_client_leaves(
    make_scope: Callable[..., Scope], gate: Gate, service: str
) -> None:
    app, layer = build(gate, service)
    connection = Connection()
    call = asyncio.create_task(app(make_scope("/unread"), connection.receive, connection.send))
    await gate.until_entered(1)
    connection.leave()
    await call

    assert gate.cancelled == 1
    assert connection.sent == []
    assert layer.in_flight == 0
