"""The user API: the caller's profile (read and change) and the admin listing."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy import select

from users.auth.models import RefreshToken
from users.main import create_app
from users.user.models import User

ME = "/api/v1/users/me"
USERS = "/api/v1/users"
NEW_PASSWORD = "another horse battery 9"


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


async def test_me_returns_the_callers_profile(api) -> None:
    user = await api.signup(display_name="Alice")
    token = (await api.login())["access_token"]

    response = await api.http.get(ME, headers=api.bearer(token))

    assert response.status_code == 200
    assert response.json() == user


async def test_me_without_a_valid_token_is_401(api) -> None:
    missing = await api.http.get(ME)
    forged = await api.http.get(ME, headers=api.bearer("not.a.token"))

    assert missing.status_code == forged.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"


async def test_a_service_token_cannot_read_a_profile(api) -> None:
    token = (
        await api.http.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "worker",
                "client_secret": "worker-development-secret",
            },
        )
    ).json()["access_token"]

    response = await api.http.get(ME, headers=api.bearer(token))

    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["profile"]


async def test_me_for_a_deleted_account_is_404(api, engine) -> None:
    token = await api.user_token()
    async with engine.begin() as connection:
        await connection.execute(User.__table__.delete())

    response = await api.http.get(ME, headers=api.bearer(token))

    assert response.status_code == 404


async def test_patch_changes_and_clears_the_display_name(api) -> None:
    token = await api.user_token(display_name="Alice")

    renamed = await api.http.patch(ME, json={"display_name": " Ali "}, headers=api.bearer(token))
    unchanged = await api.http.patch(ME, json={}, headers=api.bearer(token))
    cleared = await api.http.patch(ME, json={"display_name": None}, headers=api.bearer(token))

    assert renamed.status_code == 200
    assert renamed.json()["display_name"] == "Ali"
    assert unchanged.json()["display_name"] == "Ali"
    assert cleared.json()["display_name"] is None


async def test_patch_cannot_change_the_role_or_email(api) -> None:
    token = await api.user_token()

    response = await api.http.patch(ME, json={"role": "admin"}, headers=api.bearer(token))

    assert response.status_code == 422


async def test_a_password_change_needs_the_current_password(api) -> None:
    token = await api.user_token()

    missing = await api.http.patch(ME, json={"password": NEW_PASSWORD}, headers=api.bearer(token))
    wrong = await api.http.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": "not it at all 1"},
        headers=api.bearer(token),
    )

    assert missing.status_code == 422
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "The current password is wrong."
    await api.login()


async def test_a_password_change_takes_effect_and_ends_other_sessions(api, engine) -> None:
    token = await api.user_token()
    other_session = await api.login()

    response = await api.http.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": api.password},
        headers=api.bearer(token),
    )

    assert response.status_code == 200
    old = await api.http.post(
        "/api/v1/auth/login", json={"email": "alice@example.com", "password": api.password}
    )
    assert old.status_code == 401
    await api.login(password=NEW_PASSWORD)
    refreshed = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": other_session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    async with engine.connect() as connection:
        stored = (await connection.execute(select(User.password_hash))).scalar_one()
        revoked = (await connection.execute(select(RefreshToken.revoked_at))).scalars().all()
    assert NEW_PASSWORD not in stored
    assert sum(value is not None for value in revoked) == 2


async def test_a_new_password_must_pass_the_policy(api) -> None:
    token = await api.user_token()

    same_as_email = await api.http.patch(
        ME,
        json={"password": "ALICE@example.com", "current_password": api.password},
        headers=api.bearer(token),
    )
    too_short = await api.http.patch(
        ME, json={"password": "short", "current_password": api.password}, headers=api.bearer(token)
    )

    assert same_as_email.status_code == 422
    assert same_as_email.json()["errors"] == [
        {
            "loc": ["body", "password"],
            "msg": "Password must not be the email address.",
            "type": "password_policy",
        }
    ]
    assert too_short.status_code == 422


async def test_admins_list_users_page_by_page(make_settings, make_client, make_api) -> None:
    settings = make_settings(admin_emails=["admin@example.com"])
    async with make_client(create_app(settings)) as http:
        client = make_api(http)
        admin_token = await client.user_token("admin@example.com")
        for name in ("b", "c", "d"):
            await client.signup(f"{name}@example.com")
        headers = client.bearer(admin_token)

        first = await http.get(USERS, params={"limit": 2}, headers=headers)
        cursor = first.json()["next_cursor"]
        second = await http.get(USERS, params={"limit": 2, "cursor": cursor}, headers=headers)
        everything = await http.get(USERS, headers=headers)

    assert first.status_code == 200
    assert [user["email"] for user in first.json()["items"]] == [
        "admin@example.com",
        "b@example.com",
    ]
    assert cursor
    assert [user["email"] for user in second.json()["items"]] == ["c@example.com", "d@example.com"]
    assert second.json()["next_cursor"] is None
    assert len(everything.json()["items"]) == 4
    assert everything.json()["next_cursor"] is None


async def test_the_listing_is_403_for_non_admins(api) -> None:
    token = await api.user_token()

    response = await api.http.get(USERS, headers=api.bearer(token))

    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["users:admin"]


async def test_an_invalid_cursor_or_limit_is_422(make_settings, make_client, make_api) -> None:
    settings = make_settings(admin_emails=["admin@example.com"])
    async with make_client(create_app(settings)) as http:
        client = make_api(http)
        headers = client.bearer(await client.user_token("admin@example.com"))
        responses = [
            await http.get(USERS, params=params, headers=headers)
            for params in (
                {"cursor": "!!!"},
                {"cursor": cursor_of(["not a date", "x"])},
                {"cursor": cursor_of(["2024-01-01T00:00:00", str(uuid.UUID(int=1))])},
                {"cursor": cursor_of({"not": "a list"})},
                {"limit": 0},
                {"limit": 101},
            )
        ]

    assert [response.status_code for response in responses] == [422] * 6


async def test_a_client_token_with_the_profile_scope_names_no_user(
    make_settings, make_client
) -> None:
    clients = {"kiosk": {"secret": "a-long-kiosk-secret", "scopes": ["profile"]}}
    async with make_client(create_app(make_settings(service_clients=clients))) as http:
        token = (
            await http.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "kiosk",
                    "client_secret": "a-long-kiosk-secret",
                },
            )
        ).json()["access_token"]
        response = await http.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 404
