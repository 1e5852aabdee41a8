"""The fan-out hub on its own: routing by subject, bounded queues, drops and dedupe."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from chassis.events import EventEnvelope
from gateway.events.hub import EventHub, HubClosed, TooManyConnections


def event(subject: str | None, *, event_id: str | None = None) -> EventEnvelope:
    envelope = EventEnvelope.new(type="order.created", producer="orders", subject=subject)
    return envelope.model_copy(update={"id": event_id}) if event_id else envelope


def open_connections(transport: str) -> float:
    return REGISTRY.get_sample_value("live_event_connections", {"transport": transport}) or 0.0


async def test_an_event_reaches_every_connection_of_its_subject_and_no_other() -> None:
    hub = EventHub()
    alice_phone = hub.connect("alice", transport="sse")
    alice_laptop = hub.connect("alice", transport="websocket")
    bob = hub.connect("bob", transport="sse")

    sent = event("alice")
    delivered = hub.dispatch(sent)

    assert delivered == 2
    assert await alice_phone.next_event() == sent
    assert await alice_laptop.next_event() == sent
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await bob.next_event()


def test_events_without_a_subject_or_without_listeners_go_nowhere() -> None:
    hub = EventHub()
    hub.connect("alice", transport="sse")

    assert hub.dispatch(event(None)) == 0
    assert hub.dispatch(event("nobody")) == 0


def test_a_full_queue_drops_that_connection_only() -> None:
    hub = EventHub(queue_size=2)
    slow = hub.connect("alice", transport="sse")
    other = hub.connect("alice", transport="sse")
    for _ in range(2):
        hub.dispatch(event("alice"))
    other._queue.get_nowait()
    other._queue.get_nowait()

    delivered = hub.dispatch(event("alice"))

    assert delivered == 1
    assert slow.dropped.is_set()
    assert slow.drop_reason == "slow_consumer"
    assert not other.dropped.is_set()
    assert len(hub) == 1


def test_recent_event_ids_are_delivered_once_within_a_bounded_memory() -> None:
    hub = EventHub(dedupe_size=2, queue_size=10)
    connection = hub.connect("alice", transport="sse")

    counts = [hub.dispatch(event("alice", event_id=name)) for name in ("a", "a", "b", "c", "a")]

    # "a" was forgotten once two newer ids pushed it out of the window.
    assert counts == [1, 0, 1, 1, 1]
    assert connection._queue.qsize() == 4


def test_a_subject_may_hold_only_so_many_connections() -> None:
    hub = EventHub(max_connections_per_subject=2)
    first = hub.connect("alice", transport="sse")
    hub.connect("alice", transport="sse")

    with pytest.raises(TooManyConnections):
        hub.connect("alice", transport="sse")
    hub.disconnect(first)
    hub.connect("alice", transport="sse")


def test_disconnect_is_idempotent_and_keeps_the_gauge_right() -> None:
    hub = EventHub()
    before = open_connections("websocket")
    connection = hub.connect("alice", transport="websocket")
    assert open_connections("websocket") == before + 1

    hub.drop(connection, "slow_consumer")
    hub.disconnect(connection)
    hub.disconnect(connection)

    assert open_connections("websocket") == before
    assert len(hub) == 0


def test_closing_drops_everyone_and_refuses_newcomers() -> None:
    hub = EventHub()
    connections = [hub.connect(subject, transport="sse") for subject in ("alice", "bob")]

    hub.close_all()

    assert all(c.dropped.is_set() and c.drop_reason == "shutdown" for c in connections)
    with pytest.raises(HubClosed):
        hub.connect("carol", transport="sse")


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        EventHub(queue_size=0)


async def test_the_subscriber_handler_dispatches() -> None:
    hub = EventHub()
    connection = hub.connect("alice", transport="sse")
    sent = event("alice")

    await hub.handle(sent)

    assert await connection.next_event() == sent
