"""Fulfilment, owned by orders (ADR 0019): which orders get fulfilled, and what a report means.

Two rules live here, next to the state table they rely on:

- `fulfilment_job_for`: a created order gets fulfilled. The outbox relay asks
  it about every event it has published and enqueues what it answers, under a
  deterministic job id, so an event relayed twice still yields one job.
- `FULFILMENT_RESULTS`: what the worker's payment outcome makes of the order.
  `orders.order.service.record_fulfilment` applies it (pending, then confirmed,
  then the final state) in one transaction with its events.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from chassis.events import EventEnvelope
from chassis.jobs import job_id_for
from contracts.events import ORDER_CREATED
from contracts.jobs import FULFIL_ORDER
from contracts.orders import OrderStatus, PaymentOutcome

PAYMENT_DECLINED_REASON = "payment_declined"


@dataclass(frozen=True, slots=True)
class FulfilmentResult:
    """The final state a payment outcome leads to, and the reason recorded with it."""

    status: OrderStatus
    reason: str | None


FULFILMENT_RESULTS: MappingProxyType[PaymentOutcome, FulfilmentResult] = MappingProxyType(
    {
        PaymentOutcome.paid: FulfilmentResult(OrderStatus.fulfilled, None),
        PaymentOutcome.declined: FulfilmentResult(OrderStatus.failed, PAYMENT_DECLINED_REASON),
    }
)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job to enqueue: its name, its arguments and the id that makes it unique."""

    name: str
    args: tuple[str, ...]
    job_id: str


def fulfilment_job_for(envelope: EventEnvelope) -> JobRequest | None:
    """The job a published event starts: ``orders.fulfil(order_id)`` for a created order."""
    if envelope.type != ORDER_CREATED:
        return None
    order_id = str(envelope.payload["order"]["id"])
    return JobRequest(FULFIL_ORDER, (order_id,), job_id_for(FULFIL_ORDER, order_id))
