"""Fixtures of the orders tests: a migrated Postgres database, real Redis, real tokens.

The database is created once per session (``orders_test_*``) and migrated with the
service's own Alembic history, which is how the migrations are proven; every
test leaves it empty (TRUNCATE) because several tests need real commits seen by
concurrent connections. Tokens are signed with a key whose JWKS is served on a
real socket, and the app verifies them through the chassis JWKS cache.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from chassis.auth import (
    PrincipalKind,
    SigningKey,
    generate_rsa_key,
    render_jwks,
    sign_token,
)
from chassis.database.migrations import upgrade_to_head
from chassis.testing import eventually as chassis_eventually
from chassis.testing.servers import serve_in_thread
from orders.idempotency.models import IdempotencyKey
from orders.main import create_app
from orders.order.models import Order
from orders.outbox.models import OutboxEvent
from orders.settings import OrdersSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
ISSUER = "chassis-users"
AUDIENCE = "chassis-api"
USER_SCOPES = ("orders:read", "orders:write", "profile")
ADMIN_SCOPES = (*USER_SCOPES, "users:admin", "orders:admin")
TABLES = ("order_items", "orders", "idempotency_keys", "outbox")

Headers = dict[str, str]


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return generate_rsa_key(kid="orders-tests")


@pytest.fixture(scope="session")
def jwks_url(signing_key: SigningKey) -> Iterator[str]:
    """The users service's JWKS endpoint, as far as orders can tell."""
    issuer = FastAPI()

    @issuer.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return render_jwks([signing_key])

    with serve_in_thread(issuer) as base_url:
        yield f"{base_url}/.well-known/jwks.json"


class Tokens:
    """Bearer headers for the callers of the contract: users, admins, the worker."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def headers(
        self,
        subject: str,
        scopes: tuple[str, ...],
        *,
        kind: PrincipalKind = "user",
        **claims: Any,
    ) -> Headers:
        token = sign_token(
            self.key,
            subject=subject,
            issuer=claims.pop("issuer", ISSUER),
            audience=claims.pop("audience", AUDIENCE),
            scopes=scopes,
            kind=kind,
        )
        return {"Authorization": f"Bearer {token}"}

    def user(self, subject: str = "alice", scopes: tuple[str, ...] = USER_SCOPES) -> Headers:
        return self.headers(subject, scopes)

    def admin(self, subject: str = "root") -> Headers:
        return self.headers(subject, ADMIN_SCOPES)

    def service(
        self, subject: str = "service:worker", scopes: tuple[str, ...] = ("orders:internal",)
    ) -> Headers:
        return self.headers(subject, scopes, kind="service")


@pytest.fixture(scope="session")
def tokens(signing_key: SigningKey) -> Tokens:
    return Tokens(signing_key)


@pytest.fixture(scope="session")
def migrated_database_url(postgres_database_factory: Callable[[str], str]) -> str:
    """A fresh Postgres database with the orders migrations applied (async URL)."""
    url = postgres_database_factory("orders_test")
    upgrade_to_head(MIGRATIONS, url)
    return url


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def database_url(migrated_database_url: str) -> Iterator[str]:
    """The migrated database, emptied after the test."""
    yield migrated_database_url
    with psycopg.connect(_psycopg_dsn(migrated_database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the test's own, to arrange rows and to read what the app stored."""
    engine = create_async_engine(database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merge(dict(merged[name]), value)
        else:
            merged[name] = value
    return merged


SettingsFactory = Callable[..., OrdersSettings]


@pytest.fixture
def make_settings(
    database_url: str, redis_url: str, jwks_url: str, tmp_path: Path
) -> SettingsFactory:
    """``make_settings(**overrides)``: orders settings on the test Postgres, Redis and JWKS.

    The relay is off unless a test turns it on, so the outbox rows stay unsent for
    the tests that read them.
    """

    def make(**overrides: Any) -> OrdersSettings:
        base: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path / "data",
            "database": {"url": database_url},
            "redis": {"url": redis_url},
            "auth": {"jwks_url": jwks_url},
            "rate_limit": {"enabled": False},
            "tracing": {"enabled": False},
            "outbox": {"relay_enabled": False},
        }
        return OrdersSettings(**_merge(base, overrides))

    return make


@pytest.fixture
def app(make_settings: SettingsFactory) -> FastAPI:
    return create_app(make_settings())


@pytest.fixture
async def client(app: FastAPI, make_client: Callable[[FastAPI], Any]) -> AsyncIterator[AsyncClient]:
    async with make_client(app) as http:
        yield http


def _order_body(*, currency: str = "EUR", **item: Any) -> dict[str, Any]:
    line = {"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250, **item}
    return {"items": [line], "currency": currency}


@pytest.fixture
def order_body() -> Callable[..., dict[str, Any]]:
    """``order_body(currency=..., **line)``: a valid create body with one line."""
    return _order_body


@pytest.fixture
def place(client: AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await place(headers, **line)``: create an order through the API, return its body."""

    async def create(headers: Headers, **item: Any) -> dict[str, Any]:
        response = await client.post("/api/v1/orders", json=_order_body(**item), headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


class Stored:
    """What the service committed, read back with the test's own sessions."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def _all(self, model: type[Any], *order_by: Any) -> list[Any]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(model).order_by(*order_by))).all())

    async def events(self) -> list[OutboxEvent]:
        return await self._all(OutboxEvent, OutboxEvent.created_at, OutboxEvent.id)

    async def event_types(self) -> list[str]:
        return [row.event_type for row in await self.events()]

    async def orders(self) -> list[Order]:
        return await self._all(Order, Order.created_at)

    async def keys(self) -> list[IdempotencyKey]:
        return await self._all(IdempotencyKey, IdempotencyKey.id)


@pytest.fixture
def stored(db: async_sessionmaker[AsyncSession]) -> Stored:
    return Stored(db)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(condition, within=5)``: poll a (sync or async) condition."""
    return chassis_eventually


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
