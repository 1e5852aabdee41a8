"""The ``signing_keys`` table: the active signing key and the recently retired ones.

The active key has ``retired_at`` NULL (at most one per algorithm, by a partial
unique index). A retired key loses its private part and stays published in the
JWKS until the tokens it signed have expired, then it is deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from chassis.database import UTCDateTime, utc_now
from users.database import Base


class SigningKeyRecord(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        Index(
            "ix_signing_keys_one_active",
            "algorithm",
            unique=True,
            postgresql_where=text("retired_at IS NULL"),
            sqlite_where=text("retired_at IS NULL"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    #: Generated keys only (PKCS#8 PEM); NULL for a key held in a secret and once retired.
    private_pem: Mapped[str | None] = mapped_column(Text())
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
