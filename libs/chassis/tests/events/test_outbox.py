from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from outbox_testing import Eventually, FrozenClock, Inbox, sample, stage
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from structlog.testing import capture_logs

from chassis.events import (
    EventEnvelope,
    EventPublisher,
    EventSubscriber,
    OutboxMixin,
    OutboxRelay,
    add_event,
    insert_event,
    pattern_for,
    purge_sent,
)
from chassis.testing.processes import free_port


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    """A client for a port nothing listens on: every command fails to connect."""
    client = Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def write_event(how: str, session: AsyncSession, model: Any, **event: Any) -> EventEnvelope:
    """Stage with the ORM (`add_event`) or insert at once with Core (`insert_event`)."""
    if how == "insert_event":
        return await insert_event(session, model, **event)
    return add_event(session, model, **event)


@pytest.mark.parametrize("how", ["add_event", "insert_event"])
async def test_an_event_is_stored_only_when_the_callers_transaction_commits(
    outbox: Any, span_exporter: Any, how: str
) -> None:
    async with outbox.sessionmaker() as session:
        await write_event(
            how, session, outbox.model, type="order.created", payload={}, producer="orders"
        )
        await session.rollback()
    assert await outbox.rows() == []

    created = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
    with trace.get_tracer("test").start_as_current_span("request") as span:
        async with outbox.sessionmaker.begin() as session:
            envelope = await write_event(
                how,
                session,
                outbox.model,
                type="order.created",
                payload={"id": uuid.UUID(int=1), "at": created, "total": Decimal("9.50")},
                subject="user-1",
                producer="orders",
                version=2,
            )

    [row] = await outbox.rows()
    assert row.id == envelope.id
    assert row.event_type == "order.created"
    assert row.event_version == 2
    assert row.producer == "orders"
    assert row.subject == "user-1"
    assert row.payload == {
        "id": "00000000-0000-0000-0000-000000000001",
        "at": "2025-05-01T12:30:00Z",
        "total": "9.50",
    }
    assert format(span.get_span_context().trace_id, "032x") in row.trace["traceparent"]
    assert row.occurred_at == envelope.occurred_at
    assert row.occurred_at.tzinfo is not None
    assert row.attempts == 0
    assert row.sent_at is None
    assert row.last_error is None


async def test_the_relay_publishes_every_row_once_and_marks_it_sent(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    ids = await stage(outbox, 25, producer=producer)
    inbox = Inbox()
    hooked: list[str] = []

    async def on_published(envelope: EventEnvelope) -> None:
        hooked.append(envelope.id)

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis, channel_prefix=prefix),
        producer=producer,
        batch_size=10,
        on_published=on_published,
    )
    async with EventSubscriber(
        redis, handler=inbox, patterns=[pattern_for(prefix=prefix)]
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        assert [await relay.relay_once() for _ in range(4)] == [10, 10, 5, 0]
        await eventually(lambda: len(inbox.ids) == 25)

    assert inbox.ids == ids
    assert hooked == ids
    rows = {row.id: row for row in await outbox.rows()}
    assert all(row.sent_at is not None and row.attempts == 0 for row in rows.values())
    first = inbox.events[0]
    assert first.producer == producer
    assert first.subject == "user-0"
    assert first.payload == {"n": 0}
    assert first.occurred_at == rows[first.id].occurred_at


async def test_a_failed_publish_is_recorded_and_retried_with_backoff(
    outbox: Any, dead_redis: Redis, redis: Redis, producer: str
) -> None:
    first, second = await stage(outbox, 2, producer=producer)
    clock = FrozenClock(datetime.now(UTC) + timedelta(seconds=1))
    failures_before = sample("outbox_publish_failures_total", producer=producer)
    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(dead_redis),
        producer=producer,
        initial_backoff=0.5,
        max_backoff=30,
        clock=clock,
    )

    with capture_logs() as logs:
        assert await relay.relay_once() == 0

    rows = {row.id: row for row in await outbox.rows()}
    assert rows[first].attempts == 1
    assert rows[first].next_attempt_at == clock.now + timedelta(seconds=0.5)
    assert "ConnectionError" in (rows[first].last_error or "")
    assert rows[first].sent_at is None
    # The batch stops at the first failure: the broker is down for the others too.
    assert rows[second].attempts == 0
    assert sample("outbox_publish_failures_total", producer=producer) == failures_before + 1
    assert [entry["event"] for entry in logs] == ["outbox_publish_failed"]

    assert await relay.relay_once() == 0
    clock.advance(0.5)
    assert await relay.relay_once() == 0
    rows = {row.id: row for row in await outbox.rows()}
    assert rows[first].attempts == 2
    assert rows[first].next_attempt_at == clock.now + timedelta(seconds=1.0)
    assert rows[second].attempts == 1

    healthy = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        clock=clock,
    )
    clock.advance(1.0)
    assert await healthy.relay_once() == 2
    assert all(row.sent_at is not None for row in await outbox.rows())


def test_retry_delay_doubles_up_to_the_maximum(outbox: Any) -> None:
    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(Redis()),
        producer="p",
        initial_backoff=0.5,
        max_backoff=3,
    )

    delays = [relay.retry_delay(attempts).total_seconds() for attempts in range(1, 6)]

    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert relay.retry_delay(5000).total_seconds() == 3.0


def test_a_relay_needs_a_positive_batch_size(outbox: Any) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        OutboxRelay(
            outbox.sessionmaker, outbox.model, EventPublisher(Redis()), producer="p", batch_size=0
        )


async def test_backlog_and_lag_gauges_follow_unsent_rows(
    outbox: Any, dead_redis: Redis, redis: Redis, producer: str
) -> None:
    await stage(outbox, 3, producer=producer)
    [oldest] = sorted(row.created_at for row in await outbox.rows())[:1]
    clock = FrozenClock(oldest + timedelta(seconds=42))
    failing = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(dead_redis),
        producer=producer,
        clock=clock,
        metrics_interval=0,
    )

    await failing.relay_once()

    assert sample("outbox_backlog", producer=producer) == 3
    assert sample("outbox_lag_seconds", producer=producer) == pytest.approx(42)

    healthy = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        clock=clock,
        metrics_interval=0,
    )
    clock.advance(60)
    await healthy.relay_once()

    assert sample("outbox_backlog", producer=producer) == 0
    assert sample("outbox_lag_seconds", producer=producer) == 0
    assert await healthy.refresh_metrics() == (0, 0.0)


async def test_gauges_are_refreshed_at_most_once_per_interval(
    outbox: Any, dead_redis: Redis, producer: str
) -> None:
    clock = FrozenClock(datetime.now(UTC) + timedelta(seconds=1))
    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(dead_redis),
        producer=producer,
        clock=clock,
        metrics_interval=5,
    )
    await relay.relay_once()
    assert sample("outbox_backlog", producer=producer) == 0
    await stage(outbox, 2, producer=producer)

    await relay.relay_once()
    assert sample("outbox_backlog", producer=producer) == 0

    clock.advance(5)
    await relay.relay_once()
    assert sample("outbox_backlog", producer=producer) == 2


async def test_require_subscribers_retries_an_event_nobody_received(
    outbox: Any, redis: Redis, prefix: str, producer: str
) -> None:
    [event_id] = await stage(outbox, 1, producer=producer)
    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis, channel_prefix=prefix),
        producer=producer,
        require_subscribers=True,
    )

    assert await relay.relay_once() == 0

    [row] = await outbox.rows()
    assert row.id == event_id
    assert row.sent_at is None
    assert row.attempts == 1
    assert "no subscriber" in (row.last_error or "")


async def test_two_concurrent_relays_never_publish_a_row_twice(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    ids = await stage(outbox, 300, producer=producer)
    inbox = Inbox()
    published_by: dict[str, list[str]] = {"a": [], "b": []}

    def relay(name: str) -> OutboxRelay[Any]:
        async def record(envelope: EventEnvelope) -> None:
            published_by[name].append(envelope.id)
            # Hand over to the other relay mid-batch, while this batch's rows stay locked.
            await asyncio.sleep(0)

        return OutboxRelay(
            outbox.sessionmaker,
            outbox.model,
            EventPublisher(redis, channel_prefix=prefix),
            producer=producer,
            batch_size=10,
            poll_interval=0.01,
            on_published=record,
        )

    relays = [relay("a"), relay("b")]
    async with EventSubscriber(
        redis, handler=inbox, patterns=[pattern_for(prefix=prefix)]
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        for each in relays:
            await each.start()
        try:
            await eventually(outbox.all_sent, within=30)
        finally:
            await asyncio.gather(*(each.stop() for each in relays))
        await eventually(lambda: len(inbox.ids) >= 300)

    assert Counter(inbox.ids).most_common(1)[0][1] == 1
    assert sorted(inbox.ids) == sorted(ids)
    assert published_by["a"]
    assert published_by["b"]
    assert not set(published_by["a"]) & set(published_by["b"])


async def test_purge_removes_only_rows_sent_long_enough_ago(
    outbox: Any, redis: Redis, producer: str
) -> None:
    ids = await stage(outbox, 3, producer=producer)
    now = datetime.now(UTC)
    async with outbox.sessionmaker.begin() as session:
        rows = {row.id: row for row in (await session.scalars(select(outbox.model))).all()}
        rows[ids[0]].sent_at = now - timedelta(days=8)
        rows[ids[1]].sent_at = now - timedelta(days=1)

    async with outbox.sessionmaker.begin() as session:
        purged = await purge_sent(session, outbox.model, older_than=timedelta(days=7), now=now)

    assert purged == 1
    assert sorted(row.id for row in await outbox.rows()) == sorted(ids[1:])


async def test_the_relay_loop_outlives_a_database_outage(
    redis: Redis, producer: str, eventually: Eventually
) -> None:
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
        connect_args={"timeout": 1},
    )
    relay = OutboxRelay(
        async_sessionmaker(engine),
        _SqliteOutbox,
        EventPublisher(redis),
        producer=producer,
        poll_interval=0.01,
        max_backoff=0.02,
    )

    def failed_passes(logs: list[Any]) -> list[Any]:
        return [entry for entry in logs if entry["event"] == "outbox_relay_pass_failed"]

    try:
        with capture_logs() as logs:
            await relay.start()
            with pytest.raises(RuntimeError, match="already started"):
                await relay.start()
            # Still looping after a failed pass: it tries again after its backoff.
            await eventually(lambda: len(failed_passes(logs)) >= 2)
            await relay.stop()
    finally:
        await engine.dispose()

    assert failed_passes(logs)[0]["producer"] == producer
    await relay.stop()


async def test_stop_cancels_a_batch_that_outlasts_the_grace_period(
    outbox: Any, redis: Redis, producer: str
) -> None:
    await stage(outbox, 1, producer=producer)
    entered = asyncio.Event()

    async def hangs(envelope: EventEnvelope) -> None:
        entered.set()
        await asyncio.Event().wait()

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        on_published=hangs,
    )
    await relay.start()
    await asyncio.wait_for(entered.wait(), 5)

    await relay.stop(grace_seconds=0.05)

    # The cancelled batch rolled back: the row is still there to be published again.
    assert await outbox.unsent() == 1


class _SqliteBase(DeclarativeBase):
    pass


class _SqliteOutbox(OutboxMixin, _SqliteBase):
    __tablename__ = "outbox"


async def test_the_relay_works_on_sqlite(
    tmp_path: Path, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}")
    async with engine.begin() as connection:
        await connection.run_sync(_SqliteBase.metadata.create_all)
    sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
        engine, expire_on_commit=False
    )
    try:
        async with sessionmaker.begin() as session:
            envelope = add_event(
                session, _SqliteOutbox, type="order.created", payload={"a": 1}, producer=producer
            )
        inbox = Inbox()
        relay = OutboxRelay(
            sessionmaker,
            _SqliteOutbox,
            EventPublisher(redis, channel_prefix=prefix),
            producer=producer,
            metrics_interval=0,
        )
        async with EventSubscriber(
            redis, handler=inbox, patterns=[pattern_for(prefix=prefix)]
        ) as subscriber:
            await asyncio.wait_for(subscriber.wait_connected(), 5)
            assert await relay.relay_once() == 1
            await eventually(lambda: len(inbox.ids) == 1)

        assert inbox.events == [envelope]
        async with sessionmaker() as session:
            row = await session.get(_SqliteOutbox, envelope.id)
        assert row is not None
        assert row.sent_at is not None
        assert row.sent_at.tzinfo is not None
        assert sample("outbox_backlog", producer=producer) == 0
    finally:
        await engine.dispose()
