"""Replay after reconnect (ADR 0013): what was published while a subscriber was away reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from chassis.events import (
    EventEnvelope,
    EventPublisher,
    EventSubscriber,
    pattern_for,
    replay_stream_for,
)
from chassis.testing.faultproxy import FaultProxy

Eventually = Callable[..., Awaitable[None]]


class Inbox:
    def __init__(self) -> None:
        self.events: list[EventEnvelope] = []

    async def __call__(self, envelope: EventEnvelope) -> None:
        self.events.append(envelope)


@asynccontextmanager
async def subscriber_behind_a_proxy(
    redis_url: str, prefix: str, inbox: Inbox, *, replay: bool, margin: float = 30.0
) -> AsyncIterator[tuple[EventSubscriber, FaultProxy]]:
    """A subscriber whose Redis connection goes through a proxy the test can take down."""
    target = urlsplit(redis_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        async with EventSubscriber(
            f"redis://{proxy.address}{target.path}",
            handler=inbox,
            patterns=[pattern_for("order", prefix=prefix)],
            consumer="replay-test",
            reconnect_initial=0.05,
            reconnect_max=0.2,
            replay_stream=replay_stream_for(prefix) if replay else None,
            replay_margin=margin,
        ) as subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)
            yield subscriber, proxy


def order_event(index: int) -> EventEnvelope:
    return EventEnvelope.new(
        type="order.created", producer="orders", payload={"n": index}, subject="u1"
    )


async def test_events_published_while_the_subscriber_was_away_are_replayed_once_it_is_back(
    redis_url: str, redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(
        redis, channel_prefix=prefix, replay_stream=replay_stream_for(prefix)
    )
    before = order_event(0)
    missed = [order_event(i) for i in (1, 2, 3)]
    async with subscriber_behind_a_proxy(redis_url, prefix, inbox, replay=True) as (sub, proxy):
        assert await publisher.publish(before) == 1
        await eventually(lambda: len(inbox.events) == 1)
        proxy.down()
        await eventually(lambda: not sub.connected)
        for event in missed:
            assert await publisher.publish(event) == 0  # nobody is subscribed right now
        proxy.up()
        await eventually(lambda: sub.connected, within=5)
        await eventually(lambda: {e.id for e in missed} <= {e.id for e in inbox.events})
        assert sub.check() == {"reconnects": 1, "replayed": sub.replayed}

    # The margin replays `before` too: consumers dedupe by id (the gateway hub does).
    assert [e.id for e in inbox.events if e.id != before.id] == [e.id for e in missed]
    assert sub.replayed >= len(missed)


async def test_without_a_replay_stream_events_published_while_away_are_lost(
    redis_url: str, redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(
        redis, channel_prefix=prefix, replay_stream=replay_stream_for(prefix)
    )
    async with subscriber_behind_a_proxy(redis_url, prefix, inbox, replay=False) as (sub, proxy):
        proxy.down()
        await eventually(lambda: not sub.connected)
        await publisher.publish(order_event(1))
        proxy.up()
        await eventually(lambda: sub.connected, within=5)
        live = order_event(2)
        await publisher.publish(live)
        await eventually(lambda: len(inbox.events) == 1)

    assert [e.id for e in inbox.events] == [live.id]
    assert sub.replayed == 0


async def test_a_first_subscription_replays_nothing_and_replay_skips_other_families(
    redis_url: str, redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(
        redis, channel_prefix=prefix, replay_stream=replay_stream_for(prefix)
    )
    await publisher.publish(order_event(0))  # before the subscriber existed
    other = EventEnvelope.new(type="user.created", producer="users", subject="u1")
    # Margin 0: replay starts exactly when the loss was noticed.
    async with subscriber_behind_a_proxy(redis_url, prefix, inbox, replay=True, margin=0) as (
        sub,
        proxy,
    ):
        assert inbox.events == []  # subscribing the first time reads nothing back
        proxy.down()
        await eventually(lambda: not sub.connected)
        await publisher.publish(other)
        missed = order_event(1)
        await publisher.publish(missed)
        proxy.up()
        await eventually(lambda: sub.connected, within=5)
        await eventually(lambda: len(inbox.events) == 1)

    assert [e.id for e in inbox.events] == [missed.id]  # not user.created, not order 0
    assert sub.replayed == 1


async def test_the_publisher_keeps_each_event_in_a_capped_stream(redis: Redis, prefix: str) -> None:
    stream = replay_stream_for(prefix)
    publisher = EventPublisher(redis, channel_prefix=prefix, replay_stream=stream, replay_max_len=5)
    events = [order_event(i) for i in range(300)]
    for event in events:
        await publisher.publish(event)

    entries = await redis.xrange(stream)
    # Trimming is approximate (whole nodes): bounded, newest kept, each with channel and data.
    assert 5 <= len(entries) < 300
    last_fields = entries[-1][1]
    assert last_fields[b"channel"] == f"{prefix}.order.created".encode()
    assert EventEnvelope.from_json(last_fields[b"data"]).id == events[-1].id
    await redis.delete(stream)


def test_replay_settings_are_validated(redis_url: str) -> None:
    with pytest.raises(ValueError, match="replay_margin"):
        EventSubscriber(redis_url, handler=Inbox(), channels=["c"], replay_margin=-1)


async def test_a_replayed_burst_lets_consumers_drain_between_events(
    redis_url: str, redis: Redis, prefix: str, eventually: Eventually
) -> None:
    """300 missed events into a 10-slot queue: a consumer that keeps pace must never overflow.

    The gateway's hub queues each event for its connections and drops one whose queue
    is full as too slow; a replay handed over without yielding filled it in one go.
    """
    queue: asyncio.Queue[EventEnvelope] = asyncio.Queue(maxsize=10)
    overflowed: list[EventEnvelope] = []
    drained: list[EventEnvelope] = []

    class BoundedInbox(Inbox):
        async def __call__(self, envelope: EventEnvelope) -> None:
            try:
                queue.put_nowait(envelope)
            except asyncio.QueueFull:
                overflowed.append(envelope)

    async def consumer() -> None:
        while True:
            drained.append(await queue.get())

    publisher = EventPublisher(
        redis, channel_prefix=prefix, replay_stream=replay_stream_for(prefix)
    )
    missed = [order_event(i) for i in range(300)]
    draining = asyncio.create_task(consumer())
    try:
        async with subscriber_behind_a_proxy(redis_url, prefix, BoundedInbox(), replay=True) as (
            sub,
            proxy,
        ):
            proxy.down()
            await eventually(lambda: not sub.connected)
            for event in missed:
                await publisher.publish(event)
            proxy.up()
            await eventually(lambda: len(drained) + len(overflowed) >= len(missed), within=10)
    finally:
        draining.cancel()
    assert overflowed == []
    assert [e.id for e in drained] == [e.id for e in missed]
