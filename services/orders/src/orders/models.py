"""Every table of the orders service, gathered for Alembic (``migrations/env.py``)."""

from __future__ import annotations

from orders.database import Base
from orders.idempotency.models import IdempotencyKey
from orders.order.models import Order, OrderItemRow
from orders.outbox.models import OutboxEvent

metadata = Base.metadata

__all__ = ["IdempotencyKey", "Order", "OrderItemRow", "OutboxEvent", "metadata"]
