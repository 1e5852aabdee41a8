"""Server-Sent Events over a real socket, fed by events published to the real Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
from gateway_testing import (
    Events,
    Gateway,
    Tokens,
    bearer,
    metric_value,
    next_sse,
    next_sse_event,
)


async def test_a_caller_receives_only_their_own_events(
    gateway: Gateway, tokens: Tokens, events: Events
) -> None:
    alice, bob = tokens.issue(), tokens.issue()
    async with (
        gateway.client() as client,
        client.stream("GET", "/api/v1/events", headers=bearer(alice)) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        lines = stream.aiter_lines()
        await events.publish(tokens.subject_of(bob), type="order.created")
        mine = await events.publish(tokens.subject_of(alice), type="order.confirmed")

        frame = await next_sse_event(lines)

    assert frame.id == mine.id
    assert frame.event == "order.confirmed"
    data = json.loads(frame.data or "")
    assert data["id"] == mine.id
    assert data["type"] == "order.confirmed"
    assert data["payload"]["order"]["owner_id"] == tokens.subject_of(alice)
    assert "subject" not in data


async def test_an_idle_stream_gets_heartbeats(start_gateway, tokens: Tokens) -> None:
    with start_gateway(events={"heartbeat_seconds": 0.1}) as gateway:
        async with (
            gateway.client() as client,
            client.stream("GET", "/api/v1/events", headers=bearer(tokens.issue())) as stream,
        ):
            lines = stream.aiter_lines()
            first = await next_sse(lines)
            heartbeat = await next_sse(lines)

    assert first.retry == "3000"
    assert heartbeat.comments == ["ping"]


async def test_a_redelivered_event_reaches_the_client_once(
    gateway: Gateway, tokens: Tokens, events: Events
) -> None:
    token = tokens.issue()
    subject = tokens.subject_of(token)
    async with (
        gateway.client() as client,
        client.stream("GET", "/api/v1/events", headers=bearer(token)) as stream,
    ):
        lines = stream.aiter_lines()
        first = await events.publish(subject, event_id=str(uuid.uuid4()))
        await events.publish(subject, event_id=first.id)
        second = await events.publish(subject, type="order.fulfilled")

        received = [await next_sse_event(lines), await next_sse_event(lines)]

    assert [frame.id for frame in received] == [first.id, second.id]


async def test_the_stream_needs_a_token(gateway: Gateway) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/events")

    assert response.status_code == 401


async def test_a_caller_may_hold_only_so_many_streams(start_gateway, tokens: Tokens) -> None:
    token = tokens.issue()
    with start_gateway(events={"max_connections_per_subject": 1}) as gateway:
        async with gateway.client() as client:
            async with client.stream("GET", "/api/v1/events", headers=bearer(token)) as first:
                second = await client.get("/api/v1/events", headers=bearer(token))
            third_status = await _status_of_new_stream(client, token)

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "5"
    assert third_status == 200


async def _status_of_new_stream(client: httpx.AsyncClient, token: str) -> int:
    # The first stream's slot is freed once the gateway notices it closed.
    for _ in range(50):
        async with client.stream("GET", "/api/v1/events", headers=bearer(token)) as stream:
            if stream.status_code == 200:
                return 200
        await asyncio.sleep(0.02)
    return stream.status_code


async def test_a_client_that_stops_reading_is_dropped_while_others_keep_receiving(
    start_gateway, tokens: Tokens, events: Events
) -> None:
    token = tokens.issue()
    subject = tokens.subject_of(token)
    payload = {"blob": "x" * 200_000}
    with start_gateway(events={"queue_size": 4, "close_timeout_seconds": 0.2}) as gateway:
        slow = await _open_unread_stream(gateway, token)
        async with (
            gateway.client() as client,
            client.stream("GET", "/api/v1/events", headers=bearer(token)) as fast,
        ):
            lines = fast.aiter_lines()
            await next_sse(lines)  # retry: hint, the stream is registered
            dropped_before = await _dropped(client)
            published = []
            for _ in range(200):
                published.append(await events.publish(subject, payload=payload))
                assert (await next_sse_event(lines)).id == published[-1].id
                if await _dropped(client) > dropped_before:
                    break
            dropped_after = await _dropped(client)
            after = await events.publish(subject, type="order.fulfilled")
            assert (await next_sse_event(lines)).id == after.id
        tail = await asyncio.to_thread(_read_to_end, slow)

    assert dropped_after == dropped_before + 1, "the slow client was never dropped"
    # The slow client gets what was buffered (whole frames), then the connection ends.
    assert tail.endswith((b"\n\n\r\n", b"\n\n\r\n0\r\n\r\n")), tail


async def _dropped(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return metric_value(
        text, "live_event_connections_dropped_total", transport="sse", reason="slow_consumer"
    )


async def _open_unread_stream(gateway: Gateway, token: str) -> socket.socket:
    """An SSE client with a tiny receive window that never reads after the headers."""
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    request = (
        f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    tail = b""
    with sock:
        while chunk := sock.recv(1 << 20):
            tail = (tail + chunk)[-64:]
    return tail
