"""The assembled gateway: rate limits in Redis, readiness, and its OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.openapi.models import OpenAPI
from gateway_testing import RIGHT_PASSWORD, Gateway, Tokens, bearer
from redis.asyncio import Redis

from chassis.testing import assert_valid_openapi, openapi_refs


async def test_each_user_has_their_own_budget(start_gateway, tokens: Tokens) -> None:
    alice, bob = tokens.issue(), tokens.issue()
    with start_gateway(rate_limit={"requests": 3}) as gateway:
        async with gateway.client() as client:
            alice_statuses = [
                (await client.get("/api/v1/users/me", headers=bearer(alice))).status_code
                for _ in range(4)
            ]
            bob_status = (await client.get("/api/v1/users/me", headers=bearer(bob))).status_code
            refused = await client.get("/api/v1/users/me", headers=bearer(alice))

    assert alice_statuses == [200, 200, 200, 429]
    assert bob_status == 200
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"


async def test_anonymous_callers_are_limited_by_address(start_gateway) -> None:
    with start_gateway(rate_limit={"requests": 2}) as gateway:
        async with gateway.client() as client:
            statuses = [(await client.get("/.well-known/jwks.json")).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


async def test_login_has_a_stricter_per_address_limit_even_with_a_token(
    start_gateway, tokens: Tokens
) -> None:
    rules = [
        {
            "path_prefix": "/api/v1/auth/login",
            "methods": ["POST"],
            "requests": 2,
            "window_seconds": 60,
            "by_ip": True,
        }
    ]
    credentials = {"email": "ada@example.com", "password": RIGHT_PASSWORD}
    with start_gateway(rate_limit={"requests": 100, "rules": rules}) as gateway:
        async with gateway.client() as client:
            logins = [
                (
                    await client.post(
                        "/api/v1/auth/login", json=credentials, headers=bearer(tokens.issue())
                    )
                ).status_code
                for _ in range(3)
            ]
            other = await client.get("/.well-known/jwks.json")

    assert logins == [200, 200, 429]
    assert other.status_code == 200


async def test_the_limit_lives_in_redis_and_is_shared_by_every_instance(
    start_gateway, tokens: Tokens, redis_url: str
) -> None:
    token = tokens.issue()
    with (
        start_gateway(rate_limit={"requests": 3}) as first,
        start_gateway(rate_limit={"requests": 3}) as second,
    ):
        statuses = []
        for gateway in (first, second, first, second):
            async with gateway.client() as client:
                response = await client.get("/api/v1/users/me", headers=bearer(token))
                statuses.append(response.status_code)

    redis = Redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in redis.scan_iter("ratelimit:*")]
    finally:
        await redis.aclose()
    assert statuses == [200, 200, 200, 429]
    assert any(tokens.subject_of(token) in key for key in keys)


def test_the_default_settings_use_redis_and_a_strict_login_rule() -> None:
    from gateway.settings import GatewaySettings

    settings = GatewaySettings()
    login = next(r for r in settings.rate_limit.rules if r.path_prefix == "/api/v1/auth/login")

    assert settings.rate_limit.backend == "redis"
    assert login.by_ip
    assert login.requests < settings.rate_limit.requests


async def test_readiness_reports_every_dependency(gateway: Gateway, tokens: Tokens) -> None:
    async with gateway.client() as client:
        await client.get("/api/v1/users/me", headers=bearer(tokens.issue()))
        response = await client.get("/health/ready")

    checks = response.json()["checks"]
    assert response.status_code == 200
    assert set(checks) == {"redis", "jwks", "upstreams", "events"}
    assert checks["events"]["status"] == "ok"
    assert checks["events"]["critical"] is False
    assert set(checks["upstreams"]["details"]) == {"users", "orders"}


# --- OpenAPI ---------------------------------------------------------------------------------
@pytest.fixture
async def openapi(gateway: Gateway) -> dict[str, Any]:
    async with gateway.client() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_the_openapi_document_is_valid_and_every_ref_resolves(
    openapi: dict[str, Any],
) -> None:
    OpenAPI.model_validate(openapi)

    assert openapi_refs(openapi)
    assert_valid_openapi(openapi)


async def test_the_openapi_document_describes_the_whole_public_api(
    openapi: dict[str, Any],
) -> None:
    paths = openapi["paths"]
    expected = {
        ("post", "/api/v1/auth/signup"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/auth/token"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/api/v1/users/me"),
        ("patch", "/api/v1/users/me"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/orders"),
        ("get", "/api/v1/orders"),
        ("get", "/api/v1/orders/{order_id}"),
        ("post", "/api/v1/orders/{order_id}/cancel"),
        ("get", "/api/v1/me/overview"),
        ("get", "/api/v1/platform/status"),
        ("get", "/api/v1/events"),
    }
    documented = {(method, path) for path, item in paths.items() for method in item}

    assert documented == expected
    assert not any(path.startswith(("/internal", "/health", "/metrics")) for path in paths)
    signup = paths["/api/v1/auth/signup"]["post"]
    assert signup["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/UserCreate"
    )
    assert signup["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/UserRead"
    )
    login_body = paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(login_body) == {"application/json", "application/x-www-form-urlencoded"}
    token_body = paths["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_body
    create = paths["/api/v1/orders"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OrderCreate"
    )
    assert "text/event-stream" in paths["/api/v1/events"]["get"]["responses"]["200"]["content"]


async def test_protected_operations_declare_bearer_auth_and_problem_errors(
    openapi: dict[str, Any],
) -> None:
    public = {"/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/auth/refresh"}
    public |= {"/api/v1/auth/logout", "/api/v1/auth/token", "/.well-known/jwks.json"}
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            secured = bool(operation.get("security"))
            assert secured == (path not in public), (method, path)
            responses = operation["responses"]
            assert "429" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


async def test_docs_are_hidden_in_production(start_gateway) -> None:
    with start_gateway(environment="production", docs_enabled=None) as gateway:
        async with gateway.client() as client:
            response = await client.get("/openapi.json")

    assert response.status_code == 404


async def test_metrics_are_served(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert "live_event_connections" in response.text
