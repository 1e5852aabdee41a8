"""Opaque keyset cursors over (created_at, id), newest first.

A cursor is the URL-safe base64 of a small JSON object naming the last row a
page ended on; the next page continues strictly after it. Clients must treat
it as opaque. Anything that does not decode to that shape is refused with a
422 problem, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from chassis.errors import UnprocessableContent

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: Generous for the JSON of one timestamp and one UUID; longer input is refused unread.
MAX_CURSOR_LENGTH = 200


class InvalidCursor(UnprocessableContent):
    default_detail = "The cursor is invalid; use the next_cursor of a previous page."


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position after which the next page starts."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps(
            {"c": self.created_at.isoformat(), "i": str(self.id)}, separators=(",", ":")
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a cursor from a client; raise `InvalidCursor` on anything unexpected."""
        if not token or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            created_at = datetime.fromisoformat(data["c"])
            position = uuid.UUID(data["i"])
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
            raise InvalidCursor from None
        if created_at.tzinfo is None:
            raise InvalidCursor
        return cls(created_at=created_at, id=position)
