"""Every table of the service on one `MetaData`, for Alembic (``migrations/env.py``)."""

from __future__ import annotations

from users.auth.models import RefreshToken
from users.database import Base
from users.keys.models import SigningKeyRecord
from users.user.models import User

metadata = Base.metadata

__all__ = ["RefreshToken", "SigningKeyRecord", "User", "metadata"]
