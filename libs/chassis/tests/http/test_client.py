"""UpstreamClient: retries, deadline, breaker per attempt, error mapping, metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chassis.http import (
    BreakerState,
    CircuitOpenError,
    UpstreamBadGateway,
    UpstreamClient,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chassis.settings import UpstreamSettings
from chassis.testing.servers import serve_in_thread


def retries(upstream: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_client_retries_total", {"upstream": upstream, "reason": reason}
    )
    return value or 0.0


def requests_counted(upstream: str, method: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_client_requests_total", {"upstream": upstream, "method": method, "outcome": outcome}
    )
    return value or 0.0


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


# --- breaker ----------------------------------------------------------------------


async def test_open_breaker_fails_fast_without_reaching_the_upstream(
    scripted, make_upstream_client, upstream_name
):
    upstream = scripted(503)
    client = make_upstream_client(upstream, retry_attempts=1, breaker_failure_threshold=2)
    for _ in range(2):
        assert (await client.get("/things")).status_code == 503

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/things")

    assert upstream.calls == 2
    assert isinstance(raised.value, CircuitOpenError)
    assert raised.value.status_code == 503
    assert raised.value.headers["Retry-After"] == "30"
    assert requests_counted(upstream_name, "GET", "circuit_open") == 1
    assert REGISTRY.get_sample_value("circuit_breaker_state", {"upstream": upstream_name}) == 2


async def test_open_breaker_is_not_retried(scripted, make_upstream_client, recorded_sleeps):
    upstream = scripted(503)
    client = make_upstream_client(upstream, retry_attempts=5, breaker_failure_threshold=2)

    # The second attempt opens the breaker; the third is refused and ends the call.
    with pytest.raises(CircuitOpenError):
        await client.get("/things")
    assert upstream.calls == 2
    assert len(recorded_sleeps) == 2

    with pytest.raises(CircuitOpenError):
        await client.get("/things")
    assert upstream.calls == 2
    assert len(recorded_sleeps) == 2


async def test_4xx_answers_do_not_trip_the_breaker(scripted, make_upstream_client):
    upstream = scripted(404, 400, 409, 422, 429, 401, 403)
    client = make_upstream_client(upstream, breaker_failure_threshold=2)

    statuses = [(await client.get("/things")).status_code for _ in range(7)]

    assert statuses == [404, 400, 409, 422, 429, 401, 403]
    assert client.breaker.state is BreakerState.CLOSED
    assert client.breaker.failures == 0


async def test_500_answers_trip_the_breaker(scripted, make_upstream_client):
    client = make_upstream_client(scripted(500), breaker_failure_threshold=2)

    for _ in range(2):
        await client.get("/things")

    assert client.breaker.state is BreakerState.OPEN


async def test_breaker_half_opens_after_the_timeout_and_closes_on_success(
    scripted, make_upstream_client, clock
):
    upstream = scripted(503, 503, 200)
    client = make_upstream_client(
        upstream, retry_attempts=1, breaker_failure_threshold=2, breaker_open_seconds=10
    )
    for _ in range(2):
        await client.get("/things")
    with pytest.raises(CircuitOpenError):
        await client.get("/things")

    clock.advance(10)
    response = await client.get("/things")

    assert response.status_code == 200
    assert upstream.calls == 3
    assert client.breaker.state is BreakerState.CLOSED


async def test_half_open_probe_failure_reopens_the_breaker(scripted, make_upstream_client, clock):
    upstream = scripted(httpx.ConnectError("refused"))
    client = make_upstream_client(
        upstream, retry_attempts=1, breaker_failure_threshold=1, breaker_open_seconds=10
    )
    with pytest.raises(UpstreamUnavailable):
        await client.get("/things")
    clock.advance(10)

    with pytest.raises(UpstreamUnavailable) as probe:
        await client.get("/things")
    with pytest.raises(CircuitOpenError):
        await client.get("/things")

    assert not isinstance(probe.value, CircuitOpenError)
    assert upstream.calls == 2
    assert client.breaker.state is BreakerState.OPEN
    assert client.breaker.retry_in() == pytest.approx(10)


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


# --- the rest ---------------------------------------------------------------------


async def test_patch_is_not_retried_unless_marked(scripted, make_upstream_client):
    upstream = scripted(503, 503, 200)
    client = make_upstream_client(upstream)

    first = await client.patch("/things/1", json={})
    second = await client.patch("/things/1", json={}, idempotent=True)

    assert (first.status_code, second.status_code) == (503, 200)
    assert upstream.calls == 3


async def test_unusual_methods_share_one_metric_label(
    scripted, make_upstream_client, upstream_name
):
    client = make_upstream_client(scripted(200))

    await client.request("PROPFIND", "/things")

    assert requests_counted(upstream_name, "OTHER", "200") == 1


async def test_client_uses_the_configured_base_url_and_closes(scripted, upstream_name):
    upstream = scripted(200)
    settings = UpstreamSettings(base_url="http://orders.internal:8002/api")

    async with UpstreamClient(upstream_name, settings, transport=upstream.transport) as client:
        await client.get("/orders")

    assert str(upstream.requests[0].url) == "http://orders.internal:8002/api/orders"
    assert upstream.closed


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_cookie_set_by_the_upstream_never_rides_on_a_later_call(
    upstream_name: str, transport: str
) -> None:
    """One client serves every user: a kept cookie would go out with someone else's call."""

    async def login(request: Request) -> Response:
        response = JSONResponse({"cookie": request.headers.get("cookie")})
        response.set_cookie("session", "alice-secret", path="/")
        return response

    async def whoami(request: Request) -> Response:
        return JSONResponse({"cookie": request.headers.get("cookie")})

    app = Starlette(routes=[Route("/login", login), Route("/whoami", whoami)])
    with serve_in_thread(app) as base_url:
        async with UpstreamClient(
            upstream_name, UpstreamSettings(base_url=base_url, transport=transport)
        ) as client:
            first = await client.get("/login")
            later = await client.get("/whoami")
            own = await client.get("/whoami", cookies={"mine": "1"})

    # The caller still sees the upstream's Set-Cookie; the client kept nothing.
    assert first.headers["set-cookie"].startswith("session=alice-secret")
    assert later.json() == {"cookie": None}
    # A cookie the caller passes goes out with that request only.
    assert own.json() == {"cookie": "mine=1"}


async def test_a_post_after_an_idle_spell_never_reuses_a_connection_the_server_is_closing(
    upstream_name: str,
) -> None:
    """A server closes a connection left idle for its keep-alive timeout. A call that reuses
    it at that moment fails, and a POST is never retried: the gateway answered a signup with
    a 502 so. An expiry below the server's means the client never offers such a connection.
    (aiohttp's pool is the one exposed: httpcore checks that a socket is still quiet before
    reusing it.) Scaled down here to 1 s for the server, 0.8 s for the client; the defaults
    keep the same order (test_the_client_drops_idle_connections_before_our_servers_do)."""

    async def created(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(0.05)  # the first calls overlap, so each opens a connection
        return Response(status_code=201)

    app = Starlette(routes=[Route("/", created, methods=["POST"])])
    server_keep_alive, calls, step = 1, 40, 0.001
    settings = UpstreamSettings(
        base_url="http://unused",
        transport="aiohttp",
        keepalive_expiry_seconds=0.8,
        max_keepalive_connections=calls,
    )
    outcomes: list[int | str] = []
    with serve_in_thread(app, keep_alive_seconds=server_keep_alive) as base_url:
        async with UpstreamClient(
            upstream_name, settings.model_copy(update={"base_url": base_url})
        ) as client:

            async def after_idling(idle_from: float, idle: float) -> int | str:
                await asyncio.sleep(idle_from + idle - time.monotonic())
                try:
                    return (await client.post("/", content=b"{}")).status_code
                except UpstreamBadGateway as exc:
                    return repr(exc)

            for _ in range(4):
                await asyncio.gather(*(client.post("/", content=b"{}") for _ in range(calls)))
                idle_from = time.monotonic()
                # Idle spells spread over the moments the server closes its connections
                # (it starts counting when it sends, a little before the client's clock).
                outcomes += await asyncio.gather(
                    *(
                        after_idling(idle_from, server_keep_alive - 0.03 + i * step)
                        for i in range(calls)
                    )
                )

    assert outcomes == [201] * len(outcomes)


def test_the_client_drops_idle_connections_before_our_servers_do() -> None:
    """The services run uvicorn with its default keep-alive (the images' ``KEEP_ALIVE``)."""
    server_keep_alive = uvicorn.Config(Starlette()).timeout_keep_alive
    expiry = UpstreamSettings(base_url="http://unused").keepalive_expiry_seconds
    assert expiry < server_keep_alive
