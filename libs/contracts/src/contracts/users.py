"""Wire shapes of the user API, with the password policy its sign-up body enforces.

The policy: length 12 to 128 characters; at least two kinds of characters among
lower-case, upper-case, digits and everything else; never the account's own email
address. It lives here, beside the bodies that check it, so a client validates a
new password exactly as the service does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


def _kind(char: str) -> str:
    if char.islower():
        return "lower"
    if char.isupper():
        return "upper"
    if char.isdigit():
        return "digit"
    return "other"


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """What is wrong with `password` (empty when it passes)."""
    problems: list[str] = []
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        problems.append(f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long")
    if len({_kind(char) for char in password}) < 2:
        problems.append(
            "must mix at least two kinds of characters (lower-case, upper-case, digits, others)"
        )
    if email and password.strip().lower() == email.strip().lower():
        problems.append("must not be the email address")
    return problems


DISPLAY_NAME_MAX_LENGTH = 100
#: Longest email a login form accepts (RFC 5321 paths are shorter still).
EMAIL_FIELD_MAX_LENGTH = 320


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def normalise_email(email: str) -> str:
    """The stored form of an address: trimmed and entirely lower-case.

    The local part is lower-cased too: RFC 5321 lets servers treat it as case
    sensitive, but almost none do, and two accounts differing only in case
    would be a support and phishing problem.
    """
    return email.strip().lower()


NormalisedEmail = Annotated[EmailStr, BeforeValidator(_strip)]
DisplayName = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH)
]
NewPassword = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]


def check_password(password: str, *, email: str | None) -> str:
    problems = password_problems(password, email=email)
    if problems:
        raise PydanticCustomError(
            "password_policy", "Password {problems}.", {"problems": "; ".join(problems)}
        )
    return password


class UserCreate(BaseModel):
    """Sign-up: the email is normalised (see `normalise_email`) and must be unused."""

    model_config = ConfigDict(extra="forbid")

    email: NormalisedEmail
    password: NewPassword = Field(
        description=(
            f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, at least two kinds "
            "(lower-case, upper-case, digits, others), not the email address."
        )
    )
    display_name: DisplayName | None = None

    @field_validator("email")
    @classmethod
    def _normalise(cls, email: str) -> str:
        return normalise_email(email)

    @field_validator("password")
    @classmethod
    def _policy(cls, password: str, info: ValidationInfo) -> str:
        return check_password(password, email=info.data.get("email"))


class UserUpdate(BaseModel):
    """Profile changes; a new password needs the current one."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = Field(
        default=None, description="A new display name; null clears it."
    )
    password: NewPassword | None = None
    current_password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)

    @model_validator(mode="after")
    def _password_needs_current(self) -> UserUpdate:
        if self.password is not None and not self.current_password:
            raise PydanticCustomError(
                "current_password_required", "current_password is required to change password."
            )
        return self


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    role: Literal["user", "admin"]
    created_at: datetime


class UserPage(BaseModel):
    """One page of users; pass `next_cursor` back as `cursor` for the next one."""

    items: list[UserRead]
    next_cursor: str | None = None
