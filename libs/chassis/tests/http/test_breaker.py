"""The circuit breaker on its own: states, probes, metrics, with a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from chassis.http import BreakerState, CircuitBreaker, CircuitOpenError


class BoomError(Exception):
    pass


def make_breaker(name, clock, *, threshold=3, open_seconds=30.0, probes=1) -> CircuitBreaker:
    return CircuitBreaker(
        name,
        failure_threshold=threshold,
        open_seconds=open_seconds,
        half_open_max_calls=probes,
        clock=clock,
    )


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(BoomError):
            async with breaker.guard():
                raise BoomError


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker.guard():
        pass


async def test_breaker_opens_after_threshold_consecutive_failures(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=3)

    await fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker)

    assert breaker.state is BreakerState.OPEN
    assert breaker.failures == 3


async def test_a_success_resets_the_consecutive_failure_count(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=3)

    await fail(breaker, 2)
    await succeed(breaker)
    await fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 2


async def test_open_breaker_refuses_without_running_the_call(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=30)
    await fail(breaker)
    clock.advance(10)
    ran = False

    with pytest.raises(CircuitOpenError) as refused:
        async with breaker.guard():
            ran = True

    assert not ran
    assert refused.value.retry_in == pytest.approx(20)
    assert refused.value.status_code == 503
    assert refused.value.headers["Retry-After"] == "20"
    assert upstream_name in (refused.value.detail or "")


async def test_breaker_half_opens_after_open_seconds_and_closes_on_probe_success(
    upstream_name, clock
):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=30)
    await fail(breaker)
    clock.advance(30)

    async with breaker.guard():
        assert breaker.state is BreakerState.HALF_OPEN

    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


async def test_half_open_probe_failure_reopens_and_restarts_the_timer(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=30)
    await fail(breaker)
    clock.advance(31)

    await fail(breaker)

    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(30)
    clock.advance(29)
    with pytest.raises(CircuitOpenError):
        await succeed(breaker)


async def test_half_open_lets_only_max_calls_probe_at_once(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=5, probes=2)
    await fail(breaker)
    clock.advance(5)
    release = asyncio.Event()
    inside = [asyncio.Event(), asyncio.Event()]

    async def probe(entered: asyncio.Event) -> None:
        async with breaker.guard():
            entered.set()
            await release.wait()

    probes = [asyncio.create_task(probe(entered)) for entered in inside]
    for entered in inside:
        await entered.wait()
    with pytest.raises(CircuitOpenError) as refused:
        await succeed(breaker)
    release.set()
    await asyncio.gather(*probes)

    assert refused.value.retry_in == 0
    assert refused.value.headers["Retry-After"] == "1"
    assert breaker.state is BreakerState.CLOSED


async def test_failures_the_caller_does_not_count_leave_the_breaker_alone(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1)

    with pytest.raises(BoomError):
        async with breaker.guard(is_failure=lambda exc: False):
            raise BoomError

    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


async def test_a_cancelled_probe_frees_its_slot_without_deciding(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=5)
    await fail(breaker)
    clock.advance(5)

    with pytest.raises(asyncio.CancelledError):
        async with breaker.guard():
            raise asyncio.CancelledError

    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


async def test_an_explicitly_recorded_failure_counts_even_without_an_exception(
    upstream_name, clock
):
    breaker = make_breaker(upstream_name, clock, threshold=1)

    async with breaker.guard() as call:
        call.record_failure()

    assert breaker.state is BreakerState.OPEN


async def test_an_explicitly_recorded_success_wins_over_an_exception(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1)

    async def call_that_succeeds_then_raises() -> None:
        async with breaker.guard() as call:
            call.record_success()
            raise BoomError

    with pytest.raises(BoomError):
        await call_that_succeeds_then_raises()

    assert breaker.state is BreakerState.CLOSED


async def test_outcome_of_a_call_started_before_the_breaker_opened_is_ignored(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1)
    slow = breaker.guard()
    await slow.__aenter__()

    await fail(breaker)
    await slow.__aexit__(None, None, None)

    assert breaker.state is BreakerState.OPEN


async def test_failures_of_calls_that_ran_while_another_succeeded_are_not_counted(
    upstream_name, clock
):
    # Requests queued together behind an overload time out together; the upstream
    # answered meanwhile, so their timeouts must not open the breaker.
    breaker = make_breaker(upstream_name, clock, threshold=2)
    queued = [breaker.guard() for _ in range(3)]
    for call in queued:
        await call.__aenter__()

    await succeed(breaker)
    for call in queued:
        call.record_failure()
        await call.__aexit__(None, None, None)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


async def test_calls_started_after_the_last_success_still_open_the_breaker(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=2)
    in_flight_when_it_died = breaker.guard()
    await in_flight_when_it_died.__aenter__()
    await succeed(breaker)

    await fail(breaker)
    in_flight_when_it_died.record_failure()
    await in_flight_when_it_died.__aexit__(None, None, None)
    assert breaker.failures == 1
    await fail(breaker)

    assert breaker.state is BreakerState.OPEN


async def test_snapshot_shows_state_failures_age_and_retry_in(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=2, open_seconds=30)
    await fail(breaker)
    assert breaker.snapshot() == {
        "state": "closed",
        "failures": 1,
        "failure_threshold": 2,
        "opened_seconds_ago": None,
        "retry_in_seconds": 0.0,
    }

    await fail(breaker)
    clock.advance(12)

    assert breaker.snapshot() == {
        "state": "open",
        "failures": 2,
        "failure_threshold": 2,
        "opened_seconds_ago": 12.0,
        "retry_in_seconds": 18.0,
    }


async def test_state_gauge_transitions_and_rejections_are_exported(upstream_name, clock):
    breaker = make_breaker(upstream_name, clock, threshold=1, open_seconds=5)
    labels = {"upstream": upstream_name}

    def sample(name: str, **extra: str) -> float | None:
        return REGISTRY.get_sample_value(name, {**labels, **extra})

    assert sample("circuit_breaker_state") == 0
    await fail(breaker)
    assert sample("circuit_breaker_state") == 2
    with pytest.raises(CircuitOpenError):
        await succeed(breaker)
    assert sample("circuit_breaker_rejections_total") == 1

    clock.advance(5)
    async with breaker.guard():
        assert sample("circuit_breaker_state") == 1
    assert sample("circuit_breaker_state") == 0

    for state in ("open", "half_open", "closed"):
        assert sample("circuit_breaker_transitions_total", state=state) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"failure_threshold": 0, "open_seconds": 1},
        {"failure_threshold": 1, "open_seconds": 0},
        {"failure_threshold": 1, "open_seconds": 1, "half_open_max_calls": 0},
    ],
)
def test_nonsense_configuration_is_refused(options):
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("bad", **options)
