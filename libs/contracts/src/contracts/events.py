"""The events orders announces, their payload and its version.

Each event travels in the chassis' versioned envelope; ``type`` says which one and
``version`` the shape of ``payload``. A breaking payload change bumps
`ORDER_EVENT_VERSION` and keeps the old shape readable while consumers move.
"""

from __future__ import annotations

from types import MappingProxyType

from pydantic import BaseModel, Field

from contracts.orders import OrderRead, OrderStatus

#: The payload version of every ``order.*`` event below.
ORDER_EVENT_VERSION = 1

ORDER_CREATED = "order.created"
ORDER_CONFIRMED = "order.confirmed"
ORDER_FULFILLED = "order.fulfilled"
ORDER_FAILED = "order.failed"
ORDER_CANCELLED = "order.cancelled"

#: The event each status is announced with; a new order is "created", not "pending".
EVENT_TYPES: MappingProxyType[OrderStatus, str] = MappingProxyType(
    {
        OrderStatus.pending: ORDER_CREATED,
        OrderStatus.confirmed: ORDER_CONFIRMED,
        OrderStatus.fulfilled: ORDER_FULFILLED,
        OrderStatus.failed: ORDER_FAILED,
        OrderStatus.cancelled: ORDER_CANCELLED,
    }
)


class OrderEventPayload(BaseModel):
    """The payload of every ``order.*`` event (version `ORDER_EVENT_VERSION`)."""

    order: OrderRead = Field(description="The order as it is after the change.")
    previous_status: OrderStatus | None = Field(
        default=None, description="Its status before the change; null for `order.created`."
    )
