"""What goes into tokens: scopes per role, access-token signing, opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from chassis.auth import SigningKey, sign_token
from users.settings import TokenSettings
from users.user.models import Role

USER_SCOPES = ("orders:read", "orders:write", "profile")
ADMIN_SCOPES = (*USER_SCOPES, "users:admin", "orders:admin")


def scopes_for_role(role: str) -> tuple[str, ...]:
    return ADMIN_SCOPES if role == Role.admin else USER_SCOPES


def sign_access_token(
    key: SigningKey,
    settings: TokenSettings,
    *,
    subject: str,
    scopes: Iterable[str],
    service: bool = False,
) -> str:
    """An RS256 access token; no personal data beyond the subject id."""
    return sign_token(
        key,
        subject=subject,
        issuer=settings.issuer,
        audience=settings.audience,
        scopes=scopes,
        kind="service" if service else "user",
        ttl_seconds=settings.access_ttl_seconds,
    )


def new_refresh_token() -> tuple[str, str]:
    """A new opaque refresh token and the hash stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    # A plain SHA-256 is enough: the token has 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
