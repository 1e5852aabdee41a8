"""Waking the relay: a commit that staged an event starts a pass at once."""

from __future__ import annotations

import asyncio
from typing import Any

from outbox_testing import Eventually, Inbox, stage
from redis.asyncio import Redis

from chassis.events import (
    EventPublisher,
    EventSubscriber,
    OutboxRelay,
    add_event,
    insert_event,
    pattern_for,
)


class CountingRelay(OutboxRelay[Any]):
    """Counts its passes, to tell a woken relay from a sleeping one."""

    passes = 0

    async def relay_once(self) -> int:
        self.passes += 1
        return await super().relay_once()


def idle_relay(outbox: Any, redis: Redis, prefix: str, producer: str, **options: Any) -> Any:
    # A poll interval far longer than any test: only a wake can start a second pass.
    return CountingRelay(
        outbox.sessionmaker,
        outbox.model,
        EventPublisher(redis, channel_prefix=prefix),
        producer=producer,
        poll_interval=600,
        **options,
    )


async def test_a_commit_that_staged_an_event_wakes_the_running_relay_at_once(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    inbox = Inbox()
    relay = idle_relay(outbox, redis, prefix, producer)
    async with EventSubscriber(
        redis, handler=inbox, patterns=[pattern_for(prefix=prefix)]
    ) as subscriber:
        await asyncio.wait_for(subscriber.wait_connected(), 5)
        await relay.start()
        try:
            await eventually(lambda: relay.passes == 1)
            staged: list[str] = []
            for _ in range(3):
                staged.extend(await stage(outbox, 2, producer=producer))
                expected = list(staged)
                # Long before the 600 s poll: the commit woke the relay.
                await eventually(lambda expected=expected: inbox.ids == expected, within=5)
        finally:
            await relay.stop()
    assert await outbox.unsent() == 0


async def test_a_commit_after_insert_event_wakes_the_relay_too(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    relay = idle_relay(outbox, redis, prefix, producer)
    await relay.start()
    try:
        await eventually(lambda: relay.passes == 1)
        async with outbox.sessionmaker.begin() as session:
            await insert_event(
                session, outbox.model, type="order.created", payload={}, producer=producer
            )
        await eventually(lambda: relay.passes == 2, within=5)
    finally:
        await relay.stop()
    assert await outbox.unsent() == 0


async def test_no_wake_for_a_rolled_back_event_or_with_wake_on_commit_off(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    woken = idle_relay(outbox, redis, prefix, producer)
    polling = idle_relay(outbox, redis, prefix, producer, wake_on_commit=False)
    await woken.start()
    await polling.start()
    try:
        await eventually(lambda: woken.passes == 1 and polling.passes == 1)
        async with outbox.sessionmaker() as session:
            add_event(session, outbox.model, type="order.created", payload={}, producer=producer)
            await session.rollback()
            # The same session commits again, with nothing staged any more.
            await session.commit()
        await asyncio.sleep(0.3)
        assert (woken.passes, polling.passes) == (1, 1)

        await stage(outbox, 1, producer=producer)
        await eventually(lambda: woken.passes == 2, within=5)
        await asyncio.sleep(0.3)
        assert polling.passes == 1
    finally:
        await woken.stop()
        await polling.stop()


async def test_wake_from_another_thread_starts_a_pass(
    outbox: Any, redis: Redis, prefix: str, producer: str, eventually: Eventually
) -> None:
    relay = idle_relay(outbox, redis, prefix, producer)
    relay.wake()  # not running: nothing to wake, and no error
    await relay.start()
    try:
        await eventually(lambda: relay.passes == 1)
        await asyncio.to_thread(relay.wake)
        await eventually(lambda: relay.passes == 2, within=5)
    finally:
        await relay.stop()
