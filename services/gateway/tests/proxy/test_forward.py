"""The streaming proxy over real sockets: what crosses it each way, and in how much memory."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_testing import CHUNK, MIB, Gateway, GatewayFactory, Tokens, UsersState, bearer

from gateway.proxy.response import UpstreamResponse

TWENTY_MB = 20 * MIB
# Far below the 20 MB moved: anything that buffered a body would blow through it.
MEMORY_CEILING = 6 * MIB


def from_address(address: str) -> httpx.AsyncHTTPTransport:
    """A client transport whose connections come from `address` (any 127/8 is local)."""
    return httpx.AsyncHTTPTransport(local_address=address)


async def upload_pieces(total: int) -> AsyncIterator[bytes]:
    piece = b"\x01" * CHUNK
    for _ in range(total // CHUNK):
        yield piece


async def test_body_status_and_headers_cross_both_ways(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    body = b'{"hello": "upstream"}'
    async with gateway.client() as client:
        response = await client.post(
            "/api/v1/users/echo/things",
            content=body,
            headers={**bearer(tokens.issue()), "Content-Type": "application/json", "X-Custom": "1"},
        )

    assert response.status_code == 200
    assert response.json() == {
        "method": "POST",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert response.headers["x-upstream"] == "users"
    assert response.headers["set-cookie"] == "a=1"
    assert response.headers["content-type"] == "application/json"
    seen = users_state.recorder.last()
    assert seen.header("x-custom") == "1"
    assert seen.header("content-type") == "application/json"
    assert seen.header("content-length") == str(len(body))


async def test_request_id_and_trace_context_reach_the_upstream(
    start_gateway: GatewayFactory,
    tokens: Tokens,
    users_state: UsersState,
    span_exporter: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tracing on, as in production: the caller's trace continues through the gateway.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    with start_gateway() as gateway:
        # urllib, not httpx: once any test has turned tracing on, httpx is instrumented
        # process-wide and would replace this traceparent with its own client span.
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
            gateway.url + "/api/v1/users/echo/x",
            headers={
                **bearer(tokens.issue()),
                "X-Request-ID": "client-chosen-id",
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
        )
        response = await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)

    seen = users_state.recorder.last()
    assert response.headers["x-request-id"] == "client-chosen-id"
    assert seen.header_values("x-request-id") == ["client-chosen-id"]
    assert (seen.header("traceparent") or "").split("-")[1] == trace_id
    (server_span,) = [
        span
        for span in span_exporter.get_finished_spans()
        if span.name == "GET /api/v1/users/{path}"
    ]
    assert format(server_span.context.trace_id, "032x") == trace_id
    assert format(server_span.parent.span_id, "016x") == caller_span


async def test_a_generated_request_id_is_the_one_the_upstream_gets(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/api/v1/users/echo/x",
            headers={**bearer(tokens.issue()), "X-Request-ID": "bad id\twith tab"},
        )

    assert response.headers["x-request-id"] != "bad id\twith tab"
    assert users_state.recorder.last().header_values("x-request-id") == [
        response.headers["x-request-id"]
    ]


async def test_hop_by_hop_headers_are_dropped_towards_the_upstream(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        await client.get(
            "/api/v1/users/echo/x",
            headers={
                **bearer(tokens.issue()),
                "Connection": "keep-alive, X-Client-Hop",
                "X-Client-Hop": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "Upgrade": "h2c",
            },
        )

    names = {name for name, _ in users_state.recorder.last().headers}
    assert not names & {"x-client-hop", "keep-alive", "te", "proxy-authorization", "upgrade"}
    assert "authorization" in names


async def test_hop_by_hop_and_server_headers_are_dropped_towards_the_client(
    gateway: Gateway, tokens: Tokens
) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/users/hop", headers=bearer(tokens.issue()))

    assert response.status_code == 200
    assert response.headers["x-kept"] == "yes"
    for dropped in ("keep-alive", "x-hop-secret", "proxy-authenticate"):
        assert dropped not in response.headers
    assert response.headers.get_list("set-cookie") == ["first=1", "second=2"]
    assert len(response.headers.get_list("server")) <= 1
    assert len(response.headers.get_list("date")) <= 1
    # The gateway's own rate-limit headers, not the upstream's.
    assert response.headers.get_list("ratelimit-limit") == [
        str(gateway.settings.rate_limit.requests)
    ]


async def test_a_location_into_the_upstream_becomes_relative(
    gateway: Gateway, tokens: Tokens
) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/users/hop", headers=bearer(tokens.issue()))

    assert response.headers["location"] == "/api/v1/users/me"


async def test_forwarded_headers_name_the_client_the_gateway_resolved(
    start_gateway, tokens: Tokens, users_state: UsersState
) -> None:
    # 127.0.0.2 is trusted by the chassis setting only (uvicorn itself trusts 127.0.0.1).
    with start_gateway(security={"trusted_proxies": ["127.0.0.2/32"]}) as gateway:
        async with gateway.client(transport=from_address("127.0.0.2")) as client:
            await client.get(
                "/api/v1/users/echo/x",
                headers={
                    **bearer(tokens.issue()),
                    "X-Forwarded-For": "198.51.100.1, 203.0.113.7",
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "evil.example",
                    "Host": "api.example.com",
                },
            )

    seen = users_state.recorder.last()
    assert seen.header_values("x-forwarded-for") == ["203.0.113.7"]
    assert seen.header_values("x-forwarded-proto") == ["https"]
    assert seen.header_values("x-forwarded-host") == ["api.example.com"]


async def test_forwarding_headers_from_an_untrusted_client_are_replaced(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with gateway.client(transport=from_address("127.0.0.2")) as client:
        await client.get(
            "/api/v1/users/echo/x",
            headers={
                **bearer(tokens.issue()),
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Proto": "https",
                "Forwarded": "for=203.0.113.7",
                "X-Real-IP": "203.0.113.7",
            },
        )

    seen = users_state.recorder.last()
    assert seen.header_values("x-forwarded-for") == ["127.0.0.2"]
    assert seen.header_values("x-forwarded-proto") == ["http"]
    assert seen.header("forwarded") is None
    assert seen.header("x-real-ip") is None


async def test_path_encoding_and_query_reach_the_upstream_unchanged(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/api/v1/users/echo/a%2Fb%20c?x=1&y=%26&x=2", headers=bearer(tokens.issue())
        )

    assert response.status_code == 200
    seen = users_state.recorder.last()
    assert seen.raw_path == "/api/v1/users/echo/a%2Fb%20c"
    assert seen.query == "x=1&y=%26&x=2"


async def test_20_mb_upload_streams_to_the_upstream_in_flat_memory(
    start_gateway, tokens: Tokens
) -> None:
    with start_gateway(server={"max_body_bytes": 2 * TWENTY_MB}) as gateway:
        async with gateway.client() as client:
            tracemalloc.start()
            try:
                response = await client.post(
                    "/api/v1/users/echo/upload",
                    content=upload_pieces(TWENTY_MB),
                    headers=bearer(tokens.issue()),
                )
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    assert response.status_code == 200
    assert response.json()["size"] == TWENTY_MB
    assert peak < MEMORY_CEILING, f"peak traced memory {peak / MIB:.1f} MiB"


async def test_20_mb_download_streams_back_with_its_length_in_flat_memory(
    gateway: Gateway, tokens: Tokens
) -> None:
    received = 0
    async with gateway.client() as client:
        tracemalloc.start()
        try:
            async with client.stream(
                "GET", f"/api/v1/users/blob?size={TWENTY_MB}", headers=bearer(tokens.issue())
            ) as response:
                async for piece in response.aiter_raw():
                    received += len(piece)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert response.status_code == 200
    assert response.headers["content-length"] == str(TWENTY_MB)
    assert received == TWENTY_MB
    assert peak < MEMORY_CEILING, f"peak traced memory {peak / MIB:.1f} MiB"


async def test_a_chunked_answer_is_relayed_without_a_length(
    gateway: Gateway, tokens: Tokens
) -> None:
    async with gateway.client() as client:
        response = await client.get(
            f"/api/v1/users/blob?size={3 * CHUNK + 5}&chunked=true", headers=bearer(tokens.issue())
        )

    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert len(response.content) == 3 * CHUNK + 5


async def test_upstream_stream_is_released_when_the_client_goes_away(
    gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with (
        gateway.client() as client,
        client.stream("GET", "/api/v1/users/endless", headers=bearer(tokens.issue())) as response,
    ):
        async for _ in response.aiter_raw():
            break

    assert response.status_code == 200
    released = await asyncio.to_thread(users_state.endless_closed.wait, 5)
    assert released


async def test_a_body_over_the_gateway_limit_is_refused_with_413(
    start_gateway, tokens: Tokens, users_state: UsersState
) -> None:
    with start_gateway(server={"max_body_bytes": 1000}) as gateway:
        async with gateway.client() as client:
            response = await client.post(
                "/api/v1/users/echo/too-big",
                content=upload_pieces(4 * CHUNK),
                headers=bearer(tokens.issue()),
            )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_every_method_is_relayed(
    method: str, gateway: Gateway, tokens: Tokens, users_state: UsersState
) -> None:
    async with gateway.client() as client:
        response = await client.request(
            method, "/api/v1/users/echo/m", content=b"x", headers=bearer(tokens.issue())
        )

    assert response.status_code == 200
    assert response.json()["method"] == method
    assert users_state.recorder.last().method == method


async def test_a_client_gone_mid_download_is_not_an_error() -> None:
    # Servers on ASGI spec 2.4 raise from send() once the client has gone.
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    async def receive() -> dict[str, object]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client gone")

    upstream = httpx.Response(200, stream=httpx.ByteStream(b"x" * 10))
    response = UpstreamResponse(upstream, upstream_name="users", headers=[], close=close)
    await response({"type": "http"}, receive, send)

    assert closed == [True]
