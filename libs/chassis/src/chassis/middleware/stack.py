"""Assemble the chassis middleware in its documented order (docs/adr/0002).

Outer to inner:

    ServerErrorMiddleware (Starlette's last resort)
    ProxyHeaders       real client and scheme, from trusted proxies only
    SecurityHeaders    on every response, errors, 504s, preflights and host refusals included
    Telemetry          request id, server span (sampled only), RED metrics, access line and
                       the deadline: one layer reading the scope once (middleware/telemetry.py)
    CORS               preflights answered before any limit applies
    TrustedHost
    LoadShedding       503 at the concurrency limit, 504 past the caller's deadline, at once
    HeaderLimit        431 for an oversized request head, before a token is read
    Principal          verifies a bearer token if present (never rejects)
    RateLimit          keyed by principal or client IP
    BodyLimit
    UnhandledError     500 problem inside the stack, so it gets the headers above
    app

Starlette runs the last-added middleware first, so they are added inner first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from chassis.docs_paths import DOCS_PATHS
from chassis.middleware.body_limit import BodyLimitMiddleware
from chassis.middleware.cors import CORSMiddleware
from chassis.middleware.errors import UnhandledErrorMiddleware
from chassis.middleware.header_limit import HeaderLimitMiddleware
from chassis.middleware.proxy_headers import ProxyHeadersMiddleware
from chassis.middleware.ratelimit import RateLimitMiddleware, build_rate_limiter
from chassis.middleware.security_headers import SecurityHeadersMiddleware
from chassis.middleware.shedding import LoadSheddingMiddleware, load_shedding_options
from chassis.middleware.telemetry import TelemetryMiddleware
from chassis.middleware.trusted_host import TrustedHostMiddleware
from chassis.settings import SettingsError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chassis.builder_protocol import Builder


def install_middleware(app: FastAPI, builder: Builder) -> None:
    settings = builder.settings
    server = settings.server
    security = settings.security

    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=server.max_body_bytes)
    if settings.rate_limit.enabled:
        _add_rate_limit(app, builder)
    if "auth" in builder.steps and settings.auth.enabled:
        from chassis.auth import PrincipalMiddleware

        app.add_middleware(PrincipalMiddleware)
    app.add_middleware(HeaderLimitMiddleware, max_header_bytes=server.max_header_bytes)
    app.add_middleware(LoadSheddingMiddleware, **load_shedding_options(builder))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=security.allowed_hosts)
    if security.cors_origins:
        app.add_middleware(CORSMiddleware, security=security)
    app.add_middleware(
        TelemetryMiddleware,
        service=settings.service_name,
        timeout_seconds=server.request_timeout_seconds,
        metrics=builder.metrics_enabled,
        metrics_path=settings.metrics.path,
        tracing=builder.tracing_enabled,
        quiet_paths=settings.log.quiet_paths,
        access_sample_ratio=settings.log.access_sample_ratio,
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts_max_age_seconds=security.hsts_max_age_seconds,
        content_security_policy=security.content_security_policy,
        docs_paths=DOCS_PATHS if settings.docs_visible else (),
    )
    app.add_middleware(ProxyHeadersMiddleware, trusted_proxies=security.trusted_proxies)


def _add_rate_limit(app: FastAPI, builder: Builder) -> None:
    settings = builder.settings
    config = settings.rate_limit
    redis_client = None
    if config.backend == "redis":
        if "redis" not in builder.steps:
            raise SettingsError(
                "rate_limit.backend=redis needs the redis step: call with_redis() before build()"
            )

        def redis_client() -> Redis:
            # Opened in the lifespan; the middleware asks for it on first use.
            client: Redis = app.state.redis
            return client

    elif _server_workers() > 1:
        raise SettingsError(
            "rate_limit.backend=memory with WEB_CONCURRENCY>1 would multiply the limit by "
            "the worker count; set rate_limit.backend=redis"
        )
    app.add_middleware(
        RateLimitMiddleware,
        backend=build_rate_limiter(settings, redis_client),
        default_limit=config.requests,
        default_window_seconds=config.window_seconds,
        rules=config.rules,
        exempt_paths=config.exempt_paths,
        fail_open=config.fail_open,
        service=settings.service_name,
    )


def _server_workers() -> int:
    """Worker processes the server was told to run, from the variable uvicorn/gunicorn read."""
    try:
        return int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        return 1
