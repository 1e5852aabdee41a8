"""The live-events WebSocket over a real socket, through the whole chassis middleware stack."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from typing import Any

import httpx
import pytest
from gateway_testing import Events, Gateway, Tokens, bearer, metric_value
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def next_message(ws: ClientConnection, *, kind: str = "event") -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def close_code_of(ws: ClientConnection, *, within: float = 5.0) -> int | None:
    """Read until the server closes the socket; its close code."""
    async with asyncio.timeout(within):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code


async def test_a_header_token_gets_the_callers_events_only(
    gateway: Gateway, tokens: Tokens, events: Events
) -> None:
    alice, bob = tokens.issue(), tokens.issue()
    async with connect(gateway.ws_url, additional_headers=bearer(alice)) as ws:
        await ws.send("messages from the client are ignored")
        await events.publish(tokens.subject_of(bob))
        mine = await events.publish(tokens.subject_of(alice), type="order.cancelled")
        message = await next_message(ws)

    assert message["type"] == "event"
    event = message["event"]
    assert event["id"] == mine.id
    assert event["type"] == "order.cancelled"
    assert event["payload"]["order"]["owner_id"] == tokens.subject_of(alice)


async def test_a_query_token_works_for_browsers_and_stays_out_of_the_logs(
    gateway: Gateway, tokens: Tokens, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    token = tokens.issue()
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        async with connect(f"{gateway.ws_url}?access_token={token}") as ws:
            sent = await events.publish(tokens.subject_of(token))
            message = await next_message(ws)

    assert message["event"]["id"] == sent.id
    assert token not in caplog.text
    assert "access_token=[REDACTED]" in caplog.text


@pytest.mark.parametrize("query", ["", "?access_token=garbage"])
async def test_a_missing_or_bad_token_closes_with_1008(query: str, gateway: Gateway) -> None:
    async with connect(gateway.ws_url + query) as ws:
        code = await close_code_of(ws)

    assert code == 1008
    assert ws.close_reason in ("A bearer token is required.", "The access token is invalid.")


async def test_a_bad_header_token_is_refused_even_with_a_good_query_token(
    gateway: Gateway, tokens: Tokens
) -> None:
    url = f"{gateway.ws_url}?access_token={tokens.issue()}"
    async with connect(url, additional_headers=bearer("garbage")) as ws:
        code = await close_code_of(ws)

    assert code == 1008


async def test_an_idle_socket_gets_heartbeats(start_gateway, tokens: Tokens) -> None:
    with start_gateway(events={"heartbeat_seconds": 0.1}) as gateway:
        async with connect(gateway.ws_url, additional_headers=bearer(tokens.issue())) as ws:
            heartbeat = await next_message(ws, kind="heartbeat")

    assert heartbeat == {"type": "heartbeat"}


async def test_the_handshake_passes_the_whole_middleware_stack(
    start_gateway, tokens: Tokens, events: Events
) -> None:
    # A rate limit of one request must not touch WebSockets; the request id is echoed.
    with start_gateway(
        rate_limit={"requests": 1}, security={"allowed_hosts": ["127.0.0.1"]}
    ) as gateway:
        token = tokens.issue()
        sockets = [
            await connect(
                gateway.ws_url, additional_headers={**bearer(token), "X-Request-ID": f"ws-{n}"}
            )
            for n in range(3)
        ]
        try:
            sent = await events.publish(tokens.subject_of(token))
            received = [await next_message(ws) for ws in sockets]
        finally:
            for ws in sockets:
                await ws.close()
        async with gateway.client() as client:
            http = [
                (await client.get("/api/v1/users/me", headers=bearer(token))).status_code
                for _ in range(2)
            ]

    assert [ws.response.headers["x-request-id"] for ws in sockets] == ["ws-0", "ws-1", "ws-2"]
    assert all(message["event"]["id"] == sent.id for message in received)
    assert http == [200, 429]  # the limiter is on; it just leaves WebSockets alone


async def test_an_unknown_host_is_refused_before_the_handshake(
    start_gateway, tokens: Tokens
) -> None:
    with (
        start_gateway(security={"allowed_hosts": ["gateway.example.com"]}) as gateway,
        pytest.raises(InvalidStatus) as refused,
    ):
        await connect(gateway.ws_url, additional_headers=bearer(tokens.issue()))

    assert refused.value.response.status_code == 403


async def test_too_many_sockets_for_one_caller_close_with_1013(
    start_gateway, tokens: Tokens
) -> None:
    token = tokens.issue()
    with start_gateway(events={"max_connections_per_subject": 1}) as gateway:
        async with (
            connect(gateway.ws_url, additional_headers=bearer(token)),
            connect(gateway.ws_url, additional_headers=bearer(token)) as second,
        ):
            code = await close_code_of(second)

    assert code == 1013


async def test_a_socket_that_stops_reading_is_closed_with_1013_while_others_keep_receiving(
    start_gateway, tokens: Tokens, events: Events
) -> None:
    token = tokens.issue()
    subject = tokens.subject_of(token)
    # Incompressible, so that per-message deflate cannot shrink it below the buffers.
    payload = {"blob": secrets.token_urlsafe(150_000)}
    with start_gateway(events={"queue_size": 4, "close_timeout_seconds": 10}) as gateway:
        slow_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = gateway.url.removeprefix("http://").split(":")
        slow_socket.connect((host, int(port)))
        slow_socket.setblocking(False)
        slow = await connect(
            gateway.ws_url,
            sock=slow_socket,
            additional_headers=bearer(token),
            max_queue=1,
            compression=None,
        )
        async with connect(gateway.ws_url, additional_headers=bearer(token)) as fast:
            async with gateway.client() as client:
                dropped_before = await _dropped(client)
                published = []
                for _ in range(200):
                    published.append(await events.publish(subject, payload=payload))
                    assert (await next_message(fast))["event"]["id"] == published[-1].id
                    if await _dropped(client) > dropped_before:
                        break
                after = await events.publish(subject, type="order.fulfilled")
                assert (await next_message(fast))["event"]["id"] == after.id
            slow_code = await close_code_of(slow, within=15)

    assert len(published) < 200, "the slow socket was never dropped"
    assert slow_code == 1013


async def _dropped(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return metric_value(
        text,
        "live_event_connections_dropped_total",
        transport="websocket",
        reason="slow_consumer",
    )


async def test_shutdown_closes_sockets_with_1012_and_refuses_new_streams(
    gateway: Gateway, tokens: Tokens
) -> None:
    token = tokens.issue()
    async with connect(gateway.ws_url, additional_headers=bearer(token)) as ws:
        await asyncio.sleep(0.05)
        gateway.app.state.readiness.begin_shutdown()
        code = await close_code_of(ws)
    async with gateway.client() as client:
        refused = await client.get("/api/v1/events", headers=bearer(token))
        ready = await client.get("/health/ready")

    assert code == 1012
    assert refused.status_code == 503
    assert ready.status_code == 503
