"""Fixtures for the worker tests: fake upstreams on real sockets, settings, a burst worker."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, create_worker

from chassis.testing import eventually
from chassis.testing.jobs import close_worker, run_burst
from chassis.testing.overrides import deep_merge
from chassis.testing.processes import free_port
from chassis.testing.servers import serve_in_thread

sys.path.insert(0, str(Path(__file__).parent))
from worker_fakes import CLIENT_SECRET, FakeOrders, FakeUsers

from worker.main import build_worker_settings
from worker.settings import WorkerSettings


@pytest.fixture
def fake_users() -> FakeUsers:
    return FakeUsers()


@pytest.fixture
def fake_orders(fake_users: FakeUsers) -> FakeOrders:
    return FakeOrders(fake_users)


@pytest.fixture
def users_url(fake_users: FakeUsers) -> Iterator[str]:
    with serve_in_thread(fake_users.app(), lifespan="off") as url:
        yield url


@pytest.fixture
def orders_url(fake_orders: FakeOrders) -> Iterator[str]:
    with serve_in_thread(fake_orders.app(), lifespan="off") as url:
        yield url


@pytest.fixture
def queue_name() -> str:
    """A queue of its own, so that queue-depth samples are this test's only."""
    return f"arq:test:{uuid.uuid4().hex[:10]}"


def fast_upstream(base_url: str) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "retry_attempts": 3,
        "retry_backoff_initial_seconds": 0.001,
        "retry_backoff_max_seconds": 0.002,
        "deadline_seconds": 5.0,
        "breaker_failure_threshold": 5,
        "breaker_open_seconds": 30.0,
    }


@pytest.fixture
def make_settings(
    redis_url: str, users_url: str, orders_url: str, queue_name: str
) -> Callable[..., WorkerSettings]:
    """``make(**overrides)``: settings pointing at the fakes; nested dicts merge."""

    def make(**overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "redis": {"url": redis_url},
            "upstreams": {"orders": fast_upstream(orders_url), "users": fast_upstream(users_url)},
            "client_secret": CLIENT_SECRET,
            "server": {"port": free_port(), "graceful_timeout_seconds": 1},
            "jobs": {"queue_name": queue_name, "queue_depth_interval_seconds": 0.05},
            "fulfil": {
                "latency_seconds": 0,
                "retry_backoff_initial_seconds": 0.01,
                "retry_backoff_max_seconds": 0.02,
            },
            "crons": {"enabled": False},
        }
        return WorkerSettings(**deep_merge(values, overrides))

    return make


@pytest.fixture
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()


RunWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def run_worker() -> RunWorker:
    """``await run_worker(settings, rng=..., **worker_options)``: a burst worker until idle."""

    async def run(settings: WorkerSettings, *, rng: Any = None, **options: Any) -> Worker:
        return await run_burst(
            create_worker(
                build_worker_settings(settings, rng=rng),
                burst=True,
                handle_signals=False,
                poll_delay=0.01,
                **options,
            )
        )

    return run


@contextlib.asynccontextmanager
async def running_worker(settings: WorkerSettings, **options: Any) -> AsyncIterator[Worker]:
    """A long-running worker (not burst) in a task; closed, hooks and all, on exit."""
    worker = create_worker(
        build_worker_settings(settings), handle_signals=False, poll_delay=0.01, **options
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await close_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(name="running_worker")
def running_worker_fixture() -> Callable[..., contextlib.AbstractAsyncContextManager[Worker]]:
    """``async with running_worker(settings) as worker``: see `running_worker`."""
    return running_worker


RunWorkerUntil = Callable[..., Awaitable[Worker]]


@pytest.fixture
def run_worker_until() -> RunWorkerUntil:
    """``await run_worker_until(settings, done)``: a long-running worker until ``await done()``.

    For jobs that are deferred (a burst worker would wait for them to come due).
    """

    async def run(
        settings: WorkerSettings,
        done: Callable[[], Awaitable[bool]],
        *,
        within: float = 10.0,
        **options: Any,
    ) -> Worker:
        async with running_worker(settings, **options) as worker:
            await eventually(done, within=within, step=0.01)
        return worker

    return run
