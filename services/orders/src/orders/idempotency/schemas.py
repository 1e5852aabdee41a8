"""What an idempotent call answers: the stored (or fresh) status and body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Response header set on an answer replayed from an earlier request with the same key.
REPLAYED_HEADER = "Idempotent-Replayed"
#: Request header carrying the client's key.
KEY_HEADER = "Idempotency-Key"
#: 1..255 printable ASCII characters (space included; HTTP trims the ends).
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer to give: `replayed` when it is the first request's, not this one's."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    def headers(self) -> dict[str, str]:
        return {REPLAYED_HEADER: "true"} if self.replayed else {}
