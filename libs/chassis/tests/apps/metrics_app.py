"""An app with RED metrics and /metrics, for the multi-worker test (uvicorn --factory)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from chassis.metrics import metrics_router
from chassis.middleware import TelemetryMiddleware
from chassis.tracing import FASTAPI_TELEMETRY_OFF


def create_app() -> FastAPI:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)
    app.include_router(metrics_router("/metrics"))

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id, "pid": os.getpid()}

    app.add_middleware(TelemetryMiddleware, service="metrics-test", metrics=True)
    return app
