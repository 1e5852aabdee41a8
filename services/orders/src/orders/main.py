"""The orders app factory: ``uvicorn --factory orders.main:create_app --port 8002``.

Migrations are a separate step (``alembic -c services/orders/alembic.ini upgrade head``),
never part of start-up.
"""

from __future__ import annotations

from fastapi import FastAPI

from chassis.builder import AppBuilder
from chassis.redis import rate_limits_need_redis
from contracts.examples import REQUEST_EXAMPLES
from orders.internal.router import router as internal_router
from orders.internal.schemas import INTERNAL_EXAMPLES
from orders.order.router import router as order_router
from orders.outbox.relay import setup_outbox_relay
from orders.settings import OrdersSettings, get_settings

DESCRIPTION = (
    "Orders with idempotent creation, a state machine, ETags and a transactional outbox. "
    "Money is in integer minor units."
)
OPENAPI_TAGS = [
    {"name": "orders", "description": "Place, list, read and cancel your orders."},
    {"name": "internal", "description": "Service-to-service only (never via the gateway)."},
]


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    """Build the orders app; nothing connects until the lifespan starts."""
    settings = settings or get_settings()
    builder = (
        AppBuilder(
            settings,
            title="orders",
            description=DESCRIPTION,
            openapi_tags=OPENAPI_TAGS,
            request_examples={**REQUEST_EXAMPLES, **INTERNAL_EXAMPLES},
        )
        .with_tracing()
        .with_database()
        # Only the outbox relay needs Redis, and it waits: orders are still taken meanwhile.
        .with_redis(critical=rate_limits_need_redis(settings))
        .with_auth()
        .with_metrics()
    )
    setup_outbox_relay(builder)
    return builder.with_routes(order_router, prefix="/api/v1").with_routes(internal_router).build()
