"""Nothing secret leaks: not into any service's logs, not into any answer's body.

The journey (sign-up, a failed and a good login, refresh, an order, a service
token, a forged token, a malformed login) runs against the real processes of
the suite's platform, whose stdout and stderr go to files; then every log and
every response body is searched for the password, the access and refresh
tokens, the client secret and the signing key's private material.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from chassis.testing import eventually
from tests.security.conftest import SecurityPlatform
from tests.security.tokens import attack_tokens
from tests.support.accounts import ORDER, PASSWORD, bearer, sign_up_and_log_in

pytestmark = [pytest.mark.security, pytest.mark.slow]

WRONG_PASSWORD = "Not the password 4 this account"


def private_fragments(security_platform: SecurityPlatform) -> dict[str, str]:
    """Pieces of the signing key that only its holder has, in each form it could leak in."""
    numbers = security_platform.signing_key.private_key.private_numbers()  # type: ignore[union-attr]
    d = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
    pem_body = "".join(security_platform.signing_key_pem.strip().splitlines()[1:-1])
    return {
        "private key PEM header": "PRIVATE KEY-----",
        "private key PEM body": pem_body[64:128],
        "private exponent (JWK d)": base64.urlsafe_b64encode(d).rstrip(b"=").decode()[:40],
        "private exponent (decimal)": str(numbers.d)[:40],
    }


async def test_the_journey_leaks_no_secret_into_logs_or_bodies(
    security_platform: SecurityPlatform,
) -> None:
    bodies: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        bodies.append(response.text)
        return response

    async with httpx.AsyncClient(base_url=security_platform.gateway, timeout=10) as client:
        account = await sign_up_and_log_in(client, "leak")
        keep(
            await client.post(
                "/api/v1/auth/login", json={"email": account["email"], "password": WRONG_PASSWORD}
            )
        )
        keep(
            await client.post(
                "/api/v1/auth/login",
                content=b'{"email": "' + account["email"].encode() + b'", "password": 12',
                headers={"Content-Type": "application/json"},
            )
        )
        # Answers that issue a token carry it by design: they are not searched.
        refreshed = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
            )
        ).json()
        # The rotated-out token again: reuse, which revokes the family and is logged.
        keep(
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
            )
        )
        order = keep(await client.post("/api/v1/orders", json=ORDER, headers=bearer(account)))
        assert order.status_code == 201, order.text
        service = (
            await client.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "worker",
                    "client_secret": security_platform.client_secret,
                },
            )
        ).json()
        keep(
            await client.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "worker",
                    "client_secret": security_platform.client_secret + "-wrong",
                },
            )
        )
        forged = attack_tokens(security_platform.signing_key, account["user"]["id"])
        for token in forged.values():
            keep(await client.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"}))
        keep(await client.get("/api/v1/orders/not-an-id", headers=bearer(account)))

    secrets: dict[str, str] = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "access token": account["access_token"],
        "access token signature": account["access_token"].rsplit(".", 1)[1],
        "refresh token": account["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "service token signature": service["access_token"].rsplit(".", 1)[1],
        "client secret": security_platform.client_secret,
        "forged token signature": forged["tampered_payload"].rsplit(".", 1)[1],
        **private_fragments(security_platform),
    }

    # The order's fulfilment is logged by the worker: wait for it, so its lines are in.
    await eventually(lambda: "order" in security_platform.logs()["worker"], within=20, step=0.2)
    await asyncio.sleep(0.5)  # the last lines of a request are written just after its answer
    logs = security_platform.logs()
    assert all(logs.values()), "a service wrote no log at all: the capture is broken"
    leaks: list[str] = [
        f"{what} in the {name} log"
        for name, text in logs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    leaks += [
        f"{what} in a response body"
        for body in bodies
        for what, secret in secrets.items()
        if secret in body
    ]
    assert not leaks, leaks


def test_the_secrets_searched_for_are_really_there(security_platform: SecurityPlatform) -> None:
    # Guards the test above against searching for strings that could never match.
    fragments: dict[str, Any] = private_fragments(security_platform)
    assert fragments["private key PEM body"] in security_platform.signing_key_pem.replace("\n", "")
    assert len(fragments["private exponent (JWK d)"]) == 40
