"""RED metrics by route template, /metrics exposition, and multiprocess aggregation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from chassis.metrics import UNMATCHED_ROUTE, metrics_router
from chassis.middleware import TelemetryMiddleware
from chassis.testing.processes import uvicorn_process
from chassis.tracing import FASTAPI_TELEMETRY_OFF

APPS_DIR = Path(__file__).parents[1] / "apps"


def make_app(service: str) -> FastAPI:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)
    app.include_router(metrics_router("/metrics"))

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_middleware(TelemetryMiddleware, service=service, metrics=True)
    return app


def count(service: str, route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total",
        {"service": service, "method": method, "route": route, "status": status},
    )
    return value or 0.0


async def test_requests_are_counted_by_route_template_not_raw_path() -> None:
    app = make_app("red-1")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for order_id in range(5):
            await client.get(f"/orders/{order_id}")
        await client.get("/nowhere/1")
        await client.get("/nowhere/2")
        await client.get("/broken")
        scrape = await client.get("/metrics")

    assert count("red-1", "/orders/{order_id}", "200") == 5
    assert count("red-1", UNMATCHED_ROUTE, "404") == 2
    assert count("red-1", "/broken", "500") == 1
    assert (
        REGISTRY.get_sample_value(
            "http_request_duration_seconds_count",
            {"service": "red-1", "method": "GET", "route": "/orders/{order_id}"},
        )
        == 5
    )
    assert "/orders/3" not in scrape.text
    assert scrape.headers["content-type"].startswith("text/plain")
    # The scrape itself is not counted.
    assert count("red-1", "/metrics", "200") == 0
    assert REGISTRY.get_sample_value("http_requests_in_progress", {"service": "red-1"}) == 0


@pytest.mark.slow
def test_two_worker_processes_are_aggregated(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    with uvicorn_process(
        "metrics_app:create_app",
        env=env,
        app_dir=APPS_DIR,
        extra_args=["--workers", "2"],
        ready_path="/metrics",
    ) as base_url:
        pids: set[int] = set()
        sent = 0
        # A new connection per request so the kernel spreads them over both workers.
        while len(pids) < 2 or sent < 40:
            with httpx.Client(base_url=base_url) as client:
                pids.add(client.get(f"/items/{sent}").json()["pid"])
            sent += 1
            assert sent < 2000, "requests never reached the second worker"
        scrapes = [httpx.get(base_url + "/metrics").text for _ in range(4)]

    assert len(pids) == 2
    for text in scrapes:
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.labels.get("route") == "/items/{item_id}"
            and sample.name == "http_requests_total"
        }
        # Whichever worker answered the scrape reports the total of both.
        assert samples == {"http_requests_total": sent}


async def test_an_openmetrics_scrape_carries_the_trace_id_of_sampled_requests(
    span_exporter: object,
) -> None:
    """Exemplars: the latency bucket of a sampled request names its trace (single process)."""
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )

    app = make_app("red-exemplar")
    app.user_middleware.clear()  # the same app, its one layer now tracing as well
    app.add_middleware(TelemetryMiddleware, service="red-exemplar", metrics=True, tracing=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/orders/7", headers={"X-Request-ID": "exemplar-1"})
        plain = await client.get("/metrics")
        open_metrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )

    assert answer.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [
        sample.exemplar
        for family in openmetrics_families(open_metrics.text)
        if family.name == "http_request_duration_seconds"
        for sample in family.samples
        if sample.labels.get("service") == "red-exemplar" and sample.exemplar is not None
    ]
    spans = span_exporter.get_finished_spans()  # type: ignore[attr-defined]
    (span,) = [span for span in spans if span.name == "GET /orders/{order_id}"]
    assert [exemplar.labels["trace_id"] for exemplar in exemplars] == [
        format(span.context.trace_id, "032x")
    ]
