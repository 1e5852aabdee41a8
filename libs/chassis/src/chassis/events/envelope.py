"""The versioned JSON envelope every event travels in.

On the wire (UTF-8 JSON, one object per message)::

    {
      "id": "5b0d6c9e-...",            uuid4; consumers dedupe on it
      "type": "order.created",         dotted, lower case: <aggregate>.<what happened>
      "version": 1,                    schema version of this type's payload
      "occurred_at": "2025-...Z",      aware UTC time the fact became true
      "producer": "orders",            service that produced it
      "subject": "42",                 optional routing key (e.g. the owner to notify)
      "trace": {"traceparent": "..."}, W3C trace context of the producing request
      "payload": {...}                 the event's data, shaped by type + version
    }

Unknown fields are ignored so that producers can add fields before every
consumer knows them; a breaking payload change bumps ``version`` instead.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal, Self

from opentelemetry.trace import Span, SpanKind, Tracer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from chassis.tracing.propagation import extract_trace_context, inject_trace_context

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class MalformedEventError(ValueError):
    """Bytes that are not a valid envelope; a subscriber logs and skips them."""


def _new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """One event: identity, type and version, time, producer, trace context and payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=200)
    version: int = Field(default=1, ge=1)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: str = Field(min_length=1, max_length=100)
    subject: str | None = Field(default=None, max_length=200)
    trace: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def new(
        cls,
        *,
        type: str,
        producer: str,
        payload: dict[str, Any] | None = None,
        subject: str | None = None,
        version: int = 1,
    ) -> Self:
        """A fresh event now, carrying the trace context of the active span (if any)."""
        return cls(
            type=type,
            producer=producer,
            payload=payload or {},
            subject=subject,
            version=version,
            trace=inject_trace_context(),
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Parse one message; anything that is not a valid envelope raises `MalformedEventError`."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise MalformedEventError(f"not an event envelope: {problems}") from None


def event_span(
    tracer: Tracer, envelope: EventEnvelope, *, operation: Literal["send", "process"], **kwargs: Any
) -> AbstractContextManager[Span]:
    """A PRODUCER (send) or CONSUMER (process) span under the trace the event carries.

    Publishing and handling both continue the trace of the request that caused
    the event, so one trace id links the request, the relay and every consumer.
    """
    return tracer.start_as_current_span(**_event_span_arguments(envelope, operation), **kwargs)


def start_event_span(
    tracer: Tracer, envelope: EventEnvelope, *, operation: Literal["send", "process"]
) -> Span:
    """`event_span`, started but not made current: one per event of a batch sent at once."""
    return tracer.start_span(**_event_span_arguments(envelope, operation))


def _event_span_arguments(
    envelope: EventEnvelope, operation: Literal["send", "process"]
) -> dict[str, Any]:
    return {
        "name": f"{envelope.type} {'publish' if operation == 'send' else 'process'}",
        "context": extract_trace_context(envelope.trace),
        "kind": SpanKind.PRODUCER if operation == "send" else SpanKind.CONSUMER,
        "attributes": {
            "messaging.system": "redis",
            "messaging.operation.type": operation,
            "messaging.message.id": envelope.id,
            "messaging.destination.name": envelope.type,
        },
    }
