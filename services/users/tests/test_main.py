"""The app as a whole: a valid OpenAPI document, readiness, the embedded SQLite default."""

from __future__ import annotations

import io
import json

from chassis.database.migrations import upgrade_to_head
from chassis.logging import configure_logging
from chassis.testing import assert_valid_openapi, openapi_refs
from users.main import create_app
from users.settings import UsersSettings

MIGRATIONS_DIR = "migrations"


async def test_the_openapi_document_is_valid_and_complete(api) -> None:
    response = await api.http.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert_valid_openapi(document)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "users"
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "put", "delete")
    }
    assert {
        ("POST", "/api/v1/auth/signup"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/token"),
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("GET", "/api/v1/users"),
        ("GET", "/.well-known/jwks.json"),
    } <= operations
    assert openapi_refs(document)
    schemas = document["components"]["schemas"]
    for name in ("UserCreate", "UserRead", "UserUpdate", "UserPage", "TokenPair", "ServiceToken"):
        assert name in schemas
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert set(login["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    assert "application/problem+json" in login["responses"]["401"]["content"]
    assert "429" in login["responses"]
    signup = document["paths"]["/api/v1/auth/signup"]["post"]
    assert {"201", "409", "422"} <= set(signup["responses"])
    token = document["paths"]["/api/v1/auth/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    me = document["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"BearerToken": []}]


async def test_readiness_reports_the_signing_keys(api) -> None:
    response = await api.http.get("/health/ready")

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {"database", "redis", "signing_keys", "jwks"} <= set(checks)
    assert checks["signing_keys"]["details"]["source"] == "database"
    assert checks["jwks"]["details"]["state"] == "fresh"


async def test_the_service_runs_on_its_embedded_sqlite_default(
    hermetic_env, redis_url, make_client, request
) -> None:
    settings = UsersSettings(
        redis={"url": redis_url},
        passwords={"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1},
    )
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    upgrade_to_head(request.path.parents[1] / MIGRATIONS_DIR, settings.database_url)

    async with make_client(create_app(settings)) as http:
        password = "correct horse battery staple 1"
        signup = await http.post(
            "/api/v1/auth/signup", json={"email": "lite@example.com", "password": password}
        )
        pair = (
            await http.post(
                "/api/v1/auth/login", json={"email": "lite@example.com", "password": password}
            )
        ).json()
        me = await http.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        refreshed = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        replayed = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        successor = await http.post(
            "/api/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
        )
        ready = await http.get("/health/ready")

    assert signup.status_code == 201
    assert me.json()["email"] == "lite@example.com"
    assert refreshed.status_code == 200
    assert replayed.status_code == successor.status_code == 401
    assert ready.json()["checks"]["database"]["details"]["dialect"] == "sqlite"
    assert (hermetic_env / ".data" / "users.sqlite3").exists()


async def test_logs_never_carry_passwords_tokens_or_hashes(settings, make_client) -> None:
    app = create_app(settings)
    stream = io.StringIO()
    configure_logging(settings, json_output=True, stream=stream)
    password = "a password to keep 1"
    async with make_client(app) as http:
        await http.post(
            "/api/v1/auth/signup", json={"email": "log@example.com", "password": password}
        )
        pair = (
            await http.post(
                "/api/v1/auth/login", json={"email": "log@example.com", "password": password}
            )
        ).json()
        await http.post("/api/v1/auth/login", json={"email": "log@example.com", "password": "x1"})
        refreshed = (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).json()
        await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        service = (
            await http.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "worker",
                    "client_secret": "worker-development-secret",
                },
            )
        ).json()

    logged = stream.getvalue()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"login_succeeded", "login_failed", "refresh_token_reuse_detected"} <= events
    for secret in (
        password,
        pair["access_token"],
        pair["refresh_token"],
        refreshed["refresh_token"],
        service["access_token"],
        "worker-development-secret",
        "$argon2id$",
        "log@example.com",
    ):
        assert secret not in logged
