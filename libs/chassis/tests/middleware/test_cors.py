from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chassis.middleware import CORSMiddleware, TelemetryMiddleware, cors_middleware_kwargs
from chassis.settings import SecuritySettings

ALLOWED_ORIGIN = "https://app.example.com"


async def create_item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("created", status_code=201)


async def compressed(request: Request) -> PlainTextResponse:
    return PlainTextResponse("small", headers={"Vary": "Accept-Encoding"})


def cors_app(**security: Any) -> Starlette:
    settings = SecuritySettings(
        cors_origins=[ALLOWED_ORIGIN], cors_allow_credentials=True, **security
    )
    return Starlette(
        routes=[Route("/items", create_item, methods=["POST"]), Route("/compressed", compressed)],
        middleware=[
            Middleware(CORSMiddleware, security=settings),
            Middleware(TelemetryMiddleware, service="test"),
        ],
    )


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Idempotency-Key",
    }


async def test_preflight_from_allowed_origin_is_allowed(asgi_client: Callable[..., Any]) -> None:
    async with asgi_client(cors_app()) as client:
        response = await client.options("/items", headers=preflight_headers(ALLOWED_ORIGIN))

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "Idempotency-Key" in response.headers["access-control-allow-headers"]
    assert response.headers["access-control-max-age"] == "600"


async def test_preflight_from_other_origin_is_not_allowed(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(cors_app()) as client:
        response = await client.options("/items", headers=preflight_headers("https://evil.test"))

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_browser_may_read_request_id_and_rate_limit_headers(
    asgi_client: Callable[..., Any],
) -> None:
    async with asgi_client(cors_app()) as client:
        response = await client.post("/items", headers={"Origin": ALLOWED_ORIGIN})

    assert response.status_code == 201
    exposed = {
        name.strip() for name in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"X-Request-ID", "Retry-After", "RateLimit-Remaining", "ETag"} <= exposed
    assert "x-request-id" in response.headers


@pytest.mark.parametrize("origin", [None, ALLOWED_ORIGIN, "https://evil.test"])
async def test_responses_vary_on_origin(
    origin: str | None, asgi_client: Callable[..., Any]
) -> None:
    headers = {"Origin": origin} if origin else {}
    async with asgi_client(cors_app()) as client:
        plain = await client.post("/items", headers=headers)
        varied = await client.get("/compressed", headers=headers)

    assert plain.headers.get_list("vary") == ["Origin"]
    assert varied.headers.get_list("vary") == ["Accept-Encoding, Origin"]


def test_wildcard_with_credentials_is_refused_by_settings() -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        SecuritySettings(cors_origins=["*"], cors_allow_credentials=True)


def test_wildcard_with_credentials_is_refused_by_the_middleware() -> None:
    # model_construct skips validation, as a hand-built or mutated settings object would.
    unsafe = SecuritySettings.model_construct(cors_origins=["*"], cors_allow_credentials=True)

    with pytest.raises(ValueError, match="credentials"):
        cors_middleware_kwargs(unsafe)
    with pytest.raises(ValueError, match="credentials"):
        CORSMiddleware(create_item, security=unsafe)  # type: ignore[arg-type]


def test_wildcard_without_credentials_is_allowed() -> None:
    kwargs = cors_middleware_kwargs(SecuritySettings(cors_origins=["*"]))

    assert kwargs["allow_origins"] == ["*"]
    assert kwargs["allow_credentials"] is False
