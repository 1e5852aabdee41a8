"""Builder step: a `TokenVerifier` on ``app.state.token_verifier`` and a ``jwks`` readiness check.

The check is not critical: while the issuer is down the stale key set still
verifies tokens, and taking every pod out of the load balancer because the
identity service blinked would turn its outage into ours. It reports the
state (fresh, stale, empty, expired) and age of the key set, and warms the
cache so the first request does not pay for the fetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from fastapi import FastAPI

from chassis.auth.jwks import JWKSCache, KeySetUnavailable
from chassis.auth.verify import TokenVerifier

if TYPE_CHECKING:
    from chassis.builder import AppBuilder
    from chassis.settings import AuthSettings

logger = structlog.get_logger("chassis.auth")

RESOURCE_NAME = "token_verifier"
READINESS_CHECK = "jwks"


def setup_auth(builder: AppBuilder) -> None:
    """Add the token verifier resource and its readiness check when ``settings.auth.enabled``."""
    settings = builder.settings.auth
    if not settings.enabled:
        logger.info("auth_disabled", service=builder.settings.service_name)
        return
    builder.add_resource(RESOURCE_NAME, lambda app: open_token_verifier(settings))
    builder.readiness.add(
        READINESS_CHECK,
        check_jwks,
        timeout=settings.jwks_timeout_seconds + 1.0,
        critical=False,
    )


@asynccontextmanager
async def open_token_verifier(
    settings: AuthSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[TokenVerifier]:
    """A verifier with its own HTTP client to the JWKS URL, closed on exit."""
    if not (settings.jwks_url and settings.issuer and settings.audience):
        raise ValueError("auth needs jwks_url, issuer and audience")
    timeout = httpx.Timeout(settings.jwks_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
        jwks = JWKSCache(
            settings.jwks_url,
            http_client=client,
            algorithms=settings.algorithms,
            ttl_seconds=settings.jwks_ttl_seconds,
            stale_seconds=settings.jwks_stale_seconds,
            min_refresh_interval_seconds=settings.jwks_min_refresh_interval_seconds,
            timeout_seconds=settings.jwks_timeout_seconds,
        )
        yield TokenVerifier(
            jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            algorithms=settings.algorithms,
            leeway_seconds=settings.leeway_seconds,
        )


async def check_jwks(app: FastAPI) -> Mapping[str, Any]:
    """Readiness: refresh the key set if due, then report it; raises when none is usable."""
    verifier: TokenVerifier = app.state.token_verifier
    await verifier.jwks.refresh_if_expired()
    status = verifier.jwks.status()
    if not status.usable:
        raise KeySetUnavailable(status.state)
    return status.as_dict()
