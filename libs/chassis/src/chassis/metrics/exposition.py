"""The /metrics endpoint, correct with one process or many.

With several server workers each process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set it before the server starts, to an empty
directory); a scrape of any worker then aggregates all of them.

A scrape that asks for OpenMetrics (``Accept: application/openmetrics-text``,
as Prometheus does with exemplar storage on) gets it, with the exemplars the
telemetry layer attaches to the latency histograms: the trace id of a sampled
request in the bucket it fell in. prometheus_client keeps no exemplars in
multiprocess mode, so a service with several server workers serves none.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chassis.builder_protocol import Builder

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render_metrics(accept: str = "") -> tuple[bytes, str]:
    """The samples in the format `accept` asks for (Prometheus text by default), and its type."""
    encode, content_type = choose_encoder(accept)
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return encode(registry), content_type
    return encode(REGISTRY), content_type


def metrics_router(path: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(path)
    async def metrics(request: Request) -> Response:
        body, content_type = render_metrics(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    return router


def setup_metrics(builder: Builder) -> None:
    """Builder step: the /metrics route, the RED middleware, and multiprocess clean-up."""
    path = builder.settings.metrics.path
    builder.metrics_enabled = builder.settings.metrics.enabled
    if not builder.metrics_enabled:
        return
    builder.with_routes(metrics_router(path))

    @asynccontextmanager
    async def metrics_resource(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if multiprocess_mode():
            # Drop this worker's live gauges so a restarted worker isn't counted twice.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    builder.add_resource("metrics", metrics_resource)
