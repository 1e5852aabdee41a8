"""Readiness runs checks concurrently with timeouts; liveness never looks at a dependency."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI

from chassis.health import ReadinessRegistry, health_router
from chassis.tracing import FASTAPI_TELEMETRY_OFF


def make_app(registry: ReadinessRegistry) -> FastAPI:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)
    app.include_router(health_router(registry))
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_ready_lists_every_check_with_latency() -> None:
    registry = ReadinessRegistry()
    registry.add("sync_ok", lambda app: None)

    async def async_ok(app: FastAPI) -> dict[str, int]:
        return {"connections": 3}

    registry.add("async_ok", async_ok)
    response = await get(make_app(registry), "/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["async_ok"]["details"] == {"connections": 3}
    assert body["checks"]["sync_ok"]["status"] == "ok"
    assert all("latency_ms" in check for check in body["checks"].values())


async def test_failed_check_makes_ready_503_naming_it() -> None:
    registry = ReadinessRegistry()
    registry.add("database", lambda app: None)

    async def redis_down(app: FastAPI) -> None:
        raise ConnectionRefusedError("redis://secret-host:6379 refused")

    registry.add("redis", redis_down)
    registry.add("cache", lambda app: False)
    response = await get(make_app(registry), "/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis", "cache"]
    assert body["checks"]["redis"]["error"] == "ConnectionRefusedError"
    assert "secret-host" not in response.text


async def test_checks_run_concurrently_and_time_out() -> None:
    registry = ReadinessRegistry(default_timeout=0.2)

    async def hangs(app: FastAPI) -> None:
        await asyncio.sleep(10)

    registry.add("a", hangs)
    registry.add("b", hangs)
    started = time.perf_counter()
    response = await get(make_app(registry), "/health/ready")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert response.json()["checks"]["a"]["error"] == "timed out after 0.2s"
    # Two 0.2 s timeouts that ran one after the other would take 0.4 s.
    assert elapsed < 0.4


async def test_non_critical_check_reports_without_failing() -> None:
    registry = ReadinessRegistry()

    def breaker_open(app: FastAPI) -> None:
        raise RuntimeError("open")

    registry.add("upstreams", breaker_open, critical=False)
    response = await get(make_app(registry), "/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["upstreams"] == {
        "status": "failed",
        "error": "RuntimeError",
        "latency_ms": response.json()["checks"]["upstreams"]["latency_ms"],
        "critical": False,
    }


async def test_shutdown_turns_ready_503_but_live_stays_200() -> None:
    registry = ReadinessRegistry()
    registry.add("database", lambda app: None)
    app = make_app(registry)
    registry.begin_shutdown()
    ready = await get(app, "/health/ready")
    live = await get(app, "/health/live")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "shutting down"
    assert live.status_code == 200


async def test_shutdown_answers_503_at_once_without_running_the_checks() -> None:
    registry = ReadinessRegistry()
    calls: list[str] = []

    async def slow_database(app: object) -> None:
        calls.append("database")
        await asyncio.sleep(1.5)

    registry.add("database", slow_database)
    app = make_app(registry)
    registry.begin_shutdown()
    ready = await get(app, "/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready", "checks": {}, "reason": "shutting down"}
    assert calls == []


def test_shutdown_callbacks_run_once_and_a_failing_one_does_not_stop_the_rest() -> None:
    registry = ReadinessRegistry()
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    registry.on_shutdown(broken)
    registry.on_shutdown(lambda: calls.append("closed streams"))
    registry.begin_shutdown()
    registry.begin_shutdown()
    assert calls == ["closed streams"]
    assert registry.shutting_down


def test_marking_shutdown_flips_readiness_and_leaves_the_callbacks_to_begin_shutdown() -> None:
    registry = ReadinessRegistry()
    calls: list[str] = []
    registry.on_shutdown(lambda: calls.append("closed streams"))
    assert registry.mark_shutting_down() is True
    assert registry.mark_shutting_down() is False
    assert registry.shutting_down
    assert calls == []  # nothing but the flag inside a signal handler
    registry.begin_shutdown()
    registry.begin_shutdown()
    assert calls == ["closed streams"]


def test_duplicate_check_names_are_refused() -> None:
    registry = ReadinessRegistry()
    registry.add("database", lambda app: None)
    with pytest.raises(ValueError, match="database"):
        registry.add("database", lambda app: None)
    assert registry.names == ["database"]
