"""The per-account login throttle when its backend is unreachable: fail open or closed."""

from __future__ import annotations

import pytest

from chassis.errors import ServiceUnavailable
from chassis.middleware.ratelimit import RateLimitBackendError, RateLimitResult
from users.auth.throttle import LoginThrottle


class UnreachableBackend:
    async def hit(
        self, key: str, *, limit: int, window_seconds: float, now: float | None = None
    ) -> RateLimitResult:
        raise RateLimitBackendError("rate-limit backend unavailable: connection refused")


async def test_an_unreachable_backend_lets_logins_through_when_failing_open() -> None:
    throttle = LoginThrottle(UnreachableBackend(), limit=1, window_seconds=60, fail_open=True)

    await throttle.check("alice@example.com")
    await throttle.check("alice@example.com")


async def test_an_unreachable_backend_refuses_logins_with_503_when_failing_closed() -> None:
    throttle = LoginThrottle(UnreachableBackend(), limit=1, window_seconds=60, fail_open=False)

    with pytest.raises(ServiceUnavailable) as refused:
        await throttle.check("alice@example.com")

    assert refused.value.headers["Retry-After"] == "5"
