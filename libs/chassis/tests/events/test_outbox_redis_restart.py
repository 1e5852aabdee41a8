"""The outbox relay across a Redis crash: nothing lost, nothing delivered twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from chassis.events import (
    EventEnvelope,
    EventPublisher,
    EventSubscriber,
    OutboxRelay,
    add_event,
    pattern_for,
)

Eventually = Callable[..., Awaitable[None]]

ROWS = 200
KILL_AFTER = 80


async def test_outbox_relay_delivers_every_row_exactly_once_to_a_subscriber_across_a_redis_restart(
    outbox: Any, own_redis: Any, prefix: str, eventually: Eventually
) -> None:
    producer = f"restart-{uuid.uuid4().hex[:8]}"
    async with outbox.sessionmaker.begin() as session:
        row_ids = [
            add_event(
                session, outbox.model, type="order.created", payload={"n": n}, producer=producer
            ).id
            for n in range(ROWS)
        ]

    # Every raw delivery is kept: duplicates would show up here, not be deduped away.
    deliveries: list[str] = []

    async def consume(envelope: EventEnvelope) -> None:
        deliveries.append(envelope.id)

    published = 0
    killed = asyncio.Event()

    async def crash_redis_midway(envelope: EventEnvelope) -> None:
        nonlocal published
        published += 1
        if published == KILL_AFTER:
            # Redis keeps no pub/sub backlog: what it accepted but had not yet written to
            # the subscriber dies with it. Let those reach the subscriber, then crash.
            await eventually(lambda: len(deliveries) == KILL_AFTER, within=10)
            own_redis.kill()
            killed.set()

    subscriber = EventSubscriber(
        own_redis.url,
        handler=consume,
        patterns=[pattern_for(prefix=prefix)],
        reconnect_initial=0.05,
        reconnect_max=0.2,
    )
    client = Redis.from_url(own_redis.url, socket_connect_timeout=0.5, socket_timeout=1.0)
    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(client, channel_prefix=prefix),
        producer=producer,
        batch_size=10,
        poll_interval=0.02,
        initial_backoff=0.05,
        max_backoff=0.2,
        # Marked sent only once a subscriber got it: after the restart, publishes that
        # reach nobody (subscriber still reconnecting) are retried, not lost.
        require_subscribers=True,
        on_published=crash_redis_midway,
    )

    def failures() -> float:
        return (
            REGISTRY.get_sample_value("outbox_publish_failures_total", {"producer": producer}) or 0
        )

    try:
        async with subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)
            await relay.start()

            await asyncio.wait_for(killed.wait(), 30)
            # Redis is down and the relay keeps going: its publishes fail and rows wait.
            await eventually(lambda: failures() >= 3, within=10)
            unsent_during_outage = await outbox.unsent()
            assert unsent_during_outage == ROWS - KILL_AFTER
            assert not subscriber.connected

            own_redis.start()
            await eventually(outbox.all_sent, within=30)
            await relay.stop()
            await eventually(lambda: len(deliveries) >= ROWS, within=10)
    finally:
        await relay.stop()
        await client.aclose()

    counts = Counter(deliveries)
    assert set(counts) == set(row_ids)
    assert max(counts.values()) == 1, "an event was delivered more than once"
    assert len(deliveries) == ROWS
    assert subscriber.reconnects == 1

    rows = await outbox.rows()
    assert all(row.sent_at is not None for row in rows)
    retried = [row for row in rows if row.attempts > 0]
    assert retried, "some rows must have failed during the outage and been retried"
    assert all(row.last_error for row in retried)
