"""The worker's service token: client credentials at users, cached until shortly before expiry.

Concurrent jobs share one token and one fetch (an `asyncio.Lock`); a token
that orders refuses (401) is replaced once, by whichever caller notices
first, and the others reuse the new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from chassis.http import UpstreamClient
from worker.problems import problem_detail

logger = structlog.get_logger("worker.tokens")

CLIENT_CREDENTIALS_PATH = "/api/v1/auth/token"


class TokenUnavailable(Exception):
    """users did not give a token: it refused the credentials or answered with an error."""

    def __init__(self, status: int, detail: str) -> None:
        # Both in args: arq pickles a failed job's exception, and unpickling calls cls(*args).
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"service token unavailable ({self.status}): {self.detail}"


class _TokenAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    expires_in: float = Field(gt=0)
    scope: str = ""


class ServiceTokenProvider:
    """Bearer tokens for calls to other services, fetched from users' token endpoint."""

    def __init__(
        self,
        users: UpstreamClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        refresh_margin_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = users
        self._client_id = client_id
        self._client_secret = client_secret
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._fetched_at: float | None = None
        self._refresh_after = 0.0

    async def token(self) -> str:
        """A token that is good for at least the refresh margin, fetched if needed."""
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock:
            # Another caller may have fetched one while this one waited for the lock.
            cached = self._fresh()
            if cached is not None:
                return cached
            return await self._fetch()

    async def refresh(self, rejected: str) -> str:
        """A token other than `rejected` (which an upstream refused), fetching one at most once."""
        async with self._lock:
            current = self._fresh()
            if current is not None and current != rejected:
                return current
            self._token = None
            return await self._fetch()

    def snapshot(self) -> dict[str, Any]:
        """What readiness shows; never the token itself."""
        now = self._clock()
        return {
            "client_id": self._client_id,
            "last_success_seconds_ago": (
                None if self._fetched_at is None else round(now - self._fetched_at, 3)
            ),
            "expires_in_seconds": (
                None if self._token is None else round(max(self._expires_at - now, 0.0), 3)
            ),
        }

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_after:
            return self._token
        return None

    async def _fetch(self) -> str:
        response = await self._users.post(
            CLIENT_CREDENTIALS_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(),
            },
            # Issuing a token changes nothing that a second request could duplicate.
            idempotent=True,
        )
        if response.status_code != 200:
            logger.warning(
                "service_token_refused", client_id=self._client_id, status=response.status_code
            )
            raise TokenUnavailable(response.status_code, problem_detail(response))
        try:
            answer = _TokenAnswer.model_validate_json(response.content)
        except ValidationError:
            raise TokenUnavailable(response.status_code, "malformed token answer") from None
        now = self._clock()
        self._token = answer.access_token
        self._fetched_at = now
        self._expires_at = now + answer.expires_in
        # A token shorter-lived than the margin is still used once rather than never.
        self._refresh_after = now + max(answer.expires_in - self._margin, 0.0)
        logger.info(
            "service_token_fetched",
            client_id=self._client_id,
            expires_in=answer.expires_in,
            scope=answer.scope,
        )
        return answer.access_token
