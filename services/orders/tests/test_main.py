"""The app factory: its OpenAPI document, readiness, and the embedded SQLite default."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi.openapi.models import OpenAPI
from httpx import AsyncClient

from chassis.database.migrations import upgrade_to_head
from chassis.jobs import job_id_for
from chassis.testing import assert_valid_openapi, openapi_refs
from orders.main import create_app
from orders.settings import OrdersSettings, get_settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

EXPECTED_OPERATIONS = {
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order_id}"),
    ("post", "/api/v1/orders/{order_id}/cancel"),
    ("get", "/internal/v1/orders/{order_id}"),
    ("post", "/internal/v1/orders/{order_id}/status"),
    ("post", "/internal/v1/orders/{order_id}/fulfilment"),
    ("post", "/internal/v1/maintenance/expire-pending"),
    ("post", "/internal/v1/maintenance/purge"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


async def test_the_openapi_document_is_valid_and_describes_every_operation(
    client: AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()

    OpenAPI.model_validate(document)
    assert_valid_openapi(document)
    assert document["openapi"].startswith("3.")
    operations = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert operations == EXPECTED_OPERATIONS
    operation_ids = [document["paths"][path][method]["operationId"] for method, path in operations]
    assert len(set(operation_ids)) == len(operation_ids)
    for method, path in operations:
        operation = document["paths"][path][method]
        assert operation["responses"], (method, path)
        for status, answer in operation["responses"].items():
            assert answer.get("description"), (method, path, status)
        assert {"BearerToken": []} in operation.get("security", []), (method, path)
    assert openapi_refs(document)
    schemas = document["components"]["schemas"]
    for name in ("OrderCreate", "OrderItem", "OrderRead", "OrderPage", "OrderStatus"):
        assert name in schemas
    assert "StatusChange" in schemas


async def test_routes_declare_the_errors_they_answer(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"201", "401", "403", "409", "422"} <= set(paths["/api/v1/orders"]["post"]["responses"])
    assert {"200", "304", "401", "403", "404"} <= set(
        paths["/api/v1/orders/{order_id}"]["get"]["responses"]
    )
    assert {"404", "409"} <= set(paths["/api/v1/orders/{order_id}/cancel"]["post"]["responses"])
    assert {"401", "403", "404", "409", "422"} <= set(
        paths["/internal/v1/orders/{order_id}/status"]["post"]["responses"]
    )
    create = paths["/api/v1/orders"]["post"]
    assert any(param["name"] == "Idempotency-Key" for param in create["parameters"])
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]


async def test_readiness_checks_database_redis_and_keys(client: AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {"database", "redis", "jwks"} <= set(checks)
    assert all(check["status"] == "ok" for check in checks.values())


async def test_metrics_are_served(client: AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert b"http_requests" in response.content or b"# HELP" in response.content


def test_create_app_without_arguments_reads_orders_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORDERS_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("ORDERS_OUTBOX__RELAY_ENABLED", "false")
    get_settings.cache_clear()
    try:
        app: FastAPI = create_app()
    finally:
        get_settings.cache_clear()

    settings = app.state.settings
    assert isinstance(settings, OrdersSettings)
    assert settings.data_dir == tmp_path / "from-env"
    assert "outbox" not in app.state.readiness.names


async def test_the_service_runs_on_the_embedded_sqlite_default(
    make_settings: Callable[..., OrdersSettings],
    make_client: Any,
    redis_url: str,
    tokens: Any,
    order_body: Any,
    eventually: Callable[..., Awaitable[None]],
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        database={"url": None},
        outbox={"relay_enabled": True, "poll_interval_seconds": 0.05, "channel_prefix": prefix},
    )
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    upgrade_to_head(MIGRATIONS, settings.database_url)
    alice = tokens.user("alice")

    async with make_client(create_app(settings)) as client:
        created = await client.post(
            "/api/v1/orders", json=order_body(), headers={**alice, "Idempotency-Key": "k1"}
        )
        replayed = await client.post(
            "/api/v1/orders", json=order_body(), headers={**alice, "Idempotency-Key": "k1"}
        )
        order_id = created.json()["id"]
        page = await client.get("/api/v1/orders", params={"limit": 1}, headers=alice)
        read = await client.get(f"/api/v1/orders/{order_id}", headers=alice)
        cancelled = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=alice)
        ready = await client.get("/health/ready")

        queue = ArqRedis.from_url(redis_url)
        job = job_id_for("orders.fulfil", order_id).encode()

        async def enqueued() -> bool:
            return await queue.zrange("arq:queue", 0, -1) == [job]

        try:
            await eventually(enqueued)
        finally:
            await queue.aclose()

    assert created.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == created.json()
    assert [order["id"] for order in page.json()["items"]] == [order_id]
    assert read.headers["etag"] == 'W/"1"'
    assert cancelled.json()["status"] == "cancelled"
    assert ready.json()["checks"]["database"]["details"]["dialect"] == "sqlite"
