"""Scenario 4: users (the token issuer and its JWKS) is down; verification carries on from cache."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.faults.conftest import FIRST_TEST_TIMEOUT, FaultPlatform, account, wait_ready
from tests.faults.load import Patient, SteadyLoad, summary
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import bearer

SCENARIO = "jwks-issuer-down"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

RATE = 10.0
LOAD_FOR = 3.0


def token_with_unknown_kid(valid_token: str) -> str:
    """The same claims as a real token, signed by a key the issuer never published."""
    claims = jwt.decode(valid_token, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "never-published"})


async def test_cached_keys_keep_valid_tokens_working_while_users_is_down(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    dave = await account(faults, "jwks-down")
    auth = bearer(dave)
    forged = {"Authorization": f"Bearer {token_with_unknown_kid(dave['access_token'])}"}
    orders_url = faults.platform.orders

    async with (
        httpx.AsyncClient(base_url=faults.gateway, timeout=10) as gateway,
        httpx.AsyncClient(base_url=orders_url, timeout=10) as orders,
    ):
        # Both verifiers have fetched the key set before the issuer goes.
        assert (await gateway.get("/api/v1/orders", headers=auth)).status_code == 200
        assert (await orders.get("/api/v1/orders", headers=auth)).status_code == 200

        faults.platform.stop("users")
        down_at = time.monotonic()
        # Past the TTL: what the verifiers hold now is stale, and the issuer cannot refresh it.
        await asyncio.sleep(SETTINGS["jwks_ttl"] + 0.5)
        # A 401 fails this; a 504 of the gateway's deadline on a loaded machine is sent again.
        patient = Patient()
        via_gateway = SteadyLoad(gateway, patient.get("/api/v1/orders", auth), RATE)
        direct = SteadyLoad(orders, lambda c: c.get("/api/v1/orders", headers=auth), RATE)
        via_gateway.start()
        direct.start()
        await asyncio.sleep(LOAD_FOR)
        gateway_outcomes = await via_gateway.stop()
        orders_outcomes = await direct.stop()
        unknown_at_gateway = await gateway.get("/api/v1/orders", headers=forged)
        unknown_at_orders = await orders.get("/api/v1/orders", headers=forged)
        down_for = time.monotonic() - down_at

    faults.restart("users")
    await wait_ready(faults.platform.users)

    reliability.record(
        SCENARIO,
        users_down_for_s=round(down_for, 1),
        gateway_requests_accepted=f"{sum(o.status == 200 for o in gateway_outcomes)}"
        f"/{len(gateway_outcomes)}",
        orders_requests_accepted=f"{sum(o.status == 200 for o in orders_outcomes)}"
        f"/{len(orders_outcomes)}",
        unknown_kid_at_gateway=unknown_at_gateway.status_code,
        unknown_kid_at_orders=unknown_at_orders.status_code,
        gateway_answers_too_slow_sent_again=patient.retried,
    )
    assert gateway_outcomes
    assert orders_outcomes
    assert [o for o in gateway_outcomes if o.status != 200] == [], summary(gateway_outcomes)
    assert [o for o in orders_outcomes if o.status != 200] == [], summary(orders_outcomes)
    for refused in (unknown_at_gateway, unknown_at_orders):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
