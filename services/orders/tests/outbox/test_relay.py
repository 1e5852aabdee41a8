"""The relay inside the orders process: events to Redis, fulfilment jobs to the arq queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.builder import AppBuilder
from chassis.database import utc_now
from chassis.events import EventEnvelope, pattern_for
from chassis.jobs import job_id_for
from chassis.settings import BaseServiceSettings
from contracts.jobs import FULFIL_ORDER
from orders.main import create_app
from orders.order.fulfilment import fulfilment_job_for
from orders.outbox.models import OutboxEvent
from orders.outbox.relay import jobs_started_by, setup_outbox_relay
from orders.settings import OrdersSettings

QUEUE = "arq:queue"


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def relay_settings(make_settings: Callable[..., OrdersSettings], **outbox: Any) -> OrdersSettings:
    return make_settings(outbox={"relay_enabled": True, "poll_interval_seconds": 0.05, **outbox})


@asynccontextmanager
async def order_events(redis_url: str, *, prefix: str | None = None) -> AsyncIterator[Any]:
    """A pub/sub connection subscribed to every ``order.*`` channel (under `prefix`)."""
    listener = Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    pattern = pattern_for("order") if prefix is None else pattern_for("order", prefix=prefix)
    await pubsub.psubscribe(pattern)
    try:
        yield pubsub
    finally:
        await pubsub.aclose()
        await listener.aclose()


async def _next_event_about(
    pubsub: Any, order_id: str, event_type: str, *, within: float = 10.0
) -> EventEnvelope:
    async with asyncio.timeout(within):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            # Channels are shared by every Redis database: skip other tests' events.
            envelope = EventEnvelope.from_json(message["data"])
            if envelope.type == event_type and envelope.payload["order"]["id"] == order_id:
                return envelope


async def test_a_new_order_is_published_and_its_fulfilment_job_enqueued_once(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    redis_url: str,
    arq_redis: ArqRedis,
    tokens: Any,
    order_body: Any,
    stored: Any,
    eventually: Callable[..., Awaitable[None]],
) -> None:
    async with order_events(redis_url) as pubsub:
        app = create_app(relay_settings(make_settings))
        async with make_client(app) as client:
            created = await client.post(
                "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
            )
            order = created.json()
            envelope = await _next_event_about(pubsub, order["id"], "order.created")

            async def all_sent() -> bool:
                return all(row.sent_at is not None for row in await stored.events())

            await eventually(all_sent)

    assert envelope.producer == "orders"
    assert envelope.subject == "alice"
    assert envelope.payload == {"order": order, "previous_status": None}
    job_id = job_id_for(FULFIL_ORDER, order["id"])
    assert await arq_redis.zrange(QUEUE, 0, -1) == [job_id.encode()]
    job = await Job(job_id, arq_redis, _queue_name=QUEUE).info()
    assert job is not None
    assert job.function == "orders.fulfil"
    assert job.args == (order["id"],)
    assert "_meta" in job.kwargs


async def test_later_changes_are_published_without_new_jobs(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    redis_url: str,
    arq_redis: ArqRedis,
    tokens: Any,
    order_body: Any,
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    async with order_events(redis_url, prefix=prefix) as pubsub:
        app = create_app(relay_settings(make_settings, channel_prefix=prefix))
        async with make_client(app) as client:
            created = await client.post(
                "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
            )
            order_id = created.json()["id"]
            await client.post(f"/api/v1/orders/{order_id}/cancel", headers=tokens.user("alice"))
            cancelled = await _next_event_about(pubsub, order_id, "order.cancelled")

    assert cancelled.payload["previous_status"] == "pending"
    assert await arq_redis.zcard(QUEUE) == 1


async def test_each_change_is_published_when_it_commits_not_at_the_next_poll(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    redis_url: str,
    tokens: Any,
    order_body: Any,
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    # Ten minutes between polls: only the commit's wake can publish within the test.
    settings = relay_settings(make_settings, channel_prefix=prefix, poll_interval_seconds=600)
    async with (
        order_events(redis_url, prefix=prefix) as pubsub,
        make_client(create_app(settings)) as client,
    ):
        for _ in range(3):
            created = await client.post(
                "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
            )
            order_id = created.json()["id"]
            await _next_event_about(pubsub, order_id, "order.created", within=5)
            await client.post(f"/api/v1/orders/{order_id}/cancel", headers=tokens.user("alice"))
            await _next_event_about(pubsub, order_id, "order.cancelled", within=5)


async def test_the_fulfilment_job_is_enqueued_once_however_often_the_event_is_relayed(
    redis_url: str, arq_redis: ArqRedis
) -> None:
    order_id = str(uuid.uuid4())
    envelope = EventEnvelope.new(
        type="order.created", producer="orders", payload={"order": {"id": order_id}}
    )
    client = Redis.from_url(redis_url)
    hook = jobs_started_by(fulfilment_job_for, client, queue_name=QUEUE)
    try:
        for _ in range(3):
            await hook(envelope)
    finally:
        await client.aclose()

    assert await arq_redis.zrange(QUEUE, 0, -1) == [job_id_for(FULFIL_ORDER, order_id).encode()]


async def test_the_queue_name_comes_from_settings(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    arq_redis: ArqRedis,
    tokens: Any,
    order_body: Any,
    eventually: Callable[..., Awaitable[None]],
) -> None:
    settings = make_settings(
        outbox={
            "relay_enabled": True,
            "poll_interval_seconds": 0.05,
            "channel_prefix": f"test-{uuid.uuid4().hex[:12]}",
        },
        jobs={"queue_name": "orders:jobs"},
    )
    async with make_client(create_app(settings)) as client:
        await client.post("/api/v1/orders", json=order_body(), headers=tokens.user("alice"))

        async def enqueued() -> bool:
            return bool(await arq_redis.zcard("orders:jobs"))

        await eventually(enqueued)

    assert await arq_redis.zcard(QUEUE) == 0


async def test_readiness_reports_the_outbox_backlog_without_depending_on_it(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    place: Any,
    tokens: Any,
    db: async_sessionmaker[AsyncSession],
) -> None:
    for _ in range(2):
        await place(tokens.user("alice"))
    # Rows waiting for a retry: unsent (so in the backlog) but not yet due for the relay.
    async with db.begin() as session:
        await session.execute(
            update(OutboxEvent).values(next_attempt_at=utc_now() + timedelta(hours=1))
        )

    async with make_client(create_app(relay_settings(make_settings))) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    outbox = response.json()["checks"]["outbox"]
    assert outbox["status"] == "ok"
    assert outbox["critical"] is False
    assert outbox["details"]["backlog"] == 2
    assert outbox["details"]["oldest_unsent_seconds"] >= 0


async def test_orders_are_accepted_while_redis_is_down_and_their_events_wait(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    closed_port: int,
    tokens: Any,
    order_body: Any,
    stored: Any,
) -> None:
    settings = make_settings(
        redis={"url": f"redis://127.0.0.1:{closed_port}/0", "connect_timeout_seconds": 0.2},
        outbox={"relay_enabled": True, "poll_interval_seconds": 0.05},
    )
    async with make_client(create_app(settings)) as client:
        created = await client.post(
            "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
        )
        await asyncio.sleep(0.3)
        ready = await client.get("/health/ready")

    assert created.status_code == 201
    # Still ready: orders are taken while the relay waits for Redis, which readiness names.
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"]["status"] == "failed"
    assert ready.json()["checks"]["outbox"]["details"]["backlog"] == 1
    [event] = await stored.events()
    assert event.sent_at is None
    assert event.attempts >= 1
    assert event.last_error


def test_a_disabled_relay_adds_no_resource_and_no_check(
    make_settings: Callable[..., OrdersSettings],
) -> None:
    settings = make_settings(outbox={"relay_enabled": False})
    builder = AppBuilder(settings).with_database().with_redis()

    setup_outbox_relay(builder)

    assert "outbox" not in builder.readiness.names


def test_the_relay_step_needs_the_database_and_redis_steps(
    make_settings: Callable[..., OrdersSettings],
) -> None:
    builder = AppBuilder(make_settings(outbox={"relay_enabled": True})).with_database()

    with pytest.raises(RuntimeError, match="database and redis"):
        setup_outbox_relay(builder)


def test_the_relay_step_needs_orders_settings() -> None:
    with pytest.raises(TypeError, match="OrdersSettings"):
        setup_outbox_relay(AppBuilder(BaseServiceSettings()))


def test_the_app_has_the_relay_only_when_enabled(
    make_settings: Callable[..., OrdersSettings],
) -> None:
    enabled: FastAPI = create_app(make_settings(outbox={"relay_enabled": True}))
    disabled: FastAPI = create_app(make_settings(outbox={"relay_enabled": False}))

    assert "outbox" in enabled.state.readiness.names
    assert "outbox" not in disabled.state.readiness.names
