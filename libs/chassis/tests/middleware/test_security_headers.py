from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from chassis.errors import install_error_handlers
from chassis.middleware import (
    SecurityHeadersMiddleware,
    TelemetryMiddleware,
    UnhandledErrorMiddleware,
)
from chassis.middleware.security_headers import DEFAULT_DOCS_CSP
from chassis.types import Receive, Scope, Send

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


def secured_api() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(TelemetryMiddleware, service="test")
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts_max_age_seconds=31_536_000,
        content_security_policy=STRICT_CSP,
    )

    @app.get("/items")
    async def list_items() -> list[str]:
        return ["a"]

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/framed")
    async def framed() -> PlainTextResponse:
        return PlainTextResponse(
            "embed me",
            headers={"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src *"},
        )

    return app


def assert_secured(response: Any, *, csp: str = STRICT_CSP) -> None:
    for name, value in ALWAYS.items():
        assert response.headers[name] == value
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["content-security-policy"] == csp


@pytest.mark.parametrize(("path", "status"), [("/items", 200), ("/missing", 404), ("/crash", 500)])
async def test_headers_are_on_every_response(
    path: str, status: int, asgi_client: Callable[..., Any]
) -> None:
    async with asgi_client(secured_api()) as client:
        response = await client.get(path)

    assert response.status_code == status
    assert_secured(response)


async def test_problem_500_has_headers_and_request_id(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(secured_api()) as client:
        response = await client.get("/crash")

    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_hsts_is_absent_over_http(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(secured_api(), base_url="http://testserver") as client:
        response = await client.get("/items")

    assert "strict-transport-security" not in response.headers


async def test_hsts_is_sent_over_https(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(secured_api(), base_url="https://testserver") as client:
        response = await client.get("/items")

    assert response.headers["strict-transport-security"] == HSTS


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"])
async def test_csp_is_relaxed_only_on_docs(path: str, asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(secured_api()) as client:
        docs = await client.get(path)
        api = await client.get("/items")

    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == DEFAULT_DOCS_CSP
    # The docs' assets are the service's own (chassis.docs): no other origin is allowed.
    assert "https:" not in docs.headers["content-security-policy"]
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]
    assert api.headers["content-security-policy"] == STRICT_CSP


async def test_docs_are_found_under_a_root_path(asgi_client: Callable[..., Any]) -> None:
    async def anything(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("page")(scope, receive, send)

    app = SecurityHeadersMiddleware(
        anything,
        hsts_max_age_seconds=1,
        content_security_policy=STRICT_CSP,
        docs_content_security_policy="default-src 'self'",
    )
    async with asgi_client(app, root_path="/api") as client:
        docs = await client.get("/api/docs")
        other = await client.get("/api/items")

    assert docs.headers["content-security-policy"] == "default-src 'self'"
    assert other.headers["content-security-policy"] == STRICT_CSP


async def test_headers_the_app_set_are_kept(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(secured_api()) as client:
        response = await client.get("/framed")

    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == ["default-src *"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_websocket_passes_through(raw_call: Any, make_scope: Callable[..., Scope]) -> None:
    seen: list[str] = []

    async def socket(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.accept"})

    call = raw_call()
    app = SecurityHeadersMiddleware(socket, hsts_max_age_seconds=1, content_security_policy="x")
    await call(app, make_scope(scope_type="websocket", scheme="wss"))

    assert seen == ["websocket"]
    assert call.sent == [{"type": "websocket.accept"}]
