"""Route templates keep the prefixes a router was included under (metrics, logs, spans)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from chassis.builder import AppBuilder
from chassis.routing import UNMATCHED_ROUTE, route_template
from chassis.settings import BaseServiceSettings

orders = APIRouter(prefix="/orders")


@orders.get("/{order_id}")
async def get_order(order_id: int) -> dict[str, int]:
    return {"id": order_id}


async def test_included_prefix_is_part_of_every_label(make_client: Any, span_exporter: Any) -> None:
    app = (
        AppBuilder(BaseServiceSettings(service_name="routing"))
        .with_tracing(exporter=span_exporter)
        .with_metrics()
        .with_routes(orders, prefix="/api/v1")
        .build()
    )
    with capture_logs() as logs:
        async with make_client(app) as client:
            assert (await client.get("/api/v1/orders/7")).status_code == 200

    template = "/api/v1/orders/{order_id}"
    assert (
        REGISTRY.get_sample_value(
            "http_requests_total",
            {"service": "routing", "method": "GET", "route": template, "status": "200"},
        )
        == 1
    )
    (access,) = [line for line in logs if line["event"] == "http_request"]
    assert access["route"] == template
    assert f"GET {template}" in {span.name for span in span_exporter.get_finished_spans()}


def test_plain_starlette_routes_and_unmatched_requests() -> None:
    route = orders.routes[0]
    assert route_template({"type": "http", "route": route}) == "/orders/{order_id}"
    assert route_template({"type": "http"}) is None
    assert UNMATCHED_ROUTE == "<unmatched>"
