"""Tables of an order: ``orders`` and its lines in ``order_items``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chassis.database import UTCDateTime
from orders.database import Base

STATUS_LENGTH = 16
REASON_LENGTH = 200


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'fulfilled', 'failed', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("version >= 1", name="version_positive"),
        # Keyset pagination: one user's orders, newest first; everyone's for admins.
        Index("ix_orders_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_orders_created_at_id", "created_at", "id"),
        # expire-pending scans pending orders by age.
        Index("ix_orders_status_created_at", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    status_reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    items: Mapped[list[OrderItemRow]] = relationship(
        back_populates="order",
        lazy="raise",
        order_by="OrderItemRow.position",
        cascade="all, delete-orphan",
    )


class OrderItemRow(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "position"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="items", lazy="raise")
