"""The apps the overhead benchmark compares; each is a uvicorn ``--factory`` target."""

from __future__ import annotations

import os
from typing import Literal

from fastapi import APIRouter, FastAPI

from chassis.builder import AppBuilder
from chassis.settings import (
    BaseServiceSettings,
    Environment,
    LogSettings,
    RateLimitSettings,
    RedisSettings,
    TracingSettings,
)
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


def _settings(
    *, rate_limit: bool, access_sample_ratio: float = 1.0, trace_ratio: float = 0.1
) -> BaseServiceSettings:
    return BaseServiceSettings(
        service_name="bench",
        environment="production",
        rate_limit=RateLimitSettings(enabled=rate_limit, requests=10**9),
        tracing=TracingSettings(sample_ratio=trace_ratio),
        log=LogSettings(access_sample_ratio=access_sample_ratio),
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


def chassis_full_access_sampled() -> FastAPI:
    """As chassis_full with ``log.access_sample_ratio=0.1``: what an access line costs."""
    return (
        AppBuilder(_settings(rate_limit=False, access_sample_ratio=0.1))
        .with_tracing()
        .with_metrics()
        .with_routes(router)
        .build()
    )


def chassis_full_all_sampled() -> FastAPI:
    """As chassis_full with every request sampled: what a recorded span costs."""
    return (
        AppBuilder(_settings(rate_limit=False, trace_ratio=1.0))
        .with_tracing()
        .with_metrics()
        .with_routes(router)
        .build()
    )


def chassis_full_none_sampled() -> FastAPI:
    """As chassis_full with no request sampled: what tracing costs an unsampled request."""
    return (
        AppBuilder(_settings(rate_limit=False, trace_ratio=0.0))
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


def _shipped(rate_limit_backend: Literal["memory", "redis"]) -> FastAPI:
    settings = BaseServiceSettings(
        service_name="bench",
        environment=Environment.staging,
        redis=RedisSettings(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")),
        rate_limit=RateLimitSettings(backend=rate_limit_backend, requests=10**9),
    )
    return (
        AppBuilder(settings).with_tracing().with_redis().with_metrics().with_routes(router).build()
    )


def chassis_shipped() -> FastAPI:
    """What a service ships (docker-compose.yml): every step on with the services' defaults.

    Staging (JSON log lines), rate limiting on the Redis backend (one Redis round trip per
    request), sampling left at its default, spans exported over OTLP, metrics in Prometheus'
    multiprocess mode (overhead.py sets PROMETHEUS_MULTIPROC_DIR, as compose and the chart do).
    The one departure: a limit no bench reaches, so every answer is a 200 and not a 429.
    """
    return _shipped("redis")


def chassis_shipped_local_metrics() -> FastAPI:
    """Ablation of chassis_shipped: metrics in process memory (no multiprocess directory)."""
    return _shipped("redis")


def chassis_shipped_memory_limit() -> FastAPI:
    """Ablation of chassis_shipped: the in-process rate limiter in place of Redis."""
    return _shipped("memory")


def chassis_stock_telemetry() -> FastAPI:
    """The alternative ADR 0005 rejected, re-measured: the chassis' middleware, with tracing
    by the stock OpenTelemetry ASGI instrumentation (``exclude_spans=["send", "receive"]``,
    the same 10 % parent-based sampling, the same OTLP exporter) and RED metrics by
    prometheus-fastapi-instrumentator, in place of the chassis' telemetry layer's span and
    metrics."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_fastapi_instrumentator import Instrumentator

    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench"}),
        sampler=ParentBased(TraceIdRatioBased(0.1)),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    app = AppBuilder(_settings(rate_limit=False)).with_routes(router).build()
    Instrumentator().instrument(app)
    app.add_middleware(
        OpenTelemetryMiddleware, exclude_spans=["send", "receive"], tracer_provider=provider
    )
    return app
