"""The JWKS endpoint: cacheable, public members only, and it verifies the tokens we issue."""

from __future__ import annotations

import httpx
import jwt

from chassis.auth import JWKSCache, TokenVerifier
from chassis.testing.servers import serve_in_thread
from users.main import create_app

JWKS = "/.well-known/jwks.json"


async def test_the_jwks_is_public_cacheable_and_names_the_signing_key(api) -> None:
    token = await api.user_token()

    response = await api.http.get(JWKS)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]


async def test_issued_tokens_verify_with_the_chassis_against_the_served_jwks(settings) -> None:
    with serve_in_thread(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            password = "correct horse battery staple 1"
            await http.post(
                "/api/v1/auth/signup", json={"email": "alice@example.com", "password": password}
            )
            pair = (
                await http.post(
                    "/api/v1/auth/login", json={"email": "alice@example.com", "password": password}
                )
            ).json()
            service = (
                await http.post(
                    "/api/v1/auth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "worker",
                        "client_secret": "worker-development-secret",
                    },
                )
            ).json()
            jwks = JWKSCache(base_url + JWKS, http_client=http)
            verifier = TokenVerifier(jwks, issuer="chassis-users", audience="chassis-api")

            user = await verifier.verify(pair["access_token"])
            worker = await verifier.verify(service["access_token"])

    assert user.kind == "user"
    assert user.scopes == {"orders:read", "orders:write", "profile"}
    assert worker.is_service
    assert worker.subject == "service:worker"
    assert worker.scopes == {"orders:internal"}
