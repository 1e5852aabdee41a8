"""The gateway app: ``uvicorn --factory gateway.main:create_app`` (port 8000).

A thin layer over the chassis builder: tracing, Redis (rate limits and live
events), token verification through the users JWKS, one HTTP client per
upstream (users, orders) with breaker and retries, and metrics. Its routes are
the overview, the platform status, live events (SSE and WebSocket) and the
streaming proxy; the web console's files are served at `/console`.
"""

from __future__ import annotations

from fastapi import FastAPI

from chassis.builder import AppBuilder
from chassis.redis import rate_limits_need_redis
from contracts.examples import REQUEST_EXAMPLES
from gateway.console import mount_console
from gateway.events.router import router as events_router
from gateway.events.setup import setup_live_events
from gateway.logging import redact_query_tokens
from gateway.openapi import openapi_with
from gateway.overview.router import router as overview_router
from gateway.proxy.contract import EXTRA_SCHEMAS, documented_routes
from gateway.proxy.router import protected as protected_proxy
from gateway.proxy.router import public as public_proxy
from gateway.settings import GatewaySettings, get_settings
from gateway.status.router import router as status_router

DESCRIPTION = """The only public entry of the platform.

Every route but sign-up, login, refresh, logout, the client-credentials grant and
the JWKS needs a bearer access token from `POST /api/v1/auth/login`. Errors are
RFC 9457 `application/problem+json`. Live events: `GET /api/v1/events`
(Server-Sent Events) or the WebSocket `/ws/events` (token in the
`Authorization` header, or the `access_token` query parameter for browsers).
"""

OPENAPI_TAGS = [
    {"name": "auth", "description": "Accounts, tokens and keys (served by users)."},
    {"name": "users", "description": "Profiles (served by users)."},
    {"name": "orders", "description": "Orders (served by orders)."},
    {"name": "overview", "description": "Aggregated views built by the gateway."},
    {"name": "events", "description": "The caller's live events."},
]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    redact_query_tokens()
    builder = (
        AppBuilder(settings, title="gateway", description=DESCRIPTION, openapi_tags=OPENAPI_TAGS)
        .with_tracing()
        # Redis backs fail-open rate limits and live events: the gateway serves on without
        # it, so an outage must not take every replica out of the load balancer.
        .with_redis(critical=rate_limits_need_redis(settings))
        .with_auth()
        .with_http_clients()
        .with_metrics()
    )
    setup_live_events(builder, settings.events)
    builder.with_routes(overview_router, status_router, prefix="/api/v1")
    builder.with_routes(events_router, public_proxy, protected_proxy)

    def document_proxied_operations(app: FastAPI) -> None:
        app.openapi = openapi_with(  # type: ignore[method-assign]
            app, documented_routes(), extra_schemas=EXTRA_SCHEMAS, request_examples=REQUEST_EXAMPLES
        )

    builder.configure_app(document_proxied_operations)

    def serve_console(app: FastAPI) -> None:
        mount_console(app, settings.console.directory)

    builder.configure_app(serve_console)
    return builder.build()
