"""The apps the overhead benchmark compares; each is a uvicorn ``--factory`` target."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from chassis.builder import AppBuilder
from chassis.settings import BaseServiceSettings, RateLimitSettings, TracingSettings
from chassis.tracing import FASTAPI_TELEMETRY_OFF

router = APIRouter()


@router.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int | str]:
    return {"id": item_id, "name": "widget"}


def bare() -> FastAPI:
    """Plain FastAPI, the same endpoint: the baseline."""
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)
    app.include_router(router)
    return app


def _settings(*, rate_limit: bool) -> BaseServiceSettings:
    return BaseServiceSettings(
        service_name="bench",
        environment="production",
        rate_limit=RateLimitSettings(enabled=rate_limit, requests=10**9),
        tracing=TracingSettings(sample_ratio=0.1),
    )


def chassis_full() -> FastAPI:
    """The whole chassis request path: every middleware, RED metrics, tracing at 10 %."""
    return (
        AppBuilder(_settings(rate_limit=False))
        .with_tracing()
        .with_metrics()
        .with_routes(router)
        .build()
    )


def chassis_full_rate_limited() -> FastAPI:
    """As chassis_full plus the in-memory rate limiter on every request."""
    return (
        AppBuilder(_settings(rate_limit=True))
        .with_tracing()
        .with_metrics()
        .with_routes(router)
        .build()
    )


def chassis_no_tracing() -> FastAPI:
    """The chassis path without tracing (what tracing costs end to end)."""
    return AppBuilder(_settings(rate_limit=False)).with_metrics().with_routes(router).build()


def chassis_middleware_only() -> FastAPI:
    """Only the chassis middleware: no tracing, no metrics."""
    return AppBuilder(_settings(rate_limit=False)).with_routes(router).build()
