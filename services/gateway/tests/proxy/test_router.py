"""What the gateway routes where, what it refuses at the edge, and what it never proxies."""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import urlsplit

import pytest
from gateway_testing import RIGHT_PASSWORD, Gateway, OrdersState, Tokens, UsersState, bearer

from gateway.proxy.contract import documented_routes


async def raw_request(url: str, request_line: str, headers: dict[str, str]) -> int:
    """Send a request line exactly as written (httpx would normalise the path)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [request_line, f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_a_protected_route_without_a_token_is_refused_at_the_edge(
    gateway: Gateway, orders_state: OrdersState
) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/orders")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert orders_state.recorder.seen == []


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "forged"],
)
async def test_an_invalid_token_is_refused_at_the_edge(
    token: str, gateway: Gateway, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/users/me", headers=bearer(token))

    assert response.status_code == 401
    assert [
        seen.path for seen in users_state.recorder.seen if seen.path != "/.well-known/jwks.json"
    ] == []


async def test_a_token_signed_by_another_key_is_refused(gateway: Gateway) -> None:
    stranger = Tokens()
    async with gateway.client() as client:
        response = await client.get("/api/v1/orders", headers=bearer(stranger.issue()))

    assert response.status_code == 401


async def test_sign_up_and_login_need_no_token(gateway: Gateway) -> None:
    async with gateway.client() as client:
        signup = await client.post(
            "/api/v1/auth/signup", json={"email": "ada@example.com", "password": RIGHT_PASSWORD}
        )
        login_json = await client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": RIGHT_PASSWORD}
        )
        login_form = await client.post(
            "/api/v1/auth/login", data={"username": "ada@example.com", "password": RIGHT_PASSWORD}
        )
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "nope"}
        )
        profile = await client.get(
            "/api/v1/users/me", headers=bearer(login_json.json()["access_token"])
        )

    assert signup.status_code == 201
    assert signup.json()["email"] == "ada@example.com"
    assert login_json.status_code == 200
    assert login_form.status_code == 200
    assert wrong.status_code == 401
    assert profile.status_code == 200


@pytest.mark.parametrize("operation", ["refresh", "logout", "token"])
async def test_other_public_auth_operations_reach_users_without_a_token(
    operation: str, gateway: Gateway, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        response = await client.post(f"/api/v1/auth/{operation}", json={})

    # The fake users has no such endpoint: its 404 proves the gateway let the call through.
    assert response.status_code == 404
    assert users_state.recorder.paths()[-1] == f"/api/v1/auth/{operation}"


async def test_other_auth_paths_are_protected(gateway: Gateway, users_state: UsersState) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/auth/sessions")

    assert response.status_code == 401
    assert "/api/v1/auth/sessions" not in users_state.recorder.paths()


async def test_the_jwks_is_public_and_keeps_its_cache_policy(gateway: Gateway) -> None:
    async with gateway.client() as client:
        response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json()["keys"][0]["kid"] == "gateway-tests"
    assert response.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/internal/v1/orders/{uuid.uuid4()}/status"),
        ("POST", f"/internal/v1/orders/{uuid.uuid4()}/fulfilment"),
        ("GET", f"/internal/v1/orders/{uuid.uuid4()}"),
        ("POST", "/internal/v1/maintenance/purge"),
        ("GET", "/api/v1/unknown"),
    ],
)
async def test_internal_and_unknown_paths_are_404_and_reach_no_upstream(
    method: str,
    path: str,
    gateway: Gateway,
    tokens: Tokens,
    orders_state: OrdersState,
    users_state: UsersState,
) -> None:
    token = tokens.issue(scopes=("orders:internal",))
    async with gateway.client() as client:
        response = await client.request(method, path, headers=bearer(token), json={})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert orders_state.recorder.seen == []
    assert all(not p.startswith("/internal") for p in users_state.recorder.paths())


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders/../../internal/v1/orders/1/status",
        "/api/v1/orders/%2e%2e/%2e%2e/internal/v1/orders/1/status",
        "/api/v1/orders/./x",
    ],
)
async def test_dot_segments_never_reach_an_upstream(
    path: str, gateway: Gateway, tokens: Tokens, orders_state: OrdersState
) -> None:
    status = await raw_request(
        gateway.url, f"POST {path} HTTP/1.1", {**bearer(tokens.issue()), "Content-Length": "0"}
    )

    assert status == 404
    assert orders_state.recorder.seen == []


async def test_every_documented_operation_is_routed_to_its_upstream(
    gateway: Gateway,
    tokens: Tokens,
    users_state: UsersState,
    orders_state: OrdersState,
) -> None:
    token = tokens.issue()
    async with gateway.client() as client:
        for route in documented_routes():
            path = re.sub(r"\{[^}]+\}", "some-id", route.path)
            for method in route.methods:
                await client.request(method, path, headers=bearer(token))
                upstream = orders_state if path.startswith("/api/v1/orders") else users_state
                assert upstream.recorder.last().path == path, (method, path)
                assert upstream.recorder.last().method == method
