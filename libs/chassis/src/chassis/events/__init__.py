"""Events: a versioned envelope, Redis pub/sub, and a transactional outbox with its relay."""

from chassis.events.envelope import EventEnvelope, MalformedEventError
from chassis.events.outbox import (
    NoSubscribersError,
    OutboxMixin,
    OutboxRelay,
    add_event,
    envelope_from_row,
    insert_event,
    purge_sent,
)
from chassis.events.pubsub import (
    EventHandler,
    EventPublisher,
    EventSubscriber,
    channel_for,
    pattern_for,
    replay_stream_for,
)

__all__ = [
    "EventEnvelope",
    "EventHandler",
    "EventPublisher",
    "EventSubscriber",
    "MalformedEventError",
    "NoSubscribersError",
    "OutboxMixin",
    "OutboxRelay",
    "add_event",
    "channel_for",
    "envelope_from_row",
    "insert_event",
    "pattern_for",
    "purge_sent",
    "replay_stream_for",
]
