"""The health and metrics server: started and stopped with the worker, honest readiness."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from arq.connections import ArqRedis
from redis.asyncio import Redis
from worker_fakes import FakeOrders

from chassis.http import BreakerState, UpstreamUnavailable
from chassis.jobs import enqueue, job_id_for
from chassis.testing import eventually
from chassis.testing.processes import free_port
from contracts.jobs import FULFIL_ORDER
from worker.health import HealthServer, create_health_app
from worker.resources import Resources
from worker.settings import WorkerSettings


async def wait_until_live(base_url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as client, asyncio.timeout(10):
        while True:
            try:
                return await client.get("/health/live")
            except httpx.TransportError:
                await asyncio.sleep(0.02)


@pytest.fixture
async def open_resources() -> AsyncIterator[Callable[[WorkerSettings], Resources]]:
    opened: list[Resources] = []

    def open_(settings: WorkerSettings) -> Resources:
        resources = Resources.open(settings, rng=random.Random(0))
        opened.append(resources)
        return resources

    yield open_
    for resources in opened:
        await resources.aclose()


async def test_the_server_answers_while_the_worker_runs_and_stops_with_it(
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    running_worker: Any,
) -> None:
    settings = make_settings()
    base_url = f"http://127.0.0.1:{settings.server.port}"
    for order_id in ("a", "b"):
        await enqueue(
            arq_pool,
            FULFIL_ORDER,
            order_id,
            job_id=job_id_for(FULFIL_ORDER, order_id),
            queue_name=queue_name,
            defer_by=60,
        )

    async with running_worker(settings):
        live = await wait_until_live(base_url)
        async with httpx.AsyncClient(base_url=base_url) as client:
            ready = await client.get("/health/ready")
            metrics = await client.get("/metrics")

    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["redis"]["status"] == "ok"
    assert checks["orders"]["status"] == "ok"
    assert checks["orders"]["details"]["state"] == "closed"
    assert checks["orders"]["critical"] is False
    assert checks["token"]["status"] == "ok"
    assert checks["token"]["details"]["last_success_seconds_ago"] is not None
    assert checks["token"]["critical"] is False
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert f'queue_depth{{queue="{queue_name}"}} 2.0' in metrics.text
    assert "job_outcomes_total" in metrics.text
    async with httpx.AsyncClient(base_url=base_url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/health/live")


async def test_readiness_fails_on_redis_only_and_shows_the_rest(
    make_settings: Callable[..., WorkerSettings],
    open_resources: Callable[[WorkerSettings], Resources],
    redis_url: str,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        upstreams={
            "orders": {"base_url": down, "retry_attempts": 1, "breaker_failure_threshold": 1},
            "users": {"base_url": down, "retry_attempts": 1},
        }
    )
    resources = open_resources(settings)
    with pytest.raises(UpstreamUnavailable):
        await resources.orders.get("/internal/v1/orders/x")
    healthy_redis = Redis.from_url(redis_url)
    dead_redis = Redis(port=free_port(), socket_connect_timeout=0.5)
    reports = {}
    try:
        for name, redis in (("healthy", healthy_redis), ("dead", dead_redis)):
            server = HealthServer(create_health_app(resources, redis), host="127.0.0.1", port=0)
            await server.start()
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                    reports[name] = await client.get("/health/ready")
                    metrics = await client.get("/metrics")
                    assert metrics.status_code == 200
            finally:
                await server.stop()
    finally:
        await healthy_redis.aclose()
        await dead_redis.aclose()

    healthy, dead = reports["healthy"], reports["dead"]
    assert healthy.status_code == 200
    assert healthy.json()["checks"]["orders"] == {
        "status": "failed",
        "error": "CircuitOpenError",
        "latency_ms": healthy.json()["checks"]["orders"]["latency_ms"],
        "critical": False,
    }
    assert healthy.json()["checks"]["token"]["status"] == "failed"
    assert dead.status_code == 503
    assert dead.json()["failed"] == ["redis"]


async def test_readiness_shows_orders_healed_without_waiting_for_a_job(
    make_settings: Callable[..., WorkerSettings],
    open_resources: Callable[[WorkerSettings], Resources],
    fake_orders: FakeOrders,
    redis_url: str,
) -> None:
    """An idle worker makes no call that would close the breaker: readiness probes instead."""
    port = free_port()
    orders_upstream = {
        "base_url": f"http://127.0.0.1:{port}",
        "retry_attempts": 1,
        "breaker_failure_threshold": 1,
        "breaker_open_seconds": 0.2,
    }
    resources = open_resources(make_settings(upstreams={"orders": orders_upstream}))
    with pytest.raises(UpstreamUnavailable):
        await resources.orders.get("/internal/v1/orders/x")
    assert resources.orders.breaker.state is BreakerState.OPEN

    redis = Redis.from_url(redis_url)
    health = HealthServer(create_health_app(resources, redis), host="127.0.0.1", port=0)
    # Orders comes back on the very port the breaker saw refuse.
    orders = uvicorn.Server(
        uvicorn.Config(fake_orders.app(), host="127.0.0.1", port=port, lifespan="off")
    )
    orders_task: asyncio.Task[None] | None = None
    await health.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health.port}") as client:

            async def orders_check() -> str:
                report = (await client.get("/health/ready")).json()
                return str(report["checks"]["orders"]["status"])

            async def orders_healed() -> bool:
                return await orders_check() == "ok"

            assert await orders_check() == "failed"  # still down: open, or its probe refused
            orders_task = asyncio.create_task(orders.serve())  # orders heals; no job runs

            await eventually(orders_healed, within=10)
        assert resources.orders.breaker.state is BreakerState.CLOSED
        assert fake_orders.calls_to("/health/live"), "readiness probed orders' liveness"
        assert not fake_orders.calls_to("/fulfilment"), "no job ran: the probe alone closed it"
    finally:
        orders.should_exit = True
        if orders_task is not None:
            await orders_task
        await health.stop()
        await redis.aclose()


async def test_a_taken_port_stops_start_up(
    make_settings: Callable[..., WorkerSettings],
    open_resources: Callable[[WorkerSettings], Resources],
    redis_url: str,
) -> None:
    resources = open_resources(make_settings())
    redis = Redis.from_url(redis_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HealthServer(
            create_health_app(resources, redis), host="127.0.0.1", port=taken.getsockname()[1]
        )
        try:
            with pytest.raises(OSError, match="in use"):
                await server.start()
        finally:
            await server.stop()
            await redis.aclose()


async def test_metrics_can_be_switched_off(
    make_settings: Callable[..., WorkerSettings],
    open_resources: Callable[[WorkerSettings], Resources],
    redis_url: str,
    make_client: Any,
) -> None:
    resources = open_resources(make_settings(metrics={"enabled": False}))
    redis = Redis.from_url(redis_url)
    try:
        async with make_client(create_health_app(resources, redis)) as client:
            metrics = await client.get("/metrics")
            live = await client.get("/health/live")
    finally:
        await redis.aclose()

    assert (metrics.status_code, live.status_code) == (404, 200)
