"""The outbox relay as a resource of the orders app (docs/adr/0006-outbox-relay-in-orders.md).

Started in the lifespan after the database and Redis, stopped before them:
it publishes ``order.*`` events to Redis pub/sub and enqueues the jobs the
orders rule `fulfilment_job_for` names (``orders.fulfil`` for a created order)
under a deterministic id, so a row relayed twice still yields one job. Readiness reports the backlog
without failing: a Redis outage delays events, it does not stop orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import Redis

from chassis.database import Database
from chassis.events import EventEnvelope, EventPublisher, OutboxRelay, replay_stream_for
from chassis.events.outbox import PublishedHook
from chassis.jobs import enqueue
from orders.order.fulfilment import JobRequest, fulfilment_job_for
from orders.order.service import PRODUCER
from orders.outbox.models import OutboxEvent
from orders.settings import OrdersSettings

if TYPE_CHECKING:
    from chassis.builder import AppBuilder

RESOURCE_NAME = "outbox_relay"
READINESS_CHECK = "outbox"


def jobs_started_by(
    rule: Callable[[EventEnvelope], JobRequest | None],
    redis: ArqRedis | Redis,
    *,
    queue_name: str,
) -> PublishedHook:
    """The relay hook: enqueue the job `rule` names for a published event, if any.

    The relay runs the hook after each publish; which events start which jobs is
    the rule's business (`orders.order.fulfilment.fulfilment_job_for`), not the relay's.
    """

    async def on_published(envelope: EventEnvelope) -> None:
        request = rule(envelope)
        if request is None:
            return
        # Arq refuses a second job with this id while the first is queued, running or kept.
        await enqueue(
            redis, request.name, *request.args, job_id=request.job_id, queue_name=queue_name
        )

    return on_published


def build_relay(
    database: Database, redis: Redis, settings: OrdersSettings
) -> OutboxRelay[OutboxEvent]:
    """A relay over the app's database and Redis client, configured from settings."""
    outbox = settings.outbox
    # One arq view over the shared pool (bytes responses, as arq expects).
    arq = ArqRedis(pool_or_conn=redis.connection_pool)
    return OutboxRelay(
        database.sessionmaker,
        OutboxEvent,
        EventPublisher(
            redis,
            channel_prefix=outbox.channel_prefix,
            # Lets a gateway that was resubscribing read back what it missed (ADR 0013).
            replay_stream=replay_stream_for(outbox.channel_prefix)
            if outbox.replay_max_len
            else None,
            replay_max_len=max(outbox.replay_max_len, 1),
        ),
        producer=PRODUCER,
        batch_size=outbox.batch_size,
        poll_interval=outbox.poll_interval_seconds,
        wake_on_commit=outbox.wake_on_commit,
        max_backoff=outbox.max_backoff_seconds,
        on_published=jobs_started_by(fulfilment_job_for, arq, queue_name=settings.jobs.queue_name),
    )


def setup_outbox_relay(builder: AppBuilder) -> None:
    """Builder step: resource ``outbox_relay`` and non-critical readiness ``outbox``.

    Needs the database and redis steps first. Off with ``ORDERS_OUTBOX__RELAY_ENABLED=false``
    (another process relays, or a test wants the rows left unsent).
    """
    settings = builder.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("the outbox relay step needs OrdersSettings")
    if not settings.outbox.relay_enabled:
        return
    if not {"database", "redis"} <= set(builder.steps):
        raise RuntimeError("add the database and redis steps before the outbox relay")

    @asynccontextmanager
    async def outbox_relay(app: FastAPI) -> AsyncIterator[OutboxRelay[OutboxEvent]]:
        relay = build_relay(app.state.database, app.state.redis, settings)
        await relay.start()
        try:
            yield relay
        finally:
            await relay.stop(grace_seconds=settings.outbox.stop_grace_seconds)

    builder.add_resource(RESOURCE_NAME, outbox_relay)
    builder.readiness.add(READINESS_CHECK, check_outbox, critical=False)


async def check_outbox(app: FastAPI) -> Mapping[str, Any]:
    """Readiness details: unsent rows and the age of the oldest (also sets the gauges)."""
    relay: OutboxRelay[OutboxEvent] = app.state.outbox_relay
    backlog, lag = await relay.refresh_metrics()
    return {"backlog": backlog, "oldest_unsent_seconds": round(lag, 3)}
