"""The relay's published hooks: their trace, their failures, how many run at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from outbox_testing import stage
from redis.asyncio import Redis

from chassis.events import (
    EventEnvelope,
    EventPublisher,
    OutboxRelay,
)
from chassis.tracing.propagation import inject_trace_context


async def test_the_hook_runs_under_the_trace_of_the_request_that_staged_the_event(
    outbox: Any, redis: Redis, producer: str, span_exporter: Any
) -> None:
    parent = SpanContext(
        trace_id=uuid.uuid4().int >> 1,
        span_id=uuid.uuid4().int >> 65,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        await stage(outbox, 1, producer=producer)
    finally:
        otel_context.detach(token)
    carried: list[dict[str, str]] = []

    async def enqueue_job(envelope: EventEnvelope) -> None:
        carried.append(inject_trace_context())

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        on_published=enqueue_job,
    )
    assert await relay.relay_once() == 1

    trace_id = format(parent.trace_id, "032x")
    assert carried[0]["traceparent"].split("-")[1] == trace_id
    [span] = [s for s in span_exporter.get_finished_spans() if s.name == "order.created publish"]
    assert span.kind is SpanKind.PRODUCER
    assert span.context.trace_id == parent.trace_id
    assert span.parent is not None
    assert span.parent.span_id == parent.span_id


async def test_a_failing_hook_leaves_the_row_unsent_for_a_retry(
    outbox: Any, redis: Redis, producer: str
) -> None:
    await stage(outbox, 1, producer=producer)

    async def enqueue_fails(envelope: EventEnvelope) -> None:
        raise RuntimeError("queue unavailable")

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        on_published=enqueue_fails,
    )

    assert await relay.relay_once() == 0

    [row] = await outbox.rows()
    assert row.sent_at is None
    assert row.last_error == "RuntimeError: queue unavailable"


async def test_hooks_run_side_by_side_up_to_the_limit_in_claim_order(
    outbox: Any, redis: Redis, producer: str
) -> None:
    """Under load every await waits a turn of the busy event loop: one hook after another
    (an arq job is three round trips) left the relay far behind the commits."""
    ids = await stage(outbox, 12, producer=producer)
    started: list[str] = []
    running = 0
    most = 0
    release = asyncio.Event()

    async def slow_hook(envelope: EventEnvelope) -> None:
        nonlocal running, most
        started.append(envelope.id)
        running += 1
        most = max(most, running)
        if running == 4:
            release.set()
        await release.wait()
        await asyncio.sleep(0.01)
        running -= 1

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        on_published=slow_hook,
        hook_concurrency=4,
    )
    assert await asyncio.wait_for(relay.relay_once(), 10) == 12

    assert most == 4
    assert started == ids
    assert all(row.sent_at is not None for row in await outbox.rows())


async def test_a_hook_failing_mid_batch_leaves_that_row_and_the_later_ones_unsent(
    outbox: Any, redis: Redis, producer: str
) -> None:
    ids = await stage(outbox, 6, producer=producer)
    hooked: list[str] = []

    async def third_fails(envelope: EventEnvelope) -> None:
        hooked.append(envelope.id)
        if envelope.id == ids[2]:
            raise RuntimeError("queue unavailable")

    relay = OutboxRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis),
        producer=producer,
        on_published=third_fails,
    )
    assert await relay.relay_once() == 2

    rows = {row.id: row for row in await outbox.rows()}
    assert [rows[i].sent_at is not None for i in ids] == [True, True] + [False] * 4
    assert rows[ids[2]].attempts == 1
    assert rows[ids[2]].last_error == "RuntimeError: queue unavailable"
    # The later events went out with the batch; they stay unsent, to be sent again in order.
    assert [rows[i].attempts for i in ids[3:]] == [0, 0, 0]
    assert sorted(hooked) == sorted(ids)


def test_a_relay_needs_at_least_one_hook_slot(outbox: Any) -> None:
    with pytest.raises(ValueError, match="hook_concurrency"):
        OutboxRelay(
            outbox.sessionmaker,
            outbox.model,
            EventPublisher(Redis()),
            producer="orders",
            hook_concurrency=0,
        )
