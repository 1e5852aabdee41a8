"""Limits at the edge and at the services: rate limits, brute force, body, time, headers, CORS.

Rate limits and deadlines are tested on processes of their own, started with
the limits under test: a users service with the default login limits and a
gateway with its default credential rules running as two worker processes
(``WEB_CONCURRENCY=2``) over the Redis backend, both with a 2 s request
deadline. Each test speaks from its own client address (``X-Forwarded-For``,
believed from loopback, the default trusted proxy) so that the tests never
share a rate-limit bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chassis.testing.processes import (
    free_port,
    start_process,
    stop_process_group,
    uvicorn_command,
)
from tests.security.accounts import sign_up_and_log_in_sync
from tests.security.conftest import (
    ALLOWED_ORIGIN,
    FAST_PASSWORDS,
    SecurityPlatform,
    security_redis_url,
)
from tests.security.edge import assert_security_headers, raw_request, request_head
from tests.support.accounts import ORDER, PASSWORD, bearer

pytestmark = [pytest.mark.security, pytest.mark.slow]

GENERAL_LIMIT = 30
LOGIN_LIMIT_PER_IP = 10  # the gateway's default credential rule
LOGIN_LIMIT_PER_ACCOUNT = 10  # the users service's default
REQUEST_TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 1_048_576  # the chassis default


@dataclass(frozen=True)
class LimitedEdge:
    gateway: str
    users: str
    gateway_process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def limited(
    security_platform: SecurityPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LimitedEdge]:
    """users and a two-worker gateway with the limits under test, on the suite's data."""
    # Keys of their own: the main platform's (unlimited) buckets must not count here.
    prefix = f"ratelimit-{uuid.uuid4().hex[:8]}"
    users_port, gateway_port = free_port(), free_port()
    users_url, gateway_url = f"http://127.0.0.1:{users_port}", f"http://127.0.0.1:{gateway_port}"
    users_env = {
        "USERS_DATABASE__URL": security_platform.platform.config.users_database_url,
        "USERS_REDIS__URL": security_redis_url(),
        "USERS_SIGNING__PRIVATE_KEY_PEM": security_platform.signing_key_pem,
        "USERS_RATE_LIMIT__BACKEND": "redis",
        "USERS_RATE_LIMIT__KEY_PREFIX": prefix,
        "USERS_SERVER__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
        **FAST_PASSWORDS,
    }
    metrics_dir = tmp_path_factory.mktemp("gateway-metrics")
    gateway_env = {
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_REDIS__URL": security_redis_url(),
        "GATEWAY_RATE_LIMIT__REQUESTS": str(GENERAL_LIMIT),
        "GATEWAY_RATE_LIMIT__KEY_PREFIX": prefix,
        "GATEWAY_SERVER__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
        "GATEWAY_AUTH__JWKS_URL": users_url + "/.well-known/jwks.json",
        "GATEWAY_UPSTREAMS__USERS__BASE_URL": users_url,
        "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": security_platform.orders,
    }
    users = start_process(
        uvicorn_command("users.main:create_app", users_port),
        ready_url=users_url + "/health/ready",
        env=users_env,
        timeout=60,
    )
    try:
        gateway = start_process(
            uvicorn_command("gateway.main:create_app", gateway_port),
            ready_url=gateway_url + "/health/ready",
            env=gateway_env,
            timeout=60,
        )
        try:
            yield LimitedEdge(gateway=gateway_url, users=users_url, gateway_process=gateway)
        finally:
            stop_process_group(gateway)
    finally:
        stop_process_group(users)


def worker_pids(process: subprocess.Popen[bytes]) -> list[int]:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


# --- rate limits ---------------------------------------------------------------------------


async def test_the_rate_limit_holds_across_two_worker_processes(limited: LimitedEdge) -> None:
    # uvicorn's supervisor plus its workers (and the multiprocessing helper): >= 2 serving.
    assert len(worker_pids(limited.gateway_process)) >= 2
    sent = 3 * GENERAL_LIMIT

    async def one(client_number: int) -> int:
        # A connection per request, so the kernel spreads them over both workers.
        async with httpx.AsyncClient(base_url=limited.gateway, timeout=10) as client:
            response = await client.get("/api/v1/orders", headers=from_address("198.51.100.7"))
            assert_security_headers(response.headers, what=f"request {client_number}")
            return response.status_code

    statuses: list[int] = []
    for start in range(0, sent, 10):
        statuses += await asyncio.gather(*(one(n) for n in range(start, start + 10)))

    assert statuses.count(429) == sent - GENERAL_LIMIT
    assert statuses.count(401) == GENERAL_LIMIT


def test_the_memory_backend_refuses_to_run_under_two_workers(tmp_path: Path) -> None:
    port = free_port()
    output_path = tmp_path / "gateway.log"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with output_path.open("wb") as output:
        # uvicorn's supervisor restarts workers that die, so the process itself keeps
        # running: what must hold is that no worker ever serves, and the log says why.
        process = subprocess.Popen(
            uvicorn_command("gateway.main:create_app", port),
            env={
                **os.environ,
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "GATEWAY_RATE_LIMIT__BACKEND": "memory",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while b"rate_limit.backend=memory" not in output_path.read_bytes():
                assert time.monotonic() < deadline, output_path.read_text(errors="replace")
                time.sleep(0.2)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
        finally:
            stop_process_group(process)


async def test_login_brute_force_is_throttled_per_ip_at_the_edge(limited: LimitedEdge) -> None:
    async with httpx.AsyncClient(base_url=limited.gateway, timeout=10) as client:
        statuses = []
        for _ in range(LOGIN_LIMIT_PER_IP + 5):
            # A new account every time: only the per-IP rule can stop these.
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": f"guess-{uuid.uuid4().hex[:8]}@example.com", "password": "x"},
                headers=from_address("198.51.100.20"),
            )
            statuses.append(response.status_code)
        other_address = await client.post(
            "/api/v1/auth/login",
            json={"email": "someone@example.com", "password": "x"},
            headers=from_address("198.51.100.21"),
        )

    assert statuses == [401] * LOGIN_LIMIT_PER_IP + [429] * 5
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert_security_headers(response.headers, what="429")
    assert other_address.status_code == 401


async def test_login_brute_force_is_throttled_per_account_from_any_ip(
    security_platform: SecurityPlatform, limited: LimitedEdge
) -> None:
    victim = sign_up_and_log_in_sync(security_platform.gateway, "brute-force-victim")
    async with httpx.AsyncClient(base_url=limited.gateway, timeout=10) as client:
        guesses = [
            (
                await client.post(
                    "/api/v1/auth/login",
                    json={"email": victim["email"], "password": f"guess number {n}"},
                    headers=from_address(f"203.0.113.{n}"),
                )
            ).status_code
            for n in range(LOGIN_LIMIT_PER_ACCOUNT)
        ]
        right = await client.post(
            "/api/v1/auth/login",
            json={"email": victim["email"], "password": PASSWORD},
            headers=from_address("203.0.113.200"),
        )

    assert guesses == [401] * LOGIN_LIMIT_PER_ACCOUNT
    # Even the right password: a 429 tells the guesser nothing about the guess.
    assert right.status_code == 429
    assert "access_token" not in right.text
    assert 0 < int(right.headers["retry-after"]) <= 300


# --- bodies, time and headers --------------------------------------------------------------


async def pieces(body: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("gateway", "/api/v1/auth/signup"),
        ("gateway", "/api/v1/orders"),
        ("users", "/api/v1/auth/signup"),
        ("orders", "/api/v1/orders"),
    ],
)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversized_body_is_refused_with_413(
    security_platform: SecurityPlatform, target: str, path: str, framing: str
) -> None:
    account = sign_up_and_log_in_sync(security_platform.gateway, "big-body")
    body = json.dumps({**ORDER, "padding": "x" * (MAX_BODY_BYTES + 1)}).encode()
    content: bytes | AsyncIterator[bytes] = body
    if framing == "chunked":
        # No Content-Length: the limit must count the bytes as they arrive.
        content = pieces(body)
    async with httpx.AsyncClient(
        base_url=security_platform.platform.url(target), timeout=20
    ) as client:
        response = await client.post(
            path,
            content=content,
            headers={**bearer(account), "Content-Type": "application/json"},
        )

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert_security_headers(response.headers, what="413")


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/signup"])
@pytest.mark.parametrize("target", ["gateway", "users"])
async def test_a_slow_drip_body_hits_the_request_timeout(
    limited: LimitedEdge, target: str, path: str
) -> None:
    base_url = limited.gateway if target == "gateway" else limited.users
    body = json.dumps({"email": "drip@example.com", "password": "x" * 40}).encode()
    head = request_head(
        "POST",
        base_url,
        path,
        Content_Type="application/json",
        Content_Length=str(len(body)),
        X_Forwarded_For=f"192.0.2.{1 if target == 'gateway' else 2}",
    )

    # One byte every half second: the whole body would take over 30 s.
    answer = await raw_request(
        base_url, head, body_chunks=[bytes([b]) for b in body], chunk_interval=0.5, read_timeout=15
    )

    assert answer.status == 504
    assert answer.elapsed < REQUEST_TIMEOUT_SECONDS + 5
    assert_security_headers(answer.headers, what="504")


@pytest.mark.parametrize("target", ["gateway", "users", "orders"])
async def test_oversized_headers_are_refused_before_the_app(
    security_platform: SecurityPlatform, target: str
) -> None:
    base_url = security_platform.platform.url(target)
    path = "/api/v1/orders"
    # One read's worth: uvicorn's h11 would parse and pass this on (it bounds only
    # incomplete heads), so the chassis' own limit (16 KiB by default) must answer.
    refused = await raw_request(
        base_url, request_head("GET", base_url, path, Authorization="Bearer " + "a" * 40_000)
    )
    # Far larger, arriving over many reads: the server's parser gives up first.
    flood = await raw_request(
        base_url, request_head("GET", base_url, path, X_Padding="a" * 1024 * 1024)
    )
    fits = await raw_request(
        base_url, request_head("GET", base_url, "/health/live", X_Padding="a" * 8 * 1024)
    )

    assert refused.status == 431
    assert refused.headers["content-type"] == "application/problem+json"
    assert_security_headers(refused.headers, what="431")
    assert flood.status in (400, 431)
    assert fits.status == 200


# --- CORS ----------------------------------------------------------------------------------


async def test_cors_preflight_allows_only_the_configured_origins(
    security_platform: SecurityPlatform,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    async with httpx.AsyncClient(base_url=security_platform.gateway, timeout=10) as client:
        allowed = await client.options(
            "/api/v1/orders", headers={**preflight, "Origin": ALLOWED_ORIGIN}
        )
        refused = await client.options(
            "/api/v1/orders", headers={**preflight, "Origin": "https://evil.example.com"}
        )
        simple = await client.get("/health/live", headers={"Origin": "https://evil.example.com"})
    async with httpx.AsyncClient(base_url=security_platform.orders, timeout=10) as client:
        # CORS is off on the internal services (no origins configured): nothing is allowed.
        internal = await client.options(
            "/api/v1/orders", headers={**preflight, "Origin": ALLOWED_ORIGIN}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in allowed.headers
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in internal.headers
    for response in (allowed, refused):
        assert "origin" in response.headers.get("vary", "").lower()
