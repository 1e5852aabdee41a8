"""An upstream that is down, slow or failing: chassis problems within the deadline, breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_testing import Gateway, OrdersState, Tokens, bearer, metric_value

from chassis.testing.processes import free_port


@asynccontextmanager
async def breaking_upstream(promised: int = 100_000) -> AsyncIterator[str]:
    """A raw HTTP server that promises `promised` bytes, sends 10 and hangs up."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n".encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + b"0123456789")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_upstream_that_is_down_is_a_503_problem_within_its_deadline(
    start_gateway, tokens: Tokens
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_gateway(upstreams={"orders": {"base_url": dead, "deadline_seconds": 2}}) as gateway:
        async with gateway.client() as client:
            started = time.monotonic()
            response = await client.get("/api/v1/orders", headers=bearer(tokens.issue()))
            elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "'orders'" in problem["detail"]
    assert "127.0.0.1" not in response.text
    assert problem["request_id"] == response.headers["x-request-id"]
    assert elapsed < gateway.settings.upstreams["orders"].deadline_seconds


async def test_a_slow_upstream_is_a_504_then_its_open_breaker_fails_fast(
    start_gateway, tokens: Tokens, orders_state: OrdersState
) -> None:
    slow = {"deadline_seconds": 0.3, "retry_attempts": 1, "breaker_failure_threshold": 2}
    with start_gateway(upstreams={"orders": slow}) as gateway:
        async with gateway.client() as client:
            headers = bearer(tokens.issue())
            timeouts = [
                await client.get("/api/v1/orders/slow?seconds=3", headers=headers) for _ in range(2)
            ]
            refused = await client.get("/api/v1/orders/slow?seconds=3", headers=headers)
            ready = (await client.get("/health/ready")).json()

    assert [r.status_code for r in timeouts] == [504, 504]
    assert all("did not answer within" in r.json()["detail"] for r in timeouts)
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) >= 1
    # Fails fast: the third call never reached orders.
    assert orders_state.recorder.paths().count("/api/v1/orders/slow") == 2
    assert ready["checks"]["upstreams"]["details"]["orders"]["state"] == "open"


async def test_an_upstream_error_answer_is_passed_through(
    gateway: Gateway, tokens: Tokens, orders_state: OrdersState
) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/orders/broken", headers=bearer(tokens.issue()))

    assert response.status_code == 503
    assert response.json()["detail"] == "orders is overloaded"
    # An idempotent GET without a body is retried (3 attempts by default).
    assert orders_state.recorder.paths().count("/api/v1/orders/broken") == 3


async def test_a_streamed_body_is_sent_once_even_to_an_idempotent_method(
    gateway: Gateway, tokens: Tokens, orders_state: OrdersState
) -> None:
    async with gateway.client() as client:
        response = await client.put(
            "/api/v1/orders/broken", json={"x": 1}, headers=bearer(tokens.issue())
        )

    assert response.status_code == 503
    assert orders_state.recorder.paths().count("/api/v1/orders/broken") == 1


async def test_an_upstream_that_breaks_mid_body_ends_the_clients_connection(
    start_gateway, tokens: Tokens
) -> None:
    async with breaking_upstream() as broken:
        with start_gateway(upstreams={"orders": {"base_url": broken}}) as gateway:
            async with gateway.client() as client:
                # Never a silently short 200: the client sees the body was cut.
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get("/api/v1/orders/1", headers=bearer(tokens.issue()))
                after = await client.get("/api/v1/users/me", headers=bearer(tokens.issue()))

    assert after.status_code == 200


async def test_a_small_answer_cut_short_is_a_502_problem(start_gateway, tokens: Tokens) -> None:
    # A small declared body is read whole before the answer starts, so a cut is still
    # answerable: a 502 problem with the request id, not a short 200.
    async with breaking_upstream(promised=1000) as broken:
        with start_gateway(upstreams={"orders": {"base_url": broken}}) as gateway:
            async with gateway.client() as client:
                response = await client.get(
                    "/api/v1/orders/1",
                    headers={**bearer(tokens.issue()), "X-Request-ID": "cut-short-1"},
                )

    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "cut-short-1"
    assert "broke off" in response.json()["detail"]


async def test_a_client_that_leaves_mid_upload_is_logged_as_499(
    gateway: Gateway, tokens: Tokens
) -> None:
    def uploads_499(text: str) -> float:
        return metric_value(
            text, "http_requests_total", service="gateway", method="POST", status="499"
        )

    async with gateway.client() as client:
        before = uploads_499((await client.get("/metrics")).text)
        parts = urlsplit(gateway.url)
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            (
                "POST /api/v1/users/echo/partial HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nAuthorization: Bearer {tokens.issue()}\r\n"
                "Content-Length: 1000000\r\n\r\n"
            ).encode()
            + b"x" * 1000
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            after = uploads_499((await client.get("/metrics")).text)
            if after > before:
                break
            await asyncio.sleep(0.02)

    assert after == before + 1
