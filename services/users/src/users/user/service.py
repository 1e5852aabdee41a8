"""User accounts: create, read, change and list them."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import utc_now
from chassis.errors import Conflict, Forbidden, NotFound, UnprocessableContent
from contracts.users import UserPage, UserRead, UserUpdate, password_problems
from users.auth import repository as token_repository
from users.auth.passwords import Passwords
from users.user import repository
from users.user.models import Role, User

logger = structlog.get_logger("users.user")

DUPLICATE_EMAIL_DETAIL = "An account with this email already exists."


def duplicate_email() -> Conflict:
    return Conflict(DUPLICATE_EMAIL_DETAIL)


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    display_name: str | None,
    role: Role,
) -> User:
    """Add a user; 409 if the (normalised) email is taken."""
    if await repository.get_user_by_email(session, email) is not None:
        raise duplicate_email()
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        role=role.value,
    )
    try:
        await repository.add_user(session, user)
    except IntegrityError:
        # A concurrent sign-up with the same email got in between our check and insert.
        raise duplicate_email() from None
    logger.info("user_created", user_id=str(user.id), role=user.role)
    return user


async def get_user(session: AsyncSession, *, user_id: str) -> User:
    """The user named by a token subject; 404 if there is none."""
    try:
        parsed = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("No such user.") from None
    user = await repository.get_user(session, parsed)
    if user is None:
        raise NotFound("No such user.")
    return user


async def update_user(
    session: AsyncSession, *, user: User, changes: UserUpdate, passwords: Passwords
) -> User:
    """Apply a profile change; a new password needs the current one and ends other sessions."""
    if "display_name" in changes.model_fields_set:
        user.display_name = changes.display_name
    if changes.password is not None:
        current = changes.current_password or ""
        if not await passwords.verify(user.password_hash, current):
            raise Forbidden("The current password is wrong.")
        problems = password_problems(changes.password, email=user.email)
        if problems:
            raise UnprocessableContent(
                "The request is invalid; see errors.",
                extra={
                    "errors": [
                        {
                            "loc": ["body", "password"],
                            "msg": f"Password {'; '.join(problems)}.",
                            "type": "password_policy",
                        }
                    ]
                },
            )
        user.password_hash = await passwords.hash(changes.password)
        # Whoever holds a refresh token from before the change must log in again.
        await token_repository.revoke_user_tokens(session, user.id, now=utc_now())
        logger.info("password_changed", user_id=str(user.id))
    await session.flush()
    return user


def encode_cursor(user: User) -> str:
    raw = json.dumps([user.created_at.isoformat(), str(user.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, user_id = json.loads(raw)
        position = (datetime.fromisoformat(created_at), uuid.UUID(user_id))
    except (binascii.Error, ValueError, TypeError):
        raise UnprocessableContent("The cursor is invalid.") from None
    if position[0].tzinfo is None:
        raise UnprocessableContent("The cursor is invalid.")
    return position


async def list_users(session: AsyncSession, *, limit: int, cursor: str | None) -> UserPage:
    """One page of users, oldest first; `next_cursor` is None on the last page."""
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_users_page(session, limit=limit + 1, after=after)
    items = list(rows[:limit])
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    return UserPage(
        items=[UserRead.model_validate(user) for user in items], next_cursor=next_cursor
    )
