"""Access control, at the edge and behind it: users never see each other's orders.

Only admins list users.

Someone else's order answers exactly like an order that does not exist (404,
same problem body), so ids cannot be probed for existence.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.security.accounts import sign_up_and_log_in_sync
from tests.security.conftest import SecurityPlatform
from tests.support.accounts import ORDER, bearer

pytestmark = [pytest.mark.security, pytest.mark.slow]


def comparable(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem body without what differs per request (ids, the path asked for)."""
    return {
        key: value
        for key, value in problem.items()
        if key not in ("request_id", "trace_id", "instance")
    }


@pytest.fixture(scope="module")
def alice(security_platform: SecurityPlatform) -> dict[str, Any]:
    return sign_up_and_log_in_sync(security_platform.gateway, "alice")


@pytest.fixture(scope="module")
def bob(security_platform: SecurityPlatform) -> dict[str, Any]:
    return sign_up_and_log_in_sync(security_platform.gateway, "bob")


@pytest.mark.parametrize("target", ["gateway", "orders"])
async def test_a_user_cannot_read_cancel_or_list_another_users_order(
    security_platform: SecurityPlatform, alice: dict[str, Any], bob: dict[str, Any], target: str
) -> None:
    base_url = security_platform.platform.url(target)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        created = await client.post("/api/v1/orders", json=ORDER, headers=bearer(alice))
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        missing_id = str(uuid.uuid4())

        read = await client.get(f"/api/v1/orders/{order_id}", headers=bearer(bob))
        read_missing = await client.get(f"/api/v1/orders/{missing_id}", headers=bearer(bob))
        cancel = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=bearer(bob))
        cancel_missing = await client.post(
            f"/api/v1/orders/{missing_id}/cancel", headers=bearer(bob)
        )
        listed = await client.get("/api/v1/orders", params={"limit": 100}, headers=bearer(bob))
        still_alices = await client.get(f"/api/v1/orders/{order_id}", headers=bearer(alice))

    assert read.status_code == cancel.status_code == 404
    assert comparable(read.json()) == comparable(read_missing.json())
    assert comparable(cancel.json()) == comparable(cancel_missing.json())
    assert listed.status_code == 200
    assert order_id not in {order["id"] for order in listed.json()["items"]}
    assert still_alices.status_code == 200
    assert still_alices.json()["status"] != "cancelled"


@pytest.fixture(scope="module")
def admin(security_platform: SecurityPlatform) -> dict[str, Any]:
    # The one email USERS_ADMIN_EMAILS names: it gets the admin role at sign-up.
    return sign_up_and_log_in_sync(
        security_platform.gateway, "admin", email=security_platform.admin_email
    )


@pytest.mark.parametrize("target", ["gateway", "users"])
async def test_only_admins_list_users(
    security_platform: SecurityPlatform,
    alice: dict[str, Any],
    admin: dict[str, Any],
    target: str,
) -> None:
    base_url = security_platform.platform.url(target)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        as_user = await client.get("/api/v1/users", headers=bearer(alice))
        as_admin = await client.get("/api/v1/users", params={"limit": 100}, headers=bearer(admin))

    assert as_user.status_code == 403
    assert alice["email"] not in as_user.text
    assert as_admin.status_code == 200
    listed = {user["id"] for user in as_admin.json()["items"]}
    assert {alice["user"]["id"], admin["user"]["id"]} <= listed
