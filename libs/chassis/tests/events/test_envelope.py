from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry import trace
from pydantic import ValidationError

from chassis.events import EventEnvelope, MalformedEventError


def test_envelope_round_trips_through_json() -> None:
    envelope = EventEnvelope.new(
        type="order.created",
        producer="orders",
        payload={"order_id": 7, "items": [{"sku": "a", "qty": 2}]},
        subject="user-1",
        version=2,
    )

    decoded = EventEnvelope.from_json(envelope.to_json())

    assert decoded == envelope
    assert uuid.UUID(decoded.id).version == 4
    assert decoded.occurred_at.tzinfo is not None


def test_wire_format_names_every_field() -> None:
    envelope = EventEnvelope.new(type="order.created", producer="orders", payload={"a": 1})

    wire = json.loads(envelope.to_json())

    assert set(wire) == {
        "id",
        "type",
        "version",
        "occurred_at",
        "producer",
        "subject",
        "trace",
        "payload",
    }
    assert wire["version"] == 1
    assert wire["occurred_at"].endswith("Z")


def test_envelope_is_immutable() -> None:
    envelope = EventEnvelope.new(type="order.created", producer="orders")

    with pytest.raises(ValidationError):
        envelope.type = "order.deleted"  # type: ignore[misc]


def test_occurred_at_is_stored_in_utc() -> None:
    local = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    envelope = EventEnvelope(type="order.created", producer="orders", occurred_at=local)

    assert envelope.occurred_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert envelope.occurred_at.utcoffset() == timedelta(0)


def test_new_envelope_captures_the_active_trace_context(span_exporter: Any) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        envelope = EventEnvelope.new(type="order.created", producer="orders")
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")

    assert envelope.trace["traceparent"].split("-")[1:3] == [trace_id, span_id]


def test_new_envelope_outside_a_span_carries_no_trace() -> None:
    assert EventEnvelope.new(type="order.created", producer="orders").trace == {}


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    wire = json.loads(EventEnvelope.new(type="order.created", producer="orders").to_json())
    wire["added_later"] = {"x": 1}

    decoded = EventEnvelope.from_json(json.dumps(wire))

    assert decoded.id == wire["id"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json at all", "<root>"),
        (b"[1, 2]", "<root>"),
        (b"{}", "type"),
        (
            b'{"type": "Order Created!", "producer": "orders"}',
            "type",
        ),
        (
            b'{"type": "order.created", "producer": "orders", "occurred_at": "2025-01-01"}',
            "occurred_at",
        ),
        (
            b'{"type": "order.created", "producer": "orders", "payload": "nope"}',
            "payload",
        ),
    ],
)
def test_malformed_input_raises_a_clear_error(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedEventError, match="not an event envelope") as caught:
        EventEnvelope.from_json(data)

    assert problem in str(caught.value)
    assert isinstance(caught.value, ValueError)
