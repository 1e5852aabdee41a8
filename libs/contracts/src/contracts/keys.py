"""The JWKS document (RFC 7517) that users serves and every verifier reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class JsonWebKeySet(BaseModel):
    """Public keys that verify this service's tokens, each named by its ``kid``."""

    keys: list[dict[str, Any]]
