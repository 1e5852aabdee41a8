"""A session ends on disconnect or drop; a real failure of the pump is not swallowed."""

from __future__ import annotations

import asyncio

import pytest

from chassis.events import EventEnvelope
from gateway.events.hub import EventHub
from gateway.events.session import run_session


async def never() -> None:
    await asyncio.Event().wait()


async def nothing(_: EventEnvelope | None = None) -> None:
    return None


async def test_a_write_to_a_gone_client_ends_the_session_as_a_disconnect() -> None:
    hub = EventHub()
    connection = hub.connect("alice", transport="sse")

    async def gone() -> None:
        raise ConnectionResetError

    ended = await run_session(
        connection,
        send_event=nothing,
        send_heartbeat=gone,
        wait_disconnect=never,
        heartbeat_seconds=0.01,
    )

    assert ended == "disconnected"


async def test_a_bug_in_the_pump_is_raised() -> None:
    hub = EventHub()
    connection = hub.connect("alice", transport="sse")

    async def broken() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await run_session(
            connection,
            send_event=nothing,
            send_heartbeat=broken,
            wait_disconnect=never,
            heartbeat_seconds=0.01,
        )


async def test_a_drop_interrupts_a_write_that_never_finishes() -> None:
    hub = EventHub(queue_size=1)
    connection = hub.connect("alice", transport="sse")
    writing = asyncio.Event()

    async def stuck(_: EventEnvelope) -> None:
        writing.set()
        await never()

    session = asyncio.create_task(
        run_session(
            connection,
            send_event=stuck,
            send_heartbeat=nothing,
            wait_disconnect=never,
            heartbeat_seconds=10,
        )
    )
    hub.dispatch(EventEnvelope.new(type="order.created", producer="orders", subject="alice"))
    await writing.wait()
    hub.drop(connection, "slow_consumer")

    assert await asyncio.wait_for(session, 1) == "dropped"
