"""Route dependencies: 401 without a valid token, 403 without the scope or the kind."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from chassis.auth import (
    OptionalPrincipalDep,
    Principal,
    PrincipalDep,
    kind_guard,
    require_kind,
    require_scopes,
    scopes_guard,
)
from chassis.errors import install_error_handlers

ThingWriter = require_scopes("things:write")
UserOnly = require_kind("user")
ServiceOnly = require_kind("service")


def make_app(verifier) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, object]:
        return {"subject": principal.subject, "scopes": sorted(principal.scopes)}

    @app.post("/things")
    async def create_thing(principal: ThingWriter) -> dict[str, str]:
        return {"created_by": principal.subject}

    @app.get("/both", dependencies=[kind_guard("user")])
    async def both(principal: Annotated[Principal, scopes_guard("a", "b")]) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/profile")
    async def profile(principal: UserOnly) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.post("/internal")
    async def internal(principal: ServiceOnly) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/maybe")
    async def maybe(principal: OptionalPrincipalDep) -> dict[str, str | None]:
        return {"subject": principal.subject if principal else None}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_request_without_token_is_a_401_problem_with_bearer_challenge(
    make_client, verifier
) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["title"] == "Unauthorized"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer "])
async def test_request_without_a_bearer_token_is_refused(make_client, verifier, header) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/me", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_invalid_token_is_a_401_that_does_not_echo_it(make_client, verifier) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/me", headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert token not in response.text
    assert response.json()["detail"] == "The access token is invalid."


async def test_valid_token_reaches_the_route(make_client, verifier, mint, keys) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/me", headers=bearer(mint(keys.rsa, scopes=["x"])))

    assert response.status_code == 200
    assert response.json() == {"subject": "subject-1", "scopes": ["x"]}


async def test_missing_scope_is_a_403_naming_it(make_client, verifier, mint, keys) -> None:
    token = mint(keys.rsa, scopes=["things:read"])
    async with make_client(make_app(verifier)) as client:
        response = await client.post("/things", headers=bearer(token))

    assert response.status_code == 403
    body = response.json()
    assert body["missing_scopes"] == ["things:write"]
    assert "things:write" in body["detail"]
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="things:write"'
    )


async def test_token_with_the_scope_is_allowed(make_client, verifier, mint, keys) -> None:
    token = mint(keys.rsa, scopes=["things:read", "things:write"])
    async with make_client(make_app(verifier)) as client:
        response = await client.post("/things", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"created_by": "subject-1"}


async def test_guards_work_inline_and_as_route_dependencies(
    make_client, verifier, mint, keys
) -> None:
    async with make_client(make_app(verifier)) as client:
        missing = await client.get("/both", headers=bearer(mint(keys.rsa, scopes=["a"])))
        allowed = await client.get("/both", headers=bearer(mint(keys.rsa, scopes=["a", "b"])))

    assert missing.status_code == 403
    assert missing.json()["missing_scopes"] == ["b"]
    assert allowed.status_code == 200


async def test_service_token_on_a_user_route_is_forbidden(
    make_client, verifier, mint, keys
) -> None:
    token = mint(keys.ec, subject="worker", kind="service")
    async with make_client(make_app(verifier)) as client:
        user_route = await client.get("/profile", headers=bearer(token))
        service_route = await client.post("/internal", headers=bearer(token))

    assert user_route.status_code == 403
    assert user_route.headers["content-type"] == "application/problem+json"
    assert service_route.status_code == 200
    assert service_route.json() == {"subject": "worker"}


async def test_user_token_on_a_service_route_is_forbidden(
    make_client, verifier, mint, keys
) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.post("/internal", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 403
    assert response.json()["detail"] == "Only service clients may do this."


async def test_optional_principal_is_none_without_token(make_client, verifier, mint, keys) -> None:
    async with make_client(make_app(verifier)) as client:
        anonymous = await client.get("/maybe")
        known = await client.get("/maybe", headers=bearer(mint(keys.rsa)))
        invalid = await client.get("/maybe", headers=bearer("not-a-token"))

    assert anonymous.json() == {"subject": None}
    assert known.json() == {"subject": "subject-1"}
    assert invalid.status_code == 401


async def test_unreachable_key_set_is_a_503_not_a_401(
    make_client, verifier, issuer, mint, keys
) -> None:
    issuer.go_down()
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/me", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


async def test_app_without_a_verifier_fails_loudly(mint, keys) -> None:
    app = make_app(None)
    del app.state.token_verifier
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/me", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "token_verifier" not in response.text


async def test_openapi_documents_the_bearer_scheme(make_client, verifier) -> None:
    async with make_client(make_app(verifier)) as client:
        document = (await client.get("/openapi.json")).json()

    scheme = document["components"]["securitySchemes"]["BearerToken"]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from the identity service.",
    }
    assert document["paths"]["/things"]["post"]["security"] == [{"BearerToken": []}]
