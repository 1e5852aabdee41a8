"""Client-side steps every cross-service suite repeats: an account, its tokens, its events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
ORDER = {"items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250}], "currency": "EUR"}


async def sign_up_and_log_in(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """A new user through the gateway: its email, user record and login tokens."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    signup = await client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"email": email, "user": signup.json(), **login.json()}


def bearer(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['access_token']}"}


async def next_order_event(socket: Any, *, deadline: float) -> dict[str, Any]:
    """The next order event on a gateway WebSocket, skipping heartbeats."""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no order event before the deadline"
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout=remaining))
        if message["type"] == "event":
            event: dict[str, Any] = message["event"]
            return event
