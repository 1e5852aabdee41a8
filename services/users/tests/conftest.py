"""A migrated Postgres database per session (emptied after each test), settings and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database.migrations import upgrade_to_head
from users.main import create_app
from users.settings import UsersSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
PASSWORD = "correct horse battery staple 1"
#: Cheap argon2 parameters: the tests exercise behaviour, not the cost.
FAST_PASSWORDS = {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}


@pytest.fixture(scope="session")
def migrated_database_url(postgres_database_factory: Callable[[str], str]) -> str:
    """A fresh Postgres database with the users migrations applied (which tests them too)."""
    url = postgres_database_factory("users_test")
    upgrade_to_head(MIGRATIONS, url)
    return url


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database; every table is emptied after the test."""
    engine = create_async_engine(migrated_database_url)
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE users, refresh_tokens, signing_keys CASCADE"))
        await engine.dispose()


@pytest.fixture
def make_settings(
    engine: AsyncEngine, migrated_database_url: str, redis_url: str
) -> Callable[..., UsersSettings]:
    """``make_settings(**overrides)``: settings on the test database and Redis."""

    def make(**overrides: Any) -> UsersSettings:
        options: dict[str, Any] = {
            "database": {"url": migrated_database_url},
            "redis": {"url": redis_url},
            "passwords": FAST_PASSWORDS,
            "login_limit": {"requests": 1000, "account_requests": 1000},
            "environment": "test",
            **overrides,
        }
        return UsersSettings(**options)

    return make


@dataclass
class Api:
    """A client of a running users app, with the few calls most tests need."""

    http: httpx.AsyncClient
    password: str = PASSWORD

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def claims(token: str) -> dict[str, Any]:
        """The token's claims, unverified (tests look at what was issued)."""
        decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return decoded

    async def signup(
        self, email: str = "alice@example.com", password: str = PASSWORD, **extra: Any
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/auth/signup", json={"email": email, "password": password, **extra}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(
        self, email: str = "alice@example.com", password: str = PASSWORD
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def user_token(self, email: str = "alice@example.com", **extra: Any) -> str:
        """Sign up `email` and return an access token for it."""
        await self.signup(email, **extra)
        token: str = (await self.login(email))["access_token"]
        return token


@pytest.fixture
def settings(make_settings: Callable[..., UsersSettings]) -> UsersSettings:
    return make_settings()


@pytest.fixture
async def api(settings: UsersSettings, make_client: Any) -> AsyncIterator[Api]:
    async with make_client(create_app(settings)) as http:
        yield Api(http)


@pytest.fixture
def make_api() -> Callable[[httpx.AsyncClient], Api]:
    """``make_api(http)``: the `Api` helpers over a client of another app."""
    return Api


@pytest.fixture
def closed_port_url() -> str:
    """A Postgres URL on a local port where nothing listens."""
    from chassis.testing.processes import free_port

    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
