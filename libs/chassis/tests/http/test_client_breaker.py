"""UpstreamClient: the circuit breaker, consulted and fed on every attempt."""

from __future__ import annotations

import httpx
import pytest
from client_metrics import requests_counted
from prometheus_client import REGISTRY

from chassis.http import (
    BreakerState,
    CircuitOpenError,
    UpstreamUnavailable,
)


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


async def test_shed_answers_do_not_trip_the_breaker(scripted, make_upstream_client):
    # A healthy upstream refusing fast at its concurrency limit is no reason to stop calling it.
    shed = httpx.Response(503, headers={"Retry-After": "1", "X-Load-Shed": "concurrency"})
    upstream = scripted(shed)
    client = make_upstream_client(upstream, retry_attempts=1, breaker_failure_threshold=2)

    statuses = [(await client.get("/things")).status_code for _ in range(4)]

    assert statuses == [503] * 4
    assert client.breaker.state is BreakerState.CLOSED
