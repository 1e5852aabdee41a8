"""Per-account login throttle: at most N login attempts per account per window, from any IP.

The per-IP rule on the login path (the chassis rate-limit middleware) stops one
address from guessing many passwords; it does nothing against many addresses
guessing one account's password. This counts attempts per account *before* the
password is checked, so a throttled account answers 429 whether the guess is
right or wrong and the answer never singles out the correct password. Every
attempt counts, a successful one too, because the check has to come first and
the sliding log admits-and-records in one atomic step (no separate "peek"); a
person logs in a few times per window at most.

Unknown emails are counted like known ones, so the throttle tells nothing about
which accounts exist, and keys are a SHA-256 of the normalised email, so the
backend holds no addresses. The backend is the service's rate-limit backend
(Redis shared by every replica, or memory for one process); when it is down,
``rate_limit.fail_open`` decides, as it does for the middleware.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from chassis.errors import ServiceUnavailable, TooManyRequests
from chassis.metrics.registry import RATE_LIMIT_BACKEND_ERRORS, RATE_LIMIT_REJECTIONS
from chassis.middleware.ratelimit import (
    RateLimitBackend,
    RateLimitBackendError,
    build_rate_limiter,
)
from users.settings import UsersSettings

if TYPE_CHECKING:
    from chassis.builder import AppBuilder

logger = structlog.get_logger("users.auth")

RESOURCE_NAME = "login_throttle"
#: The ``rule`` label of the rejection metric, next to the middleware's path rules.
RULE_LABEL = "login-account"
KEY_PREFIX = "login-account|"
#: Retry-After of the 503 when the backend is down and the policy is fail closed.
BACKEND_DOWN_RETRY_AFTER_SECONDS = 5


class LoginThrottle:
    """Admit or refuse one login attempt for an account; see the module docstring."""

    def __init__(
        self,
        backend: RateLimitBackend | None,
        *,
        limit: int,
        window_seconds: float,
        fail_open: bool,
        service: str = "users",
    ) -> None:
        self._backend = backend
        self._limit = limit
        self._window_seconds = window_seconds
        self._fail_open = fail_open
        self._rejections = RATE_LIMIT_REJECTIONS.labels(service=service, rule=RULE_LABEL)
        self._backend_errors = RATE_LIMIT_BACKEND_ERRORS.labels(
            service=service, policy="open" if fail_open else "closed"
        )

    async def check(self, email: str) -> None:
        """Count an attempt for the (normalised) `email`; 429 once over the limit."""
        if self._backend is None:
            return
        key = KEY_PREFIX + hashlib.sha256(email.encode()).hexdigest()
        try:
            result = await self._backend.hit(
                key, limit=self._limit, window_seconds=self._window_seconds
            )
        except RateLimitBackendError as exc:
            self._backend_errors.inc()
            logger.warning("login_throttle_unavailable", error=str(exc.__cause__ or exc))
            if self._fail_open:
                return
            raise ServiceUnavailable(
                "Login is unavailable right now; retry later.",
                headers={"Retry-After": str(BACKEND_DOWN_RETRY_AFTER_SECONDS)},
            ) from None
        if not result.allowed:
            self._rejections.inc()
            retry_after = max(math.ceil(result.retry_after_seconds), 1)
            # No email in the log line: an attacker's guesses at addresses are not ours to keep.
            logger.info("login_throttled", reason="account", retry_after=retry_after)
            raise TooManyRequests(
                f"Too many login attempts for this account; retry in {retry_after} s.",
                retry_after=retry_after,
            )


def setup_login_throttle(builder: AppBuilder, settings: UsersSettings) -> None:
    """Resource ``login_throttle`` over the rate-limit backend (off with rate limits off)."""

    @asynccontextmanager
    async def login_throttle(app: FastAPI) -> AsyncIterator[LoginThrottle]:
        backend: RateLimitBackend | None = None
        if settings.rate_limit.enabled:

            def redis_client() -> Redis:
                client: Redis = app.state.redis
                return client

            backend = build_rate_limiter(settings, redis_client)
        yield LoginThrottle(
            backend,
            limit=settings.login_limit.account_requests,
            window_seconds=settings.login_limit.account_window_seconds,
            fail_open=settings.rate_limit.fail_open,
            service=settings.service_name,
        )

    builder.add_resource(RESOURCE_NAME, login_throttle)
