"""The auth builder step: verifier resource, non-critical jwks readiness check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import APIRouter

from chassis.auth import PrincipalDep, open_token_verifier, render_jwks
from chassis.builder import AppBuilder
from chassis.settings import AuthSettings, BaseServiceSettings

router = APIRouter()


@router.get("/me")
async def me(principal: PrincipalDep) -> dict[str, str]:
    return {"subject": principal.subject}


def build(auth: AuthSettings, *, middleware: bool = False):
    settings = BaseServiceSettings(service_name="auth-test", auth=auth)
    builder = AppBuilder(settings).with_auth().with_routes(router)
    if not middleware:
        builder.without_middleware()
    return builder.build()


def enabled(jwks_url: str) -> AuthSettings:
    return AuthSettings(
        enabled=True, jwks_url=jwks_url, issuer="https://issuer.test", audience="chassis-tests"
    )


async def test_disabled_auth_adds_no_verifier_and_no_check(make_client) -> None:
    app = build(AuthSettings())

    async with make_client(app) as client:
        ready = await client.get("/health/ready")

    assert "jwks" not in ready.json()["checks"]
    assert not hasattr(app.state, "token_verifier")


async def test_enabled_auth_verifies_through_the_issuer_and_reports_fresh_keys(
    make_client, real_issuer, mint, keys
) -> None:
    app = build(enabled(real_issuer.url))

    async with make_client(app) as client:
        me = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.ec)}"})
        ready = await client.get("/health/ready")

    assert me.status_code == 200
    assert me.json() == {"subject": "subject-1"}
    assert ready.status_code == 200
    check = ready.json()["checks"]["jwks"]
    assert check["status"] == "ok"
    assert check["critical"] is False
    assert check["details"]["state"] == "fresh"
    assert check["details"]["keys"] == 2
    assert real_issuer.fetches == 1


async def test_unreachable_issuer_fails_the_check_but_not_readiness(
    make_client, closed_port_url, mint, keys
) -> None:
    app = build(enabled(closed_port_url))

    async with make_client(app) as client:
        ready = await client.get("/health/ready")
        me = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.rsa)}"})

    assert ready.status_code == 200
    check = ready.json()["checks"]["jwks"]
    assert check["status"] == "failed"
    assert check["error"] == "KeySetUnavailable"
    assert me.status_code == 503
    assert me.headers["content-type"] == "application/problem+json"


async def test_the_key_set_is_fetched_at_start_up_before_any_request(
    make_client, real_issuer, mint, keys
) -> None:
    app = build(enabled(real_issuer.url))

    async with make_client(app) as client:
        for _ in range(200):
            if real_issuer.fetches:
                break
            await asyncio.sleep(0.025)
        assert real_issuer.fetches == 1  # no request has been made yet
        me = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.ec)}"})

    assert me.status_code == 200
    assert real_issuer.fetches == 1


async def test_a_failed_start_up_fetch_does_not_hold_back_the_first_requests_own(
    mint, keys
) -> None:
    calls: list[str] = []

    async def loader() -> Any:
        calls.append("fetch")
        if len(calls) == 1:
            raise OSError("issuer not up yet")
        return render_jwks([keys.ec, keys.rsa])

    async with open_token_verifier(
        enabled("http://issuer.test/jwks.json"), loader=loader
    ) as verifier:
        await verifier.jwks.aclose()  # the start-up fetch has failed
        assert calls == ["fetch"]
        principal = await verifier.verify(mint(keys.ec))

    assert principal.subject == "subject-1"
    assert calls == ["fetch", "fetch"]


async def test_verifier_needs_url_issuer_and_audience() -> None:
    with pytest.raises(ValueError, match="jwks_url"):
        async with open_token_verifier(AuthSettings()):
            pass


async def test_full_middleware_stack_authenticates_through_the_issuer(
    make_client, real_issuer, mint, keys
) -> None:
    app = build(enabled(real_issuer.url), middleware=True)

    async with make_client(app) as client:
        me = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.rsa)}"})
        anonymous = await client.get("/me")

    assert me.status_code == 200
    assert me.json() == {"subject": "subject-1"}
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "x-request-id" in anonymous.headers


async def test_a_key_loader_verifies_without_fetching_over_http(
    make_client, closed_port_url, mint, keys
) -> None:
    calls: list[str] = []

    def key_loader(app):
        async def load() -> dict:
            calls.append(app.title)
            return render_jwks([keys.rsa])

        return load

    settings = BaseServiceSettings(service_name="issuer", auth=enabled(closed_port_url))
    app = AppBuilder(settings).with_auth(key_loader=key_loader).with_routes(router).build()

    async with make_client(app) as client:
        me = await client.get("/me", headers={"Authorization": f"Bearer {mint(keys.rsa)}"})
        ready = await client.get("/health/ready")

    assert me.status_code == 200
    assert me.json() == {"subject": "subject-1"}
    assert ready.json()["checks"]["jwks"]["details"]["state"] == "fresh"
    assert calls == ["issuer"]
