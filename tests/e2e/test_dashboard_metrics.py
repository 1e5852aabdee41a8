"""Every metric a Grafana dashboard queries is one the running services really export.

After one order has gone through the platform (so users, orders, the gateway and the
worker have all counted something), each service's /metrics is scraped and parsed; a
dashboard query may then name only series families those scrapes declare, Prometheus'
own per-target series, or a recording rule defined in deploy/observability/prometheus.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import E2EPlatform
from tests.support.accounts import ORDER, bearer, next_order_event, sign_up_and_log_in
from tests.support.dashboards import (
    DASHBOARD_FILES,
    PROMETHEUS_BUILTINS,
    metric_names,
    queries,
    recorded_names,
)

pytestmark = pytest.mark.e2e

EVENT_DEADLINE_SECONDS = 20.0
# The series names a family of each type is scraped as.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}


async def _drive_one_order(platform: E2EPlatform) -> None:
    """Sign up, log in and place one order, then wait until the worker has fulfilled it."""
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
        account = await sign_up_and_log_in(client, "dashboards")
        auth = bearer(account)
        ws_url = platform.gateway.replace("http://", "ws://") + "/ws/events"
        async with websockets.connect(ws_url, additional_headers=auth) as socket:
            created = await client.post(
                "/api/v1/orders", json=ORDER, headers={**auth, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert created.status_code == 201, created.text
            deadline = time.monotonic() + EVENT_DEADLINE_SECONDS
            while (await next_order_event(socket, deadline=deadline))["type"] != "order.fulfilled":
                pass


def _scraped_names(text: str) -> tuple[set[str], set[str]]:
    """(series names every declared family is scraped as, names that have samples now)."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        declared.update(family.name + suffix for suffix in SUFFIXES[family.type])
        sampled.update(sample.name for sample in family.samples)
    return declared | sampled, sampled


async def test_dashboard_queries_name_metrics_the_services_export(platform: E2EPlatform) -> None:
    await _drive_one_order(platform)
    targets = {
        "gateway": platform.gateway,
        "users": platform.users,
        "orders": platform.orders,
        "worker": platform.worker_health,
    }
    exported: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for service, url in targets.items():
            response = await client.get(url + "/metrics")
            assert response.status_code == 200, f"{service}: {response.status_code}"
            declared, sampled = _scraped_names(response.text)
            # The order went through every service: each has counted its part of it.
            counted = "job_outcomes_total" if service == "worker" else "http_requests_total"
            assert counted in sampled, f"{service} has no {counted} samples after the order"
            exported |= declared

    checked = [query for path in DASHBOARD_FILES for query in queries(path)]
    assert checked
    recorded = recorded_names()
    problems = []
    for query in checked:
        names = metric_names(query.expr)
        assert names, f"{query.dashboard} {query.where}: no metric in {query.expr!r}"
        unexported = {n for n in names if ":" not in n} - exported - PROMETHEUS_BUILTINS
        unrecorded = {n for n in names if ":" in n} - recorded
        if unexported:
            problems.append(f"{query.dashboard} {query.where}: not exported {sorted(unexported)}")
        if unrecorded:
            problems.append(f"{query.dashboard} {query.where}: no such rule {sorted(unrecorded)}")
    assert problems == [], "\n".join(problems)
