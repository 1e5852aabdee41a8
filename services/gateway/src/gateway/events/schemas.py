"""What live-event clients receive: the event (SSE ``data:``) and the WebSocket messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from chassis.events import EventEnvelope


class LiveEvent(BaseModel):
    """One event about the caller (e.g. their order changed state)."""

    id: str = Field(description="Event id; the same event is never delivered twice.")
    type: str = Field(description="Dotted event type, e.g. `order.created`.")
    version: int = Field(description="Schema version of this type's payload.")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    payload: dict[str, Any] = Field(
        description="The event's data; for order events `{order, previous_status}`."
    )

    @classmethod
    def from_envelope(cls, envelope: EventEnvelope) -> LiveEvent:
        return cls(
            id=envelope.id,
            type=envelope.type,
            version=envelope.version,
            occurred_at=envelope.occurred_at,
            payload=envelope.payload,
        )


class EventMessage(BaseModel):
    """WebSocket message carrying an event."""

    type: Literal["event"] = "event"
    event: LiveEvent


class HeartbeatMessage(BaseModel):
    """WebSocket message sent when no event came for a while."""

    type: Literal["heartbeat"] = "heartbeat"
