"""UpstreamClient: retries, deadline and streaming."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from client_metrics import requests_counted, retries

from chassis.http import (
    BreakerState,
    UpstreamBadGateway,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# --- retries -----------------------------------------------------------------------


async def test_idempotent_get_is_retried_on_503_then_succeeds(
    scripted, make_upstream_client, upstream_name
):
    upstream = scripted(503, 503, 200)
    client = make_upstream_client(upstream, retry_attempts=3)

    response = await client.get("/things")

    assert response.status_code == 200
    assert response.json() == {"attempt": 3}
    assert upstream.calls == 3
    assert retries(upstream_name, "status_503") == 2
    assert requests_counted(upstream_name, "GET", "503") == 2
    assert requests_counted(upstream_name, "GET", "200") == 1


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_are_retried(scripted, make_upstream_client, status):
    upstream = scripted(status, 200)
    client = make_upstream_client(upstream)

    response = await client.get("/things")

    assert response.status_code == 200
    assert upstream.calls == 2


async def test_last_retriable_answer_is_returned_when_attempts_run_out(
    scripted, make_upstream_client
):
    upstream = scripted(503)
    client = make_upstream_client(upstream, retry_attempts=3, breaker_failure_threshold=10)

    response = await client.get("/things")

    assert response.status_code == 503
    assert upstream.calls == 3


async def test_post_is_not_retried(scripted, make_upstream_client):
    upstream = scripted(503, 200)
    client = make_upstream_client(upstream)

    response = await client.post("/things", json={"a": 1})

    assert response.status_code == 503
    assert upstream.calls == 1


async def test_post_marked_idempotent_is_retried(scripted, make_upstream_client):
    upstream = scripted(503, 201)
    client = make_upstream_client(upstream)

    response = await client.post(
        "/things", json={"a": 1}, headers={"Idempotency-Key": "k-1"}, idempotent=True
    )

    assert response.status_code == 201
    assert upstream.calls == 2
    assert [r.content for r in upstream.requests] == [b'{"a":1}', b'{"a":1}']


async def test_get_marked_not_idempotent_is_not_retried(scripted, make_upstream_client):
    upstream = scripted(503, 200)
    client = make_upstream_client(upstream)

    response = await client.get("/things", idempotent=False)

    assert response.status_code == 503
    assert upstream.calls == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
async def test_other_statuses_are_returned_without_retry(scripted, make_upstream_client, status):
    upstream = scripted(status, 200)
    client = make_upstream_client(upstream)

    response = await client.put("/things/1", json={})

    assert response.status_code == status
    assert upstream.calls == 1


async def test_connect_error_is_retried_then_succeeds(
    scripted, make_upstream_client, upstream_name
):
    upstream = scripted(httpx.ConnectError("refused"), 200)
    client = make_upstream_client(upstream)

    response = await client.delete("/things/1")

    assert response.status_code == 200
    assert upstream.calls == 2
    assert retries(upstream_name, "connect_error") == 1


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full")]
)
async def test_timeouts_are_retried(scripted, make_upstream_client, upstream_name, error):
    upstream = scripted(error, 200)
    client = make_upstream_client(upstream)

    response = await client.get("/things")

    assert response.status_code == 200
    assert retries(upstream_name, "timeout") == 1


async def test_connection_dropped_before_answer_is_retried(scripted, make_upstream_client):
    upstream = scripted(httpx.RemoteProtocolError("Server disconnected"), 200)
    client = make_upstream_client(upstream)

    response = await client.get("/things")

    assert response.status_code == 200
    assert upstream.calls == 2


async def test_connect_failure_after_retries_is_a_503_naming_the_upstream(
    scripted, make_upstream_client, upstream_name
):
    upstream = scripted(httpx.ConnectError("refused"))
    client = make_upstream_client(upstream, retry_attempts=3, breaker_failure_threshold=10)

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/things")

    assert upstream.calls == 3
    assert raised.value.status_code == 503
    assert upstream_name in (raised.value.detail or "")
    assert "upstream.internal" not in (raised.value.detail or "")


async def test_a_closed_port_is_a_503_after_retries(
    make_upstream_client, closed_port, upstream_name
):
    client = make_upstream_client(base_url=f"http://127.0.0.1:{closed_port}", retry_attempts=2)

    with pytest.raises(UpstreamUnavailable):
        await client.get("/things")

    assert retries(upstream_name, "connect_error") == 1
    assert requests_counted(upstream_name, "GET", "connect_error") == 2


async def test_read_timeout_after_retries_is_a_504(scripted, make_upstream_client):
    upstream = scripted(httpx.ReadTimeout("slow"))
    client = make_upstream_client(upstream, retry_attempts=2)

    with pytest.raises(UpstreamTimeout) as raised:
        await client.get("/things")

    assert raised.value.status_code == 504
    assert upstream.calls == 2


async def test_broken_answer_to_a_post_is_a_502_without_retry(scripted, make_upstream_client):
    upstream = scripted(httpx.RemoteProtocolError("garbage"), 200)
    client = make_upstream_client(upstream)

    with pytest.raises(UpstreamBadGateway) as raised:
        await client.post("/things", json={})

    assert raised.value.status_code == 502
    assert upstream.calls == 1


async def test_backoff_is_jittered_and_bounded(scripted, make_upstream_client, recorded_sleeps):
    initial, maximum = 0.1, 0.4
    upstream = scripted(503)
    client = make_upstream_client(
        upstream,
        retry_attempts=6,
        retry_backoff_initial_seconds=initial,
        retry_backoff_max_seconds=maximum,
        deadline_seconds=60,
        breaker_failure_threshold=1000,
    )

    for _ in range(10):
        await client.get("/things")

    assert upstream.calls == 60
    assert len(recorded_sleeps) == 50
    for index, wait in enumerate(recorded_sleeps):
        retry_number = index % 5 + 1
        bound = min(maximum, initial * 2 ** (retry_number - 1))
        assert 0 <= wait <= bound
        assert bound == client.retry.backoff_bound(retry_number)
    assert len(set(recorded_sleeps)) > 10


async def test_retry_after_on_503_is_honoured_when_it_fits_the_deadline(
    scripted, make_upstream_client, recorded_sleeps
):
    upstream = scripted(httpx.Response(503, headers={"Retry-After": "2"}), 200)
    client = make_upstream_client(upstream, deadline_seconds=10)

    response = await client.get("/things")

    assert response.status_code == 200
    assert recorded_sleeps == [2.0]


async def test_retry_after_past_the_deadline_returns_the_503_at_once(
    scripted, make_upstream_client, recorded_sleeps
):
    upstream = scripted(httpx.Response(503, headers={"Retry-After": "120"}), 200)
    client = make_upstream_client(upstream, deadline_seconds=5)

    response = await client.get("/things")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "120"
    assert upstream.calls == 1
    assert recorded_sleeps == []


async def test_a_request_with_a_streamed_body_is_not_retried(scripted, make_upstream_client):
    upstream = scripted(503, 200)
    client = make_upstream_client(upstream)

    async def body():
        yield b"chunk-1"
        yield b"chunk-2"

    response = await client.put("/things/1", content=body())

    assert response.status_code == 503
    assert upstream.calls == 1
    assert upstream.requests[0].content == b"chunk-1chunk-2"


# --- deadline ----------------------------------------------------------------------


async def test_deadline_bounds_a_hanging_upstream(scripted, make_upstream_client, upstream_name):
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)  # pragma: no cover - the deadline ends it first

    upstream = scripted(hang)
    client = make_upstream_client(upstream, deadline_seconds=0.2, breaker_failure_threshold=1)
    started = time.perf_counter()

    with pytest.raises(UpstreamTimeout) as raised:
        await client.get("/things")

    assert time.perf_counter() - started < 5
    assert "0.2s" in (raised.value.detail or "")
    assert upstream.calls == 1
    assert requests_counted(upstream_name, "GET", "deadline") == 1
    # A slow upstream is a sick upstream: the deadline counts against the breaker.
    assert client.breaker.state is BreakerState.OPEN


async def test_deadline_stops_retrying_before_a_wait_would_pass_it(scripted, make_upstream_client):
    upstream = scripted(503)
    client = make_upstream_client(
        upstream,
        real_sleep=True,
        retry_attempts=50,
        retry_backoff_initial_seconds=0.05,
        retry_backoff_max_seconds=0.05,
        deadline_seconds=0.3,
        breaker_failure_threshold=1000,
    )
    started = time.perf_counter()

    response = await client.get("/things")

    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert 1 < upstream.calls < 50
    assert elapsed < 0.3 + 1.0


async def test_cancelling_the_caller_does_not_count_against_the_breaker(
    scripted, make_upstream_client
):
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(30)
        return httpx.Response(200)  # pragma: no cover - cancelled first

    client = make_upstream_client(scripted(hang), breaker_failure_threshold=1)
    task = asyncio.create_task(client.get("/things"))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.breaker.state is BreakerState.CLOSED


# --- streaming --------------------------------------------------------------------


async def test_stream_yields_the_body_unread_and_closes_it(scripted, make_upstream_client):
    async def chunks_of_body(request: httpx.Request) -> httpx.Response:
        async def body():
            for part in (b"01234", b"56789"):
                yield part

        return httpx.Response(200, content=body())

    client = make_upstream_client(scripted(chunks_of_body))

    async with client.stream("GET", "/big") as response:
        assert not response.is_stream_consumed
        chunks = [chunk async for chunk in response.aiter_bytes()]

    assert b"".join(chunks) == b"0123456789"
    assert response.is_closed


async def test_stream_is_retried_on_503_before_the_body(scripted, make_upstream_client):
    upstream = scripted(503, httpx.Response(200, content=b"ok"))
    client = make_upstream_client(upstream)

    async with client.stream("GET", "/big") as response:
        body = await response.aread()

    assert body == b"ok"
    assert upstream.calls == 2


async def test_stream_with_a_streamed_body_is_not_retried(scripted, make_upstream_client):
    upstream = scripted(503, 200)
    client = make_upstream_client(upstream)

    async def body():
        yield b"payload"

    async with client.stream("PUT", "/things/1", content=body()) as response:
        assert response.status_code == 503

    assert upstream.calls == 1
