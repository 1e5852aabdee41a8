"""Builder step: a `TokenVerifier` on ``app.state.token_verifier`` and a ``jwks`` readiness check.

The check is not critical: while the issuer is down the stale key set still
verifies tokens, and taking every pod out of the load balancer because the
identity service blinked would turn its outage into ours. It reports the
state (fresh, stale, empty, expired) and age of the key set, and warms the
cache so the first request does not pay for the fetch.

An issuer that verifies its own tokens passes ``key_loader``: the verifier then
reads the key set from the issuer's own key store (see `chassis.auth.jwks.JWKSLoader`)
with the same caching rules, instead of fetching its own JWKS over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from fastapi import FastAPI

from chassis.auth.jwks import JWKSCache, JWKSLoader, KeySetUnavailable
from chassis.auth.verify import TokenVerifier

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder
    from chassis.settings import AuthSettings

logger = structlog.get_logger("chassis.auth")

RESOURCE_NAME = "token_verifier"
READINESS_CHECK = "jwks"

#: Given the app (its earlier resources open), returns where the key set comes from.
KeyLoaderFactory = Callable[[FastAPI], JWKSLoader]


def setup_auth(builder: Builder, *, key_loader: KeyLoaderFactory | None = None) -> None:
    """Add the token verifier resource and its readiness check when ``settings.auth.enabled``.

    With `key_loader` the key set comes from ``key_loader(app)`` (called once the
    resources registered before this step are open) rather than from ``jwks_url``.
    """
    settings = builder.settings.auth
    if not settings.enabled:
        logger.info("auth_disabled", service=builder.settings.service_name)
        return

    def verifier(app: FastAPI) -> AbstractAsyncContextManager[TokenVerifier]:
        loader = key_loader(app) if key_loader is not None else None
        return open_token_verifier(settings, loader=loader)

    builder.add_resource(RESOURCE_NAME, verifier)
    builder.readiness.add(
        READINESS_CHECK,
        check_jwks,
        timeout=settings.jwks_timeout_seconds + 1.0,
        critical=False,
    )


@asynccontextmanager
async def open_token_verifier(
    settings: AuthSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    loader: JWKSLoader | None = None,
) -> AsyncIterator[TokenVerifier]:
    """A verifier with its own HTTP client to the JWKS URL (or over `loader`), closed on exit."""
    issuer, audience = settings.issuer, settings.audience
    if not (settings.jwks_url and issuer and audience):
        raise ValueError("auth needs jwks_url, issuer and audience")
    options: dict[str, Any] = {
        "algorithms": settings.algorithms,
        "ttl_seconds": settings.jwks_ttl_seconds,
        "stale_seconds": settings.jwks_stale_seconds,
        "min_refresh_interval_seconds": settings.jwks_min_refresh_interval_seconds,
        "timeout_seconds": settings.jwks_timeout_seconds,
    }
    async with AsyncExitStack() as stack:
        if loader is not None:
            jwks = JWKSCache(settings.jwks_url, loader=loader, **options)
        else:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(settings.jwks_timeout_seconds), transport=transport
                )
            )
            jwks = JWKSCache(settings.jwks_url, http_client=client, **options)
        # Runs before the client closes: a background refresh must not outlive its source.
        stack.push_async_callback(jwks.aclose)
        jwks.prefetch()
        yield TokenVerifier(
            jwks,
            issuer=issuer,
            audience=audience,
            algorithms=settings.algorithms,
            leeway_seconds=settings.leeway_seconds,
            cache_size=settings.verified_token_cache_size,
        )


async def check_jwks(app: FastAPI) -> Mapping[str, Any]:
    """Readiness: refresh the key set if due, then report it; raises when none is usable."""
    verifier: TokenVerifier = app.state.token_verifier
    await verifier.jwks.refresh_if_expired()
    status = verifier.jwks.status()
    if not status.usable:
        raise KeySetUnavailable(status.state)
    return status.as_dict()
