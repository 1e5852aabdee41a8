"""Test kit: fake users and orders services that follow the contract, tokens, a served gateway.

The fakes are small FastAPI apps served by uvicorn on real sockets (threads);
they record every request they receive so tests can see what crossed the
gateway. A few endpoints exist only for tests (echo, large bodies, endless
streams, slow answers); they live under the proxied prefixes so the gateway
routes to them like to any other path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from redis.asyncio import Redis
from starlette.requests import ClientDisconnect

from chassis.auth import SigningKey, generate_rsa_key, render_jwks, sign_token
from chassis.events import EventEnvelope, EventPublisher
from chassis.testing.overrides import deep_merge
from chassis.testing.servers import serve_in_thread
from chassis.types import ASGIApp, Receive, Scope, Send
from gateway.main import create_app
from gateway.settings import GatewaySettings

ISSUER = "chassis-users"
AUDIENCE = "chassis-api"
USER_SCOPES = ("orders:read", "orders:write", "profile")
RIGHT_PASSWORD = "correct horse battery staple"
CHUNK = 64 * 1024
MIB = 1024 * 1024


# --- recording -------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name.lower()), None)

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


class Recorder:
    """Thread-safe log of requests an upstream received (it runs in the server's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []

    def record(self, scope: Scope) -> None:
        seen = Seen(
            method=scope["method"],
            path=scope["path"],
            raw_path=(scope.get("raw_path") or b"").decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=[
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in scope["headers"]
            ],
        )
        with self._lock:
            self._seen.append(seen)

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def last(self) -> Seen:
        return self.seen[-1]

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


def recording(app: ASGIApp, recorder: Recorder) -> ASGIApp:
    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            recorder.record(scope)
        await app(scope, receive, send)

    return recorded


# --- tokens ----------------------------------------------------------------------------
@dataclass
class Tokens:
    """Signs access tokens the way users does; the fakes publish the key in their JWKS."""

    key: SigningKey = field(default_factory=lambda: generate_rsa_key(kid="gateway-tests"))

    def issue(self, subject: str | None = None, *, scopes: tuple[str, ...] = USER_SCOPES) -> str:
        return sign_token(
            self.key,
            subject=subject or str(uuid.uuid4()),
            issuer=ISSUER,
            audience=AUDIENCE,
            scopes=scopes,
        )

    def subject_of(self, token: str) -> str:
        claims = jwt.decode(
            token, self.key.private_key.public_key(), algorithms=["RS256"], audience=AUDIENCE
        )
        return str(claims["sub"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "urn:problem:test", "title": "Problem", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


# --- fake users --------------------------------------------------------------------------
@dataclass
class UsersState:
    recorder: Recorder = field(default_factory=Recorder)
    #: Set when the endless stream's generator is closed (the gateway let go of it).
    endless_closed: threading.Event = field(default_factory=threading.Event)
    endless_chunks: int = 0


def user_read(subject: str, email: str = "ada@example.com") -> dict[str, Any]:
    return {
        "id": subject,
        "email": email,
        "display_name": "Ada",
        "role": "user",
        "created_at": "2025-01-01T00:00:00Z",
    }


def fake_users(tokens: Tokens, state: UsersState) -> ASGIApp:
    app = FastAPI()

    def caller(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return tokens.subject_of(token)
        except jwt.PyJWTError:
            return None

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return JSONResponse(
            render_jwks([tokens.key]), headers={"Cache-Control": "public, max-age=300"}
        )

    @app.post("/api/v1/auth/signup")
    async def signup(request: Request) -> Response:
        body = json_body(await request.body())
        if "email" not in body:
            return problem(422, "email is required")
        return JSONResponse(user_read(str(uuid.uuid4()), body["email"]), status_code=201)

    @app.post("/api/v1/auth/login")
    async def login(request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = json_body(await request.body())
            email, password = body.get("email"), body.get("password")
        else:
            form = await request.form()
            email, password = form.get("username"), form.get("password")
        if password != RIGHT_PASSWORD:
            return problem(401, "Invalid email or password.")
        subject = str(uuid.uuid5(uuid.NAMESPACE_URL, str(email)))
        return JSONResponse(
            {
                "access_token": tokens.issue(subject),
                "refresh_token": uuid.uuid4().hex,
                "token_type": "bearer",
                "expires_in": 300,
            }
        )

    @app.get("/api/v1/users/me")
    async def get_me(request: Request) -> Response:
        subject = caller(request)
        if subject is None:
            return problem(401, "Missing or invalid access token.")
        if subject.startswith("gone-"):
            return problem(404, "The account no longer exists.")
        return JSONResponse(user_read(subject))

    @app.api_route(
        "/api/v1/users/echo/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    )
    async def echo(request: Request, rest: str) -> Response:
        digest = hashlib.sha256()
        size = 0
        try:
            async for piece in request.stream():
                size += len(piece)
                digest.update(piece)
        except ClientDisconnect:
            return Response(status_code=499)
        return JSONResponse(
            {"method": request.method, "size": size, "sha256": digest.hexdigest()},
            headers={"X-Upstream": "users", "Set-Cookie": "a=1"},
        )

    @app.get("/api/v1/users/blob")
    async def blob(size: int, chunked: bool = False) -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                piece = b"\x07" * min(CHUNK, size - sent)
                sent += len(piece)
                yield piece

        headers = {} if chunked else {"Content-Length": str(size)}
        return StreamingResponse(pieces(), media_type="application/octet-stream", headers=headers)

    @app.get("/api/v1/users/hop")
    async def hop(request: Request) -> Response:
        response = JSONResponse({"ok": True})
        response.headers["Connection"] = "X-Hop-Secret"
        response.headers["Keep-Alive"] = "timeout=5"
        response.headers["X-Hop-Secret"] = "internal"
        response.headers["Proxy-Authenticate"] = "Basic"
        response.headers["X-Kept"] = "yes"
        response.headers["RateLimit-Limit"] = "999"
        response.headers.append("Set-Cookie", "first=1")
        response.headers.append("Set-Cookie", "second=2")
        response.headers["Location"] = f"{request.base_url}api/v1/users/me"
        return response

    @app.get("/api/v1/users/endless")
    async def endless() -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            try:
                while True:
                    state.endless_chunks += 1
                    yield b"." * 1024
                    await asyncio.sleep(0.01)
            finally:
                state.endless_closed.set()

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    return recording(app, state.recorder)


# --- fake orders -------------------------------------------------------------------------
@dataclass
class OrdersState:
    recorder: Recorder = field(default_factory=Recorder)


def order_read(owner: str, number: int) -> dict[str, Any]:
    stamp = datetime(2025, 1, 1, tzinfo=UTC).isoformat()
    return {
        "id": str(uuid.UUID(int=number)),
        "owner_id": owner,
        "status": "pending",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 100}],
        "amount_minor": 100,
        "currency": "EUR",
        "created_at": stamp,
        "updated_at": stamp,
        "version": 1,
    }


def fake_orders(tokens: Tokens, state: OrdersState) -> ASGIApp:
    app = FastAPI()

    def owner(request: Request) -> str:
        return tokens.subject_of(request.headers["authorization"].partition(" ")[2])

    @app.get("/api/v1/orders")
    async def list_orders(request: Request, limit: int = 20) -> Response:
        items = [order_read(owner(request), number) for number in range(1, 8)][:limit]
        return JSONResponse({"items": items, "next_cursor": None})

    @app.post("/api/v1/orders")
    async def create_order(request: Request) -> Response:
        if "items" not in json_body(await request.body()):
            return problem(422, "items are required")
        return JSONResponse(
            order_read(owner(request), 1),
            status_code=201,
            headers={"Location": "/api/v1/orders/1"},
        )

    @app.get("/api/v1/orders/slow")
    async def slow(seconds: float) -> Response:
        await asyncio.sleep(seconds)
        return JSONResponse({"slept": seconds})

    @app.api_route("/api/v1/orders/broken", methods=["GET", "PUT"])
    async def broken() -> Response:
        return problem(503, "orders is overloaded")

    @app.api_route("/internal/v1/{rest:path}", methods=["GET", "POST"])
    async def internal(rest: str) -> Response:
        return JSONResponse({"internal": rest})

    return recording(app, state.recorder)


# --- the gateway under test ------------------------------------------------------------------
def fast_upstream(base_url: str) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "retry_backoff_initial_seconds": 0.01,
        "retry_backoff_max_seconds": 0.02,
    }


@dataclass
class Gateway:
    url: str
    app: FastAPI
    settings: GatewaySettings

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws/events"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=30, **kwargs)


def gateway_settings(
    *, redis_url: str, users_url: str, orders_url: str, channel_prefix: str, **changes: Any
) -> GatewaySettings:
    base: dict[str, Any] = {
        "redis": {"url": redis_url},
        "upstreams": {"users": fast_upstream(users_url), "orders": fast_upstream(orders_url)},
        "auth": {"jwks_url": f"{users_url}/.well-known/jwks.json"},
        "events": {"channel_prefix": channel_prefix},
    }
    return GatewaySettings(**deep_merge(base, changes))


@contextmanager
def serve_gateway(settings: GatewaySettings) -> Iterator[Gateway]:
    """The gateway on a real socket, once its event subscription is live."""
    app = create_app(settings)
    with serve_in_thread(app) as url:
        wait_subscribed(app)
        yield Gateway(url=url, app=app, settings=settings)


def wait_subscribed(app: FastAPI, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not app.state.live_events.subscriber.connected:
        if time.monotonic() > deadline:
            raise TimeoutError("the gateway's event subscription did not come up")
        time.sleep(0.01)


# --- events ----------------------------------------------------------------------------------
class Events:
    """Publishes order events the way the orders outbox relay does, on the test's channels."""

    def __init__(self, redis_url: str, channel_prefix: str) -> None:
        self._redis = Redis.from_url(redis_url)
        self.publisher = EventPublisher(self._redis, channel_prefix=channel_prefix)

    async def publish(
        self,
        subject: str,
        *,
        type: str = "order.created",
        payload: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> EventEnvelope:
        envelope = EventEnvelope.new(
            type=type,
            producer="orders",
            subject=subject,
            payload=payload if payload is not None else {"order": order_read(subject, 1)},
        )
        if event_id is not None:
            envelope = envelope.model_copy(update={"id": event_id})
        await self.publisher.publish(envelope)
        return envelope

    async def aclose(self) -> None:
        await self._redis.aclose()


@dataclass
class SSEEvent:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)


async def next_sse(lines: AsyncIterator[str], *, within: float = 5.0) -> SSEEvent:
    """Read one SSE frame (up to a blank line); comment-only frames are returned too."""
    frame = SSEEvent()
    async with asyncio.timeout(within):
        async for line in lines:
            if line == "":
                if frame.id or frame.event or frame.data or frame.retry or frame.comments:
                    return frame
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name in ("id", "event", "data", "retry"):
                setattr(frame, name, value)
    raise EOFError("the event stream ended")


async def next_sse_event(lines: AsyncIterator[str], *, within: float = 5.0) -> SSEEvent:
    """The next frame that carries an event (heartbeats and `retry:` skipped)."""
    async with asyncio.timeout(within):
        while True:
            frame = await next_sse(lines, within=within)
            if frame.data is not None:
                return frame


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry `labels` (Prometheus text format; 0 if none)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        sample_name, _, label_text = metric.partition("{")
        if sample_name == name and wanted <= set(label_text.rstrip("}").split(",")):
            total += float(value)
    return total


#: ``start_gateway(**setting_changes)`` from the conftest fixture of that name.
GatewayFactory = Callable[..., AbstractContextManager[Gateway]]
