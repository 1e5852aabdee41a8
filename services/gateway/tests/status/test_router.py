"""`GET /api/v1/platform/status`: every service's readiness, its breakers and the outbox lag."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from gateway_testing import Tokens, bearer

from chassis.testing.processes import free_port
from chassis.testing.servers import serve_in_thread


def readiness_app(status_code: int, checks: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        status = "ready" if status_code == 200 else "not_ready"
        return JSONResponse({"status": status, "checks": checks}, status_code=status_code)

    return app


OPEN_BREAKER = {
    "state": "open",
    "failures": 5,
    "failure_threshold": 5,
    "opened_seconds_ago": 1.5,
    "retry_in_seconds": 28.5,
}
ORDERS_CHECKS = {
    "database": {"status": "ok", "latency_ms": 1.2},
    "outbox": {
        "status": "ok",
        "latency_ms": 2.0,
        "critical": False,
        "details": {"backlog": 3, "oldest_unsent_seconds": 4.25},
    },
}
WORKER_CHECKS = {
    "redis": {"status": "ok", "latency_ms": 0.4},
    "orders": {"status": "failed", "error": "CircuitOpenError", "details": OPEN_BREAKER},
}


async def test_anonymous_callers_get_a_401_problem_and_no_internal_detail(gateway) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/platform/status")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"]
    assert "checks" not in response.text
    assert "outbox" not in response.text


async def test_status_shows_each_service_its_breakers_and_the_outbox_lag(
    start_gateway, tokens: Tokens
) -> None:
    with (
        serve_in_thread(readiness_app(200, ORDERS_CHECKS), lifespan="off") as orders,
        serve_in_thread(readiness_app(503, WORKER_CHECKS), lifespan="off") as worker,
        start_gateway(
            upstreams={"orders": {"base_url": orders}}, status={"worker_url": worker}
        ) as gateway,
    ):
        async with gateway.client() as client:
            response = await client.get("/api/v1/platform/status", headers=bearer(tokens.issue()))

    assert response.status_code == 200
    body = response.json()
    services = {service["name"]: service for service in body["services"]}
    assert set(services) == {"gateway", "users", "orders", "worker"}
    assert services["gateway"]["state"] == "ready"
    assert services["gateway"]["checks"]["redis"]["status"] == "ok"
    # The fake users has no readiness route: it answers, but not ready.
    assert (services["users"]["state"], services["users"]["http_status"]) == ("not_ready", 404)
    assert services["orders"]["state"] == "ready"
    assert services["orders"]["checks"] == ORDERS_CHECKS
    assert (services["worker"]["state"], services["worker"]["http_status"]) == ("not_ready", 503)
    breakers = {(b["service"], b["upstream"]): b for b in body["breakers"]}
    assert breakers[("worker", "orders")]["state"] == "open"
    assert breakers[("worker", "orders")]["retry_in_seconds"] == 28.5
    assert breakers[("gateway", "users")]["state"] == "closed"
    assert breakers[("gateway", "orders")]["state"] == "closed"
    assert body["outbox"] == [{"service": "orders", "backlog": 3, "oldest_unsent_seconds": 4.25}]


async def test_a_service_that_does_not_answer_is_unreachable_and_trips_no_breaker(
    start_gateway, tokens: Tokens
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_gateway(upstreams={"orders": {"base_url": dead}}, status={"worker_url": None}) as gw:
        async with gw.client() as client:
            for _ in range(6):  # more than the breaker's failure threshold
                response = await client.get(
                    "/api/v1/platform/status", headers=bearer(tokens.issue())
                )

    body = response.json()
    services = {service["name"]: service for service in body["services"]}
    assert set(services) == {"gateway", "users", "orders"}
    assert services["orders"]["state"] == "unreachable"
    assert services["orders"]["error"] == "ConnectError"
    assert services["orders"]["http_status"] is None
    gateway_breakers = {b["upstream"]: b["state"] for b in body["breakers"]}
    assert gateway_breakers["orders"] == "closed"
