"""Sign-up, login, refresh-token rotation, logout and the client-credentials grant.

Failures that could tell an attacker something all look the same: one 401
for a wrong email or a wrong password (after the same argon2 work), one for
any unusable refresh token, one for any bad client credential.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import utc_now
from chassis.errors import BadRequest, Unauthorized
from contracts.auth import ServiceToken, TokenPair
from contracts.users import UserCreate, normalise_email
from users.auth import repository
from users.auth.models import RefreshToken
from users.auth.passwords import Passwords
from users.auth.throttle import LoginThrottle
from users.auth.tokens import (
    hash_refresh_token,
    new_refresh_token,
    scopes_for_role,
    sign_access_token,
)
from users.keys.store import KeyStore
from users.settings import ServiceClient, TokenSettings
from users.user import repository as user_repository
from users.user import service as user_service
from users.user.models import Role, User

logger = structlog.get_logger("users.auth")

INVALID_LOGIN = "Invalid email or password."
INVALID_REFRESH = "The refresh token is invalid or expired."
INVALID_CLIENT = "Invalid client credentials."
CLIENT_CREDENTIALS = "client_credentials"
# Compared against when the client id is unknown, so that both failures cost the same.
_NO_CLIENT_SECRET = secrets.token_urlsafe(32)


def _login_refused() -> Unauthorized:
    return Unauthorized(INVALID_LOGIN, headers={"WWW-Authenticate": "Bearer"})


def refresh_refused() -> Unauthorized:
    """The one answer to any unusable refresh token."""
    return Unauthorized(INVALID_REFRESH, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class ReusedRefreshToken:
    """A refresh token used a second time: refused, and its whole family revoked.

    Returned, not raised: the revocation is this request's work and must be
    committed with it, and the session dependency rolls back what raises.
    """

    family_id: uuid.UUID


async def sign_up(
    session: AsyncSession,
    *,
    body: UserCreate,
    passwords: Passwords,
    admin_emails: list[str],
) -> User:
    """Create an account; emails listed in ``admin_emails`` get the admin role."""
    # Checked before hashing so that a duplicate costs no argon2 work.
    if await user_repository.get_user_by_email(session, body.email) is not None:
        raise user_service.duplicate_email()
    role = Role.admin if body.email in admin_emails else Role.user
    return await user_service.create_user(
        session,
        email=body.email,
        password_hash=await passwords.hash(body.password),
        display_name=body.display_name,
        role=role,
    )


async def log_in(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    passwords: Passwords,
    throttle: LoginThrottle,
    key_store: KeyStore,
    tokens: TokenSettings,
) -> TokenPair:
    """A token pair for the right email and password; one generic 401 otherwise.

    The account's attempt is counted before anything is looked up or verified,
    so a throttled account is refused (429) whatever the password.
    """
    email = normalise_email(email)
    await throttle.check(email)
    user = await user_repository.get_user_by_email(session, email)
    if user is None:
        await passwords.verify_dummy(password)
        logger.info("login_failed", reason="unknown_email")
        raise _login_refused()
    if not await passwords.verify(user.password_hash, password):
        logger.info("login_failed", reason="wrong_password", user_id=str(user.id))
        raise _login_refused()
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
        logger.info("password_rehashed", user_id=str(user.id))
    logger.info("login_succeeded", user_id=str(user.id))
    return await _issue_pair(
        session,
        user=user,
        family_id=uuid.uuid4(),
        parent_id=None,
        key_store=key_store,
        tokens=tokens,
    )


async def refresh(
    session: AsyncSession,
    *,
    refresh_token: str,
    key_store: KeyStore,
    tokens: TokenSettings,
) -> TokenPair | ReusedRefreshToken:
    """Exchange a refresh token for a new pair; a reused token revokes its whole family."""
    now = utc_now()
    stored = await repository.get_by_hash(session, hash_refresh_token(refresh_token))
    if stored is None or stored.revoked_at is not None:
        raise refresh_refused()
    if stored.rotated_at is not None:
        return await _revoke_reused_family(session, stored)
    if stored.expires_at <= now:
        raise refresh_refused()
    if not await repository.mark_rotated(session, stored.id, now=now):
        # A concurrent refresh with the same token won: one of the two is a replay.
        return await _revoke_reused_family(session, stored)
    user = await user_repository.get_user(session, stored.user_id)
    if user is None:
        raise refresh_refused()
    return await _issue_pair(
        session,
        user=user,
        family_id=stored.family_id,
        parent_id=stored.id,
        key_store=key_store,
        tokens=tokens,
    )


async def _revoke_reused_family(session: AsyncSession, stored: RefreshToken) -> ReusedRefreshToken:
    """Revoke the family in this request's unit of work.

    Nothing else is staged by then, and the row lock a lost `mark_rotated`
    race leaves is this session's own, so the revocation waits for no one.
    """
    await repository.revoke_family(session, stored.family_id, now=utc_now())
    logger.warning(
        "refresh_token_reuse_detected", family_id=str(stored.family_id), user_id=str(stored.user_id)
    )
    return ReusedRefreshToken(family_id=stored.family_id)


async def log_out(session: AsyncSession, *, refresh_token: str) -> None:
    """Revoke the token's family; unknown or already revoked tokens are fine too."""
    stored = await repository.get_by_hash(session, hash_refresh_token(refresh_token))
    if stored is not None and stored.revoked_at is None:
        await repository.revoke_family(session, stored.family_id, now=utc_now())
        logger.info("logged_out", user_id=str(stored.user_id), family_id=str(stored.family_id))


async def _issue_pair(
    session: AsyncSession,
    *,
    user: User,
    family_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    key_store: KeyStore,
    tokens: TokenSettings,
) -> TokenPair:
    now = utc_now()
    token, token_hash = new_refresh_token()
    await repository.add_refresh_token(
        session,
        RefreshToken(
            id=uuid.uuid4(),
            token_hash=token_hash,
            user_id=user.id,
            family_id=family_id,
            parent_id=parent_id,
            created_at=now,
            expires_at=now + timedelta(seconds=tokens.refresh_ttl_seconds),
        ),
    )
    access_token = sign_access_token(
        await key_store.signing_key(),
        tokens,
        subject=str(user.id),
        scopes=scopes_for_role(user.role),
    )
    return TokenPair(
        access_token=access_token, refresh_token=token, expires_in=tokens.access_ttl_seconds
    )


async def grant_client_credentials(
    *,
    grant_type: str,
    client_id: str,
    client_secret: str,
    scope: str | None,
    clients: Mapping[str, ServiceClient],
    key_store: KeyStore,
    tokens: TokenSettings,
) -> ServiceToken:
    """A service token (``kind=service``, ``sub=service:<client_id>``) for a known client."""
    if grant_type != CLIENT_CREDENTIALS:
        raise BadRequest(
            "Unsupported grant_type; use client_credentials.",
            extra={"error": "unsupported_grant_type"},
        )
    client = clients.get(client_id)
    expected = client.secret.get_secret_value() if client is not None else _NO_CLIENT_SECRET
    matches = hmac.compare_digest(expected.encode(), client_secret.encode())
    if client is None or not matches:
        logger.info("client_credentials_refused", client_known=client is not None)
        raise Unauthorized(INVALID_CLIENT, headers={"WWW-Authenticate": "Bearer"})
    requested = scope.split() if scope else list(client.scopes)
    if not set(requested) <= set(client.scopes):
        raise BadRequest(
            "The requested scope exceeds the client's scopes.", extra={"error": "invalid_scope"}
        )
    access_token = sign_access_token(
        await key_store.signing_key(),
        tokens,
        subject=f"service:{client_id}",
        scopes=requested,
        service=True,
    )
    logger.info("service_token_issued", client_id=client_id)
    return ServiceToken(
        access_token=access_token,
        expires_in=tokens.access_ttl_seconds,
        scope=" ".join(dict.fromkeys(requested)),
    )
