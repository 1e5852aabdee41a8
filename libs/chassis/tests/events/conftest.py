"""Fixtures for the events tests: an outbox table, a Redis we may kill, a waiting helper."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from chassis.events import OutboxMixin
from chassis.testing import eventually as chassis_eventually
from chassis.testing.processes import free_port

# The outbox tests share helpers (outbox_testing.py) that are not fixtures.
sys.path.insert(0, str(Path(__file__).parent))


class Base(DeclarativeBase):
    pass


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(lambda: ..., within=5)``: poll a (sync or async) condition."""
    return functools.partial(chassis_eventually, step=0.01)


@pytest.fixture
def producer() -> str:
    """A producer name of this test's own, so that its events are told from other tests'."""
    return f"producer-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis(redis_client: Redis) -> Redis:
    """The shared test-database client, under the name the events tests use."""
    return redis_client


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own: pub/sub channels are shared by all Redis DBs."""
    return f"test-{uuid.uuid4().hex[:12]}"


@dataclass
class Outbox:
    sessionmaker: async_sessionmaker[AsyncSession]
    model: type[OutboxEvent]

    async def unsent(self) -> int:
        async with self.sessionmaker() as session:
            count = await session.scalar(
                select(func.count()).select_from(self.model).where(self.model.sent_at.is_(None))
            )
            return int(count or 0)

    async def all_sent(self) -> bool:
        return await self.unsent() == 0

    async def rows(self) -> list[OutboxEvent]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(self.model))).all())


@pytest.fixture
async def outbox(postgres_url: str) -> AsyncIterator[Outbox]:
    """An empty ``outbox`` table in the session's Postgres database."""
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield Outbox(async_sessionmaker(engine, expire_on_commit=False), OutboxEvent)
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
        await engine.dispose()


class RedisServer:
    """A redis-server process of this test's own, on a fixed port, stopped by PID."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = sync_redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except sync_redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, sig)
            process.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
