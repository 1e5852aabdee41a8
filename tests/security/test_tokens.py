"""Token attacks at the gateway and at each service: every forgery is a 401, kinds stay apart.

Each attack token differs from a valid one (minted with the same key and
claims, and accepted: see the control test) in one thing only, so a refusal
can only come from the check that the attack targets.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from tests.security.accounts import sign_up_and_log_in_sync
from tests.security.conftest import SecurityPlatform
from tests.security.tokens import attack_tokens, claims_for, sign
from tests.support.accounts import PASSWORD, bearer, sign_up_and_log_in

pytestmark = [pytest.mark.security, pytest.mark.slow]

#: Where each target checks a user token: a protected read at the edge and at each service.
PROTECTED = {
    "gateway": "/api/v1/orders",
    "users": "/api/v1/users/me",
    "orders": "/api/v1/orders",
}


@pytest.fixture(scope="module")
def victim(security_platform: SecurityPlatform) -> dict[str, Any]:
    return sign_up_and_log_in_sync(security_platform.gateway, "token-victim")


async def get(base_url: str, path: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("target", sorted(PROTECTED))
async def test_a_token_minted_like_the_issuer_is_accepted(
    security_platform: SecurityPlatform, victim: dict[str, Any], target: str
) -> None:
    token = sign(security_platform.signing_key, claims_for(victim["user"]["id"]))

    response = await get(security_platform.platform.url(target), PROTECTED[target], token)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("target", sorted(PROTECTED))
@pytest.mark.parametrize(
    "attack",
    [
        "alg_none",
        "hs256_signed_with_public_key",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "unknown_kid",
        "known_kid_other_key",
        "tampered_payload",
        "no_expiry",
    ],
)
async def test_a_forged_or_unacceptable_token_is_refused_with_401(
    security_platform: SecurityPlatform, victim: dict[str, Any], target: str, attack: str
) -> None:
    token = attack_tokens(security_platform.signing_key, victim["user"]["id"])[attack]

    response = await get(security_platform.platform.url(target), PROTECTED[target], token)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert token not in response.text
    assert token.split(".")[1] not in response.text


async def test_a_deleted_users_refresh_token_and_profile_are_gone(
    security_platform: SecurityPlatform,
) -> None:
    """What the platform promises for a deleted account (there is no delete endpoint yet).

    Access tokens are stateless and short-lived (``USERS_TOKEN__ACCESS_TTL_SECONDS``,
    300 s): the services keep accepting one until it expires, by design. What must
    end at once is everything that consults the account: its profile (404) and
    the refresh token, so no new access token is ever issued (docs/adr/0014).
    """
    async with httpx.AsyncClient(base_url=security_platform.gateway, timeout=10) as client:
        account = await sign_up_and_log_in(client, "deleted")
        with psycopg.connect(
            security_platform.users_database_url.replace("+asyncpg", ""), autocommit=True
        ) as connection:
            connection.execute("DELETE FROM users WHERE id = %s", (account["user"]["id"],))

        profile = await client.get("/api/v1/users/me", headers=bearer(account))
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
        )
        relogin = await client.post(
            "/api/v1/auth/login",
            json={"email": account["email"], "password": PASSWORD},
        )

    assert profile.status_code == 404
    assert refreshed.status_code == 401
    assert relogin.status_code == 401
    claims = jwt.decode(account["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300


async def service_token(security_platform: SecurityPlatform) -> str:
    async with httpx.AsyncClient(base_url=security_platform.gateway, timeout=10) as client:
        response = await client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "worker",
                "client_secret": security_platform.client_secret,
            },
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.mark.parametrize("target", sorted(PROTECTED))
async def test_a_service_token_is_refused_on_user_routes(
    security_platform: SecurityPlatform, target: str
) -> None:
    token = await service_token(security_platform)

    response = await get(security_platform.platform.url(target), PROTECTED[target], token)

    assert response.status_code == 403, response.text


async def test_a_user_token_is_refused_on_internal_routes(
    security_platform: SecurityPlatform, victim: dict[str, Any]
) -> None:
    # Even with the internal scope minted in: the route wants kind=service.
    scoped = sign(
        security_platform.signing_key,
        claims_for(victim["user"]["id"], scope="orders:read orders:internal"),
    )
    order_path = f"/internal/v1/orders/{uuid.uuid4()}"

    at_orders = await get(security_platform.orders, order_path, victim["access_token"])
    scoped_at_orders = await get(security_platform.orders, order_path, scoped)
    at_gateway = await get(security_platform.gateway, order_path, victim["access_token"])

    assert at_orders.status_code == 403
    assert scoped_at_orders.status_code == 403
    # The gateway never routes /internal: it does not exist from outside.
    assert at_gateway.status_code == 404


async def test_a_service_token_is_accepted_on_internal_routes(
    security_platform: SecurityPlatform,
) -> None:
    token = await service_token(security_platform)

    response = await get(security_platform.orders, f"/internal/v1/orders/{uuid.uuid4()}", token)

    assert response.status_code == 404
