"""PrincipalMiddleware: identifies the caller early, never refuses, verifies once."""

from __future__ import annotations

from fastapi import FastAPI, Request
from prometheus_client import REGISTRY

from chassis.auth import PrincipalDep, PrincipalMiddleware
from chassis.context import principal_id_var
from chassis.errors import install_error_handlers
from chassis.types import ASGIApp, Message, Receive, Scope, Send


class SeenPrincipalMiddleware:
    """Stands in for the rate limiter: reports the principal it finds in the scope state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal = scope.get("state", {}).get("principal")
        seen = principal.subject if principal else "-"

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-seen-principal", seen.encode())]
            await send(message)

        await self.app(scope, receive, send_with_header)


def make_app(verifier, **options) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    if verifier is not None:
        app.state.token_verifier = verifier

    @app.get("/public")
    async def public(request: Request) -> dict[str, str | None]:
        return {"principal_id": principal_id_var.get()}

    @app.get("/me")
    async def me(principal: PrincipalDep, request: Request) -> dict[str, str | None]:
        return {
            "subject": principal.subject,
            "state": request.state.principal.subject,
            "principal_id": principal_id_var.get(),
        }

    app.add_middleware(SeenPrincipalMiddleware)
    app.add_middleware(PrincipalMiddleware, **options)
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("auth_token_rejections_total", {"reason": reason}) or 0.0


async def test_valid_token_puts_principal_in_scope_state_for_inner_layers(
    make_client, verifier, mint, keys
) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/public", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 200
    assert response.headers["x-seen-principal"] == "subject-1"


async def test_dependency_reuses_the_principal_the_middleware_verified(
    make_client, verifier, mint, keys
) -> None:
    # No verifier on app.state: the route dependency could not verify the token itself.
    app = make_app(None, verifier_getter=lambda scope: verifier)

    async with make_client(app) as client:
        response = await client.get("/me", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 200
    assert response.json() == {
        "subject": "subject-1",
        "state": "subject-1",
        "principal_id": "subject-1",
    }


async def test_invalid_token_passes_through_and_is_refused_once_by_the_route(
    make_client, verifier
) -> None:
    before = rejections("malformed")
    async with make_client(make_app(verifier)) as client:
        public = await client.get("/public", headers=bearer("not-a-jwt"))
        protected = await client.get("/me", headers=bearer("not-a-jwt"))

    assert public.status_code == 200
    assert public.headers["x-seen-principal"] == "-"
    assert protected.status_code == 401
    assert protected.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert rejections("malformed") - before == 2


async def test_missing_token_passes_through(make_client, verifier, issuer) -> None:
    async with make_client(make_app(verifier)) as client:
        public = await client.get("/public")
        protected = await client.get("/me")

    assert public.status_code == 200
    assert public.json() == {"principal_id": None}
    assert protected.status_code == 401
    assert protected.headers["www-authenticate"] == "Bearer"
    assert issuer.fetches == 0


async def test_unavailable_key_set_is_a_503_only_where_auth_is_required(
    make_client, verifier, issuer, mint, keys
) -> None:
    issuer.go_down()
    async with make_client(make_app(verifier)) as client:
        public = await client.get("/public", headers=bearer(mint(keys.rsa)))
        protected = await client.get("/me", headers=bearer(mint(keys.rsa)))

    assert public.status_code == 200
    assert protected.status_code == 503


async def test_principal_does_not_leak_into_the_next_request(
    make_client, verifier, mint, keys
) -> None:
    async with make_client(make_app(verifier)) as client:
        first = await client.get("/public", headers=bearer(mint(keys.rsa)))
        second = await client.get("/public")
        third = await client.get("/me")

    assert first.headers["x-seen-principal"] == "subject-1"
    assert first.json() == {"principal_id": "subject-1"}
    assert second.headers["x-seen-principal"] == "-"
    assert second.json() == {"principal_id": None}
    assert third.status_code == 401


async def test_without_a_verifier_tokens_pass_through_untouched(make_client, mint, keys) -> None:
    async with make_client(make_app(None)) as client:
        response = await client.get("/public", headers=bearer(mint(keys.rsa)))

    assert response.status_code == 200
    assert response.headers["x-seen-principal"] == "-"


async def test_other_schemes_are_ignored(make_client, verifier, issuer) -> None:
    async with make_client(make_app(verifier)) as client:
        response = await client.get("/public", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert response.status_code == 200
    assert response.headers["x-seen-principal"] == "-"
    assert issuer.fetches == 0
