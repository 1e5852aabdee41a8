"""The builder step: clients per configured upstream, readiness report, route dependency."""

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic_settings import SettingsConfigDict

from chassis.builder import AppBuilder
from chassis.http import UpstreamClient, get_upstream, upstream
from chassis.settings import BaseServiceSettings, UpstreamSettings

OrdersClient = Annotated[UpstreamClient, Depends(upstream("orders"))]

router = APIRouter()


@router.get("/proxy")
async def proxy(client: OrdersClient) -> dict[str, Any]:
    response = await client.get("/echo")
    body: dict[str, Any] = response.json()
    return body


class EdgeSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")


def build_app(settings: BaseServiceSettings, **setup: Any) -> FastAPI:
    builder = AppBuilder(settings).with_routes(router)
    if setup:
        from chassis.http import setup_http_clients

        setup_http_clients(builder, **setup)
        return builder.build()
    return builder.with_http_clients().build()


def settings_with_orders(base_url: str, **options: Any) -> BaseServiceSettings:
    return BaseServiceSettings(
        service_name="edge",
        upstreams={"orders": UpstreamSettings(base_url=base_url, **options)},
    )


async def test_readiness_stays_ready_and_shows_the_open_breaker_when_upstream_is_down(
    make_client, closed_port
):
    app = build_app(
        settings_with_orders(
            f"http://127.0.0.1:{closed_port}",
            retry_attempts=1,
            breaker_failure_threshold=1,
            breaker_open_seconds=60,
        )
    )

    async with make_client(app) as client:
        proxied = await client.get("/proxy")
        ready = await client.get("/health/ready")

    assert proxied.status_code == 503
    assert proxied.headers["content-type"] == "application/problem+json"
    assert "'orders'" in proxied.json()["detail"]
    assert "127.0.0.1" not in proxied.text
    assert ready.status_code == 200
    report = ready.json()["checks"]["upstreams"]
    assert report["critical"] is False
    orders = report["details"]["orders"]
    assert orders["state"] == "open"
    assert orders["failures"] == 1
    assert 0 < orders["retry_in_seconds"] <= 60


async def test_an_open_breaker_answers_503_with_retry_after(make_client, closed_port):
    app = build_app(
        settings_with_orders(
            f"http://127.0.0.1:{closed_port}", retry_attempts=1, breaker_failure_threshold=1
        )
    )

    async with make_client(app) as client:
        await client.get("/proxy")
        refused = await client.get("/proxy")

    assert refused.status_code == 503
    assert "circuit open" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) >= 1


async def test_upstream_from_env_is_called_with_the_inbound_request_id(
    make_client, live_upstream, monkeypatch
):
    monkeypatch.setenv("GATEWAY_UPSTREAMS__ORDERS__BASE_URL", live_upstream)
    app = build_app(EdgeSettings())

    async with make_client(app) as client:
        response = await client.get("/proxy", headers={"X-Request-ID": "edge-req-42"})

    assert response.status_code == 200
    assert response.json()["headers"]["x-request-id"] == "edge-req-42"


async def test_clients_are_closed_at_shutdown(make_client, scripted):
    orders = scripted(httpx.Response(200, json={"headers": {}}))
    app = build_app(
        settings_with_orders("http://orders.internal"), transports={"orders": orders.transport}
    )

    async with make_client(app) as client:
        response = await client.get("/proxy")
        assert not orders.closed

    assert response.status_code == 200
    assert str(orders.requests[0].url) == "http://orders.internal/echo"
    assert orders.closed


async def test_readiness_reports_a_closed_breaker_for_a_healthy_upstream(make_client, scripted):
    orders = scripted(200)
    app = build_app(
        settings_with_orders("http://orders.internal"), transports={"orders": orders.transport}
    )

    async with make_client(app) as client:
        ready = await client.get("/health/ready")

    assert ready.status_code == 200
    assert ready.json()["checks"]["upstreams"]["details"]["orders"]["state"] == "closed"


async def test_asking_for_an_unconfigured_upstream_is_a_wiring_error(make_client):
    app = build_app(BaseServiceSettings(service_name="edge"))

    async with make_client(app):
        request = Request({"type": "http", "app": app, "headers": []})
        with pytest.raises(LookupError, match="billing"):
            get_upstream(request, "billing")
