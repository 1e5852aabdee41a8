"""The ``users`` table."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from chassis.database import TimestampMixin
from users.database import Base

EMAIL_MAX_LENGTH = 320
DISPLAY_NAME_MAX_LENGTH = 100


class Role(StrEnum):
    user = "user"
    admin = "admin"


class User(TimestampMixin, Base):
    __tablename__ = "users"
    # Keyset pagination of the admin listing walks this index.
    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    #: Normalised (trimmed, lower-cased) by the schemas before it gets here.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    role: Mapped[str] = mapped_column(String(16), default=Role.user.value)
