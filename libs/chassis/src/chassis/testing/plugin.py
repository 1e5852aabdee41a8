"""pytest plugin for chassis services (registered through the ``pytest11`` entry point).

Fixtures:
- ``hermetic_env`` (autouse): strips service env vars and runs each test in a temp dir.
- ``postgres_url``: a fresh Postgres database for the test session (async URL).
- ``postgres_database_factory``: ``create(prefix)`` makes another fresh database
  (async URL) for this session, e.g. one per service so migrations don't collide.
- ``postgres_engine``: an async engine on it, disposed after the test.
- ``postgres_database``: a `chassis.database.Database` on it whose commits are rolled
  back after the test (isolation per test on the shared session database).
- ``redis_url``: a Redis database flushed before and after each test.
- ``make_client``: ``async with make_client(app) as client`` runs lifespan over ASGI.
- ``span_exporter``: an in-memory exporter on a process-wide SDK TracerProvider that
  samples everything; cleared before each test. Pass it to ``with_tracing(exporter=...)``.

Where the servers are: ``CHASSIS_TEST_POSTGRES_URL`` (an admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``), ``CHASSIS_TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379``) and ``CHASSIS_TEST_REDIS_DB`` (default 15).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chassis.testing.client import app_client

DEFAULT_ENV_PREFIXES = "APP_ USERS_ ORDERS_ GATEWAY_ WORKER_ OTEL_"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "chassis_env_prefixes",
        "environment variable prefixes the hermetic fixture strips",
        default=DEFAULT_ENV_PREFIXES,
    )


def _admin_postgres_url() -> str:
    return os.environ.get(
        "CHASSIS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def redis_test_url(db: int) -> str:
    """Database `db` of the test Redis server (``CHASSIS_TEST_REDIS_URL``)."""
    base = os.environ.get("CHASSIS_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    return f"{base}/{db}"


@pytest.fixture(autouse=True)
def hermetic_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """No shell export, .env file or working directory leaks into a test."""
    prefixes = tuple(str(request.config.getini("chassis_env_prefixes")).split())
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[Callable[[str], str]]:
    """``create(prefix) -> async URL`` of a new database; all are dropped at the end."""
    import psycopg

    admin = _admin_postgres_url()
    base, _, _ = admin.rpartition("/")
    created: list[str] = []

    def create(prefix: str = "chassis_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)

    try:
        yield create
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(postgres_database_factory: Callable[[str], str]) -> str:
    """A database for this test session (dropped afterwards)."""
    return postgres_database_factory("chassis_test")


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(postgres_url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_database(postgres_engine: Any) -> AsyncIterator[Any]:
    from chassis.testing.database import rollback_database

    async with rollback_database(postgres_engine) as database:
        yield database


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis database of its own, empty before and after the test."""
    import redis.asyncio as redis

    db = int(os.environ.get("CHASSIS_TEST_REDIS_DB", "15"))
    url = redis_test_url(db)
    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


_SPAN_EXPORTER: list[Any] = []


@pytest.fixture
def span_exporter() -> Iterator[Any]:
    """Finished spans of this test, recorded in memory (real SDK, no network)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from chassis.tracing import mark_exporting

    if not _SPAN_EXPORTER:
        exporter = InMemorySpanExporter()
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            from chassis.tracing import ChassisSampler

            # The chassis' own sampler, as configure_tracing installs it, recording everything.
            provider = TracerProvider(sampler=ChassisSampler(1.0))
            trace.set_tracer_provider(provider)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        mark_exporting(exporter)
        _SPAN_EXPORTER.append(exporter)
    exporter = _SPAN_EXPORTER[0]
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def make_client() -> Callable[..., Any]:
    """``async with make_client(app) as client:`` - ASGI client with lifespan."""
    return app_client
