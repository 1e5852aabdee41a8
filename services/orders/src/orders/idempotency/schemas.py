"""The HTTP side of idempotency keys: the header names and the key's shape."""

from __future__ import annotations

#: Response header set on an answer replayed from an earlier request with the same key.
REPLAYED_HEADER = "Idempotent-Replayed"
#: Request header carrying the client's key.
KEY_HEADER = "Idempotency-Key"
#: 1..255 printable ASCII characters (space included; HTTP trims the ends).
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
