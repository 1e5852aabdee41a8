"""The ``outbox`` table: events staged in the same transaction as the order they describe."""

from __future__ import annotations

from chassis.events import OutboxMixin
from orders.database import Base


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"
