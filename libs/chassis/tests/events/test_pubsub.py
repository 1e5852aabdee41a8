from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from structlog.testing import capture_logs

from chassis.events import (
    EventEnvelope,
    EventPublisher,
    EventSubscriber,
    channel_for,
    pattern_for,
    replay_stream_for,
)
from chassis.events.pubsub import backoff_delay

Eventually = Callable[..., Awaitable[None]]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Inbox:
    """A handler that records what it was given."""

    def __init__(self) -> None:
        self.events: list[EventEnvelope] = []

    async def __call__(self, envelope: EventEnvelope) -> None:
        self.events.append(envelope)

    @property
    def types(self) -> list[str]:
        return [event.type for event in self.events]


def test_channels_are_per_type_and_patterns_match_a_family() -> None:
    assert channel_for("order.created") == "events.order.created"
    assert channel_for("order.created", prefix="p") == "p.order.created"
    assert pattern_for("order") == "events.order.*"
    assert pattern_for() == "events.*"


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(10):
        delay = backoff_delay(attempt, initial=0.1, maximum=2.0)
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert 1.0 <= backoff_delay(100_000, initial=0.1, maximum=2.0) <= 2.0


def test_a_subscriber_needs_something_to_subscribe_to(redis_url: str) -> None:
    with pytest.raises(ValueError, match="channel or pattern"):
        EventSubscriber(redis_url, handler=Inbox())


async def test_published_events_arrive_with_their_envelope(
    redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(redis, channel_prefix=prefix)
    created = EventEnvelope.new(
        type="order.created", producer="orders", payload={"id": 1}, subject="u1"
    )
    other_family = EventEnvelope.new(type="user.created", producer="users")
    received_before = sample("events_received_total", consumer="gw", type="order.created")
    published_before = sample("events_published_total", producer="orders", type="order.created")

    async with EventSubscriber(
        redis, handler=inbox, patterns=[pattern_for("order", prefix=prefix)], consumer="gw"
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        assert subscriber.check() == {"reconnects": 0, "replayed": 0}
        assert await publisher.publish(created) == 1
        assert await publisher.publish(other_family) == 0
        await eventually(lambda: len(inbox.events) == 1)

    assert inbox.events == [created]
    assert sample("events_received_total", consumer="gw", type="order.created") == (
        received_before + 1
    )
    assert sample("events_published_total", producer="orders", type="order.created") == (
        published_before + 1
    )
    assert sample("event_delivery_lag_seconds_count", consumer="gw", type="order.created") >= 1
    assert subscriber.connected is False


@pytest.mark.parametrize("replay", [False, True], ids=["plain", "with-replay-stream"])
async def test_a_batch_goes_out_in_order_in_one_round_trip(
    redis: Redis, prefix: str, eventually: Eventually, monkeypatch: pytest.MonkeyPatch, replay: bool
) -> None:
    inbox = Inbox()
    stream = replay_stream_for(prefix) if replay else None
    publisher = EventPublisher(redis, channel_prefix=prefix, replay_stream=stream)
    batch = [
        EventEnvelope.new(type=kind, producer="orders", payload={"n": n})
        for n, kind in enumerate(["order.created", "user.created"] * 10)
    ]
    writes: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        writes.append(1)
        await original(self, command, check_health)

    async with EventSubscriber(
        redis, handler=inbox, patterns=[pattern_for("order", prefix=prefix)]
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        await redis.ping()  # the publisher's pooled connection is open before counting
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        reached = await publisher.publish_many(batch)
        monkeypatch.undo()
        assert await publisher.publish_many([]) == []
        await eventually(lambda: len(inbox.events) == 10)

    assert len(writes) == 1
    # One subscriber on the order family: each order event reached it, no user event did.
    assert reached == [1, 0] * 10
    assert inbox.events == batch[::2]
    if stream is not None:
        entries = await redis.xrange(stream)
        assert [EventEnvelope.from_json(fields[b"data"]) for _, fields in entries] == batch


async def test_a_subscriber_on_exact_channels_gets_only_those(
    redis_url: str, redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(redis, channel_prefix=prefix)
    wanted = channel_for("order.paid", prefix=prefix)

    async with EventSubscriber(redis_url, handler=inbox, channels=[wanted, wanted]) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        await publisher.publish(EventEnvelope.new(type="order.created", producer="orders"))
        await publisher.publish(EventEnvelope.new(type="order.paid", producer="orders"))
        await eventually(lambda: len(inbox.events) == 1)

    assert inbox.types == ["order.paid"]


async def test_malformed_messages_are_skipped_and_delivery_goes_on(
    redis: Redis, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    publisher = EventPublisher(redis, channel_prefix=prefix)
    channel = channel_for("order.created", prefix=prefix)

    with capture_logs() as logs:
        async with EventSubscriber(
            redis, handler=inbox, patterns=[pattern_for(prefix=prefix)]
        ) as subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)
            await redis.publish(channel, b"{not json")
            await redis.publish(channel, b'{"type": "order.created"}')
            good = EventEnvelope.new(type="order.created", producer="orders")
            await publisher.publish(good)
            await eventually(lambda: len(inbox.events) == 1)
            assert subscriber.connected

    assert inbox.events == [good]
    skipped = [entry for entry in logs if entry["event"] == "event_malformed_skipped"]
    assert len(skipped) == 2
    assert all("not an event envelope" in entry["error"] for entry in skipped)


async def test_a_failing_handler_does_not_stop_the_subscriber(
    redis: Redis, prefix: str, eventually: Eventually
) -> None:
    delivered: list[str] = []

    async def handler(envelope: EventEnvelope) -> None:
        delivered.append(envelope.payload["n"])
        if envelope.payload["n"] == "boom":
            raise RuntimeError("handler bug")

    publisher = EventPublisher(redis, channel_prefix=prefix)
    with capture_logs() as logs:
        async with EventSubscriber(
            redis, handler=handler, patterns=[pattern_for(prefix=prefix)]
        ) as subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)
            for n in ("one", "boom", "two"):
                await publisher.publish(
                    EventEnvelope.new(type="order.created", producer="orders", payload={"n": n})
                )
            await eventually(lambda: len(delivered) == 3)
            assert subscriber.connected

    assert delivered == ["one", "boom", "two"]
    failures = [entry for entry in logs if entry["event"] == "event_handler_failed"]
    assert len(failures) == 1


async def test_the_handler_runs_in_a_span_that_continues_the_producer_trace(
    redis: Redis, prefix: str, eventually: Eventually, span_exporter: Any
) -> None:
    inbox = Inbox()

    async def failing(envelope: EventEnvelope) -> None:
        await inbox(envelope)
        raise ValueError("rejected")

    publisher = EventPublisher(redis, channel_prefix=prefix)
    async with EventSubscriber(
        redis, handler=failing, patterns=[pattern_for(prefix=prefix)]
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        with trace.get_tracer("test").start_as_current_span("request") as request_span:
            envelope = EventEnvelope.new(type="order.created", producer="orders")
        await publisher.publish(envelope)
        await eventually(lambda: len(inbox.events) == 1)

    producer_context = request_span.get_span_context()
    if not producer_context.trace_flags.sampled:
        pytest.skip("the session's tracer provider did not sample this trace")
    spans = [s for s in span_exporter.get_finished_spans() if s.name == "order.created process"]
    assert len(spans) == 1
    span = spans[0]
    assert span.kind is SpanKind.CONSUMER
    assert span.context.trace_id == producer_context.trace_id
    assert span.parent is not None
    assert span.parent.span_id == producer_context.span_id
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == envelope.id
    assert span.status.status_code is StatusCode.ERROR


async def test_check_fails_while_not_subscribed(redis_url: str) -> None:
    subscriber = EventSubscriber(redis_url, handler=Inbox(), channels=["x"])

    with pytest.raises(ConnectionError, match="not started"):
        subscriber.check()
    await subscriber.stop()


async def test_a_subscriber_cannot_be_started_twice(redis_url: str, prefix: str) -> None:
    async with EventSubscriber(redis_url, handler=Inbox(), channels=[prefix]) as subscriber:
        with pytest.raises(RuntimeError, match="already started"):
            await subscriber.start()


async def test_the_subscriber_reconnects_after_redis_restarts(
    own_redis: Any, prefix: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    subscriber = EventSubscriber(
        own_redis.url,
        handler=inbox,
        patterns=[pattern_for(prefix=prefix)],
        reconnect_initial=0.02,
        reconnect_max=0.1,
    )
    with capture_logs() as logs:
        async with subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)

            own_redis.kill()
            await eventually(lambda: not subscriber.connected)
            with pytest.raises(ConnectionError, match="event subscription down"):
                subscriber.check()
            await eventually(lambda: subscriber.last_error is not None)

            own_redis.start()
            await asyncio.wait_for(subscriber.wait_connected(), 10)
            client = Redis.from_url(own_redis.url)
            try:
                await EventPublisher(client, channel_prefix=prefix).publish(
                    EventEnvelope.new(type="order.created", producer="orders")
                )
            finally:
                await client.aclose()
            await eventually(lambda: len(inbox.events) == 1)

    assert subscriber.reconnects == 1
    assert subscriber.last_error is not None
    events = [entry["event"] for entry in logs]
    assert "event_subscriber_reconnecting" in events
    assert "event_subscriber_reconnected" in events
