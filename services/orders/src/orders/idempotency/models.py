"""The ``idempotency_keys`` table: the first answer to a keyed create, per user and key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chassis.database import UTCDateTime
from orders.database import Base

KEY_LENGTH = 255
#: The `status_code` of every row: only a create that succeeded is stored. Routers choose
#: the status they answer; the column stays so that the table keeps its shape.
CREATED = 201


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    # Scoped per user; the constraint is what stops concurrent duplicates.
    __table_args__ = (UniqueConstraint("owner_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
