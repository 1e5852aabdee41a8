"""The password policy on its own (the schemas check length first)."""

from __future__ import annotations

import pytest

from contracts.users import password_problems


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("Correct horse 1", []),
        ("ünïcödé wörds 42", []),
        ("Ab1", ["must be 12 to 128 characters long"]),
        ("aaaaaaaaaaaaa", ["must mix at least two kinds of characters"]),
        (" Me@Example.com", ["must not be the email address"]),
    ],
)
def test_password_problems(password: str, problems: list[str]) -> None:
    found = password_problems(password, email="me@example.com")

    assert len(found) == len(problems)
    for problem, expected in zip(found, problems, strict=True):
        assert problem.startswith(expected)
