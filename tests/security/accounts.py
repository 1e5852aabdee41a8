"""Accounts for the security suite, made synchronously (module-scoped fixtures have no loop)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.accounts import PASSWORD


def sign_up_and_log_in_sync(gateway: str, name: str, *, email: str | None = None) -> dict[str, Any]:
    """A new account through the gateway: its email, user record and login tokens."""
    email = email or f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=gateway, timeout=10) as client:
        signup = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"email": email, "user": signup.json(), **login.json()}
