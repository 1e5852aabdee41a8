"""``/api/v1/users``: the caller's profile and the admin listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chassis.openapi import auth_problems, problem_responses
from contracts.users import UserPage, UserRead, UserUpdate
from users.deps import PasswordsDep, ProfileOwner, SessionDep, UsersAdmin
from users.user import service

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    summary="The caller's profile",
    responses=problem_responses({**auth_problems(), 404: "The account no longer exists."}),
)
async def get_me(principal: ProfileOwner, session: SessionDep) -> UserRead:
    user = await service.get_user(session, user_id=principal.subject)
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    summary="Change the display name or the password (with the current password)",
    responses=problem_responses(
        {
            **auth_problems(),
            403: "The token lacks the scope, or the current password is wrong.",
            404: "The account no longer exists.",
            422: "Invalid body or a password the policy refuses.",
        }
    ),
)
async def update_me(
    body: UserUpdate, principal: ProfileOwner, session: SessionDep, passwords: PasswordsDep
) -> UserRead:
    user = await service.get_user(session, user_id=principal.subject)
    user = await service.update_user(session, user=user, changes=body, passwords=passwords)
    return UserRead.model_validate(user)


@router.get(
    "",
    summary="All users, oldest first (admins only)",
    responses=problem_responses({**auth_problems(), 422: "Invalid limit or cursor."}),
)
async def list_users(
    _: UsersAdmin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPage:
    return await service.list_users(session, limit=limit, cursor=cursor)
