"""The password policy, as plain functions the schemas and services share.

Length 12 to 128 characters; at least two kinds of characters among lower-case,
upper-case, digits and everything else; never the account's own email address.
"""

from __future__ import annotations

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
