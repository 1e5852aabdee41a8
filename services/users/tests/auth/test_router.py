"""The auth API: sign-up, login (JSON and form), refresh rotation, logout, client credentials."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from chassis.testing import eventually
from users.auth.models import RefreshToken
from users.main import create_app
from users.user.models import User

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
TOKEN = "/api/v1/auth/token"


def without_ids(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key not in ("request_id", "trace_id")}


# --- sign-up -------------------------------------------------------------------------------


async def test_signup_returns_the_user_with_a_normalised_email(api, engine) -> None:
    response = await api.http.post(
        SIGNUP,
        json={
            "email": "  Alice.Smith@Example.COM ",
            "password": api.password,
            "display_name": "  Alice ",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "alice.smith@example.com"
    assert body["display_name"] == "Alice"
    assert body["role"] == "user"
    assert uuid.UUID(body["id"])
    assert body["created_at"]
    assert set(body) == {"id", "email", "display_name", "role", "created_at"}
    async with engine.connect() as connection:
        stored = (await connection.execute(select(User.email, User.password_hash))).one()
    assert stored.email == "alice.smith@example.com"
    assert stored.password_hash.startswith("$argon2id$")
    assert api.password not in stored.password_hash


async def test_a_taken_email_is_409_whatever_its_case(api) -> None:
    await api.signup("bob@example.com")

    again = await api.http.post(SIGNUP, json={"email": "BOB@Example.com", "password": api.password})

    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"] == "An account with this email already exists."


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Short1", "at least 12 characters"),
        ("x" * 129, "at most 128 characters"),
        ("alllowercaseletters", "two kinds of characters"),
        ("123456789012345", "two kinds of characters"),
        ("Carol@Example.com", "not be the email address"),
    ],
)
async def test_a_password_the_policy_refuses_is_422_with_errors(api, password, problem) -> None:
    response = await api.http.post(
        SIGNUP, json={"email": "carol@example.com", "password": password}
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [error["loc"] for error in errors] == [["body", "password"]]
    assert problem in errors[0]["msg"]
    assert password not in response.text


@pytest.mark.parametrize("email", ["not-an-email", "", "a@", "@example.com"])
async def test_an_invalid_email_is_422(api, email) -> None:
    response = await api.http.post(SIGNUP, json={"email": email, "password": api.password})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "email"]


async def test_signup_cannot_choose_its_role(api) -> None:
    response = await api.http.post(
        SIGNUP, json={"email": "eve@example.com", "password": api.password, "role": "admin"}
    )

    assert response.status_code == 422


async def test_emails_listed_as_admins_sign_up_as_admins(make_settings, make_client) -> None:
    settings = make_settings(admin_emails=["Ops@Example.com"])
    async with make_client(create_app(settings)) as http:
        admin = await http.post(
            SIGNUP, json={"email": "ops@example.com", "password": "correct horse battery 2"}
        )
        user = await http.post(
            SIGNUP, json={"email": "dev@example.com", "password": "correct horse battery 2"}
        )

    assert admin.json()["role"] == "admin"
    assert user.json()["role"] == "user"


# --- login ---------------------------------------------------------------------------------


async def test_login_with_json_returns_a_signed_token_pair(api) -> None:
    user = await api.signup()

    response = await api.http.post(
        LOGIN, json={"email": "alice@example.com", "password": api.password}
    )

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 300
    claims = api.claims(pair["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["iss"] == "chassis-users"
    assert claims["aud"] == "chassis-api"
    assert claims["kind"] == "user"
    assert claims["scope"].split() == ["orders:read", "orders:write", "profile"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert "email" not in claims
    assert "alice" not in str(claims)


async def test_admins_get_the_admin_scopes(make_settings, make_client, api) -> None:
    async with make_client(create_app(make_settings(admin_emails=["root@example.com"]))) as http:
        await http.post(SIGNUP, json={"email": "root@example.com", "password": api.password})
        pair = (
            await http.post(LOGIN, json={"email": "root@example.com", "password": api.password})
        ).json()

    assert set(api.claims(pair["access_token"])["scope"].split()) == {
        "orders:read",
        "orders:write",
        "profile",
        "users:admin",
        "orders:admin",
    }


async def test_login_with_the_oauth2_password_form(api) -> None:
    await api.signup()

    response = await api.http.post(
        LOGIN,
        data={"username": "alice@example.com", "password": api.password, "grant_type": "password"},
    )

    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


async def test_login_matches_the_email_whatever_its_case_and_spaces(api) -> None:
    await api.signup()

    response = await api.http.post(
        LOGIN, json={"email": " ALICE@example.com ", "password": api.password}
    )

    assert response.status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(api) -> None:
    await api.signup()

    wrong_password = await api.http.post(
        LOGIN, json={"email": "alice@example.com", "password": "not the password 1"}
    )
    unknown_email = await api.http.post(
        LOGIN, json={"email": "nobody@example.com", "password": api.password}
    )
    form = await api.http.post(LOGIN, data={"username": "nobody@example.com", "password": "x"})

    assert wrong_password.status_code == unknown_email.status_code == form.status_code == 401
    assert without_ids(wrong_password.json()) == without_ids(unknown_email.json())
    assert without_ids(form.json()) == without_ids(unknown_email.json())
    assert unknown_email.json()["detail"] == "Invalid email or password."
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"email": "alice@example.com"}', {"content-type": "application/json"}),
        (b"{not json", {"content-type": "application/json"}),
        (b"username=alice%40example.com", {"content-type": "application/x-www-form-urlencoded"}),
    ],
)
async def test_a_malformed_login_is_422(api, content, headers) -> None:
    response = await api.http.post(LOGIN, content=content, headers=headers)

    assert response.status_code == 422
    assert response.json()["errors"]


async def test_a_rejected_login_does_not_echo_the_password(api) -> None:
    secret = "s3cret-that-must-not-leak"
    response = await api.http.post(
        LOGIN, json={"email": ["not", "a", "string"], "password": secret}
    )

    assert response.status_code == 422
    assert secret not in response.text


async def test_too_many_logins_from_one_address_get_429_with_retry_after(
    make_settings, make_client, redis_url
) -> None:
    settings = make_settings(
        login_limit={"requests": 3, "window_seconds": 60},
        rate_limit={"backend": "redis"},
    )
    async with make_client(create_app(settings)) as http:
        statuses = [
            (
                await http.post(LOGIN, json={"email": "x@example.com", "password": "wrong-1234"})
            ).status_code
            for _ in range(3)
        ]
        limited = await http.post(LOGIN, json={"email": "x@example.com", "password": "wrong"})
        # The general budget is separate: other routes still answer.
        other = await http.post(REFRESH, json={"refresh_token": "nope"})

    assert statuses == [401, 401, 401]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 401


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_too_many_logins_for_one_account_get_429_from_any_address(
    make_settings, make_client, make_api, backend
) -> None:
    settings = make_settings(
        login_limit={"requests": 1000, "account_requests": 3, "account_window_seconds": 60},
        rate_limit={"backend": backend},
    )
    async with make_client(create_app(settings)) as http:
        api = make_api(http)
        await api.signup("victim@example.com")
        await api.signup("bystander@example.com")

        async def attempt(address: str, email: str, password: str) -> Any:
            # Every guess from another address: the per-IP rule never sees a repeat.
            return await http.post(
                LOGIN,
                json={"email": email, "password": password},
                headers={"X-Forwarded-For": address},
            )

        guesses = [
            (await attempt(f"203.0.113.{n}", " Victim@Example.com", "wrong-guess-1234")).status_code
            for n in range(3)
        ]
        # The right password no longer helps: a 429 says nothing about the guess.
        right = await attempt("203.0.113.50", "victim@example.com", api.password)
        other = await attempt("203.0.113.51", "bystander@example.com", api.password)

    assert guesses == [401, 401, 401]
    assert right.status_code == 429
    assert right.headers["content-type"] == "application/problem+json"
    assert 0 < int(right.headers["retry-after"]) <= 60
    assert "access_token" not in right.text
    assert other.status_code == 200


async def test_unknown_emails_are_throttled_like_accounts(make_settings, make_client) -> None:
    settings = make_settings(login_limit={"requests": 1000, "account_requests": 2})
    async with make_client(create_app(settings)) as http:
        statuses = [
            (
                await http.post(
                    LOGIN, json={"email": "nobody@example.com", "password": "wrong-1234"}
                )
            ).status_code
            for _ in range(3)
        ]

    assert statuses == [401, 401, 429]


async def test_the_account_throttle_is_off_with_rate_limits_off(make_settings, make_client) -> None:
    settings = make_settings(
        login_limit={"requests": 1000, "account_requests": 1}, rate_limit={"enabled": False}
    )
    async with make_client(create_app(settings)) as http:
        statuses = [
            (await http.post(LOGIN, json={"email": "x@example.com", "password": "w"})).status_code
            for _ in range(3)
        ]

    assert statuses == [401, 401, 401]


# --- refresh and logout --------------------------------------------------------------------


async def test_refresh_rotates_the_pair(api) -> None:
    await api.signup()
    first = await api.login()

    response = await api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert api.claims(second["access_token"])["sub"] == api.claims(first["access_token"])["sub"]
    me = await api.http.get("/api/v1/users/me", headers=api.bearer(second["access_token"]))
    assert me.status_code == 200
    third = await api.http.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_refresh_tokens_are_stored_hashed_in_one_family(api, engine) -> None:
    await api.signup()
    first = await api.login()
    second = (await api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(RefreshToken).order_by(RefreshToken.created_at))
        ).all()

    assert len(rows) == 2
    assert rows[0].family_id == rows[1].family_id
    assert rows[1].parent_id == rows[0].id
    assert rows[0].rotated_at is not None
    assert rows[1].rotated_at is None
    stored = {row.token_hash for row in rows}
    assert first["refresh_token"] not in stored
    assert second["refresh_token"] not in stored
    assert all(len(token_hash) == 64 for token_hash in stored)
    days = (rows[1].expires_at - rows[1].created_at).total_seconds() / 86_400
    assert days == pytest.approx(14)


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(api, engine) -> None:
    await api.signup()
    first = await api.login()
    second = (await api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()
    other_login = await api.login()

    replay = await api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    after = await api.http.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    unrelated = await api.http.post(REFRESH, json={"refresh_token": other_login["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json()["detail"] == "The refresh token is invalid or expired."
    assert after.status_code == 401
    assert unrelated.status_code == 200
    async with engine.connect() as connection:
        rows = (await connection.execute(select(RefreshToken))).all()
    revoked = [row for row in rows if row.revoked_at is not None]
    assert len(revoked) == 2
    assert len({row.family_id for row in revoked}) == 1


async def test_two_refreshes_racing_with_one_token_leave_no_live_successor(api) -> None:
    await api.signup()
    first = await api.login()

    responses = await asyncio.gather(
        api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]}),
        api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]}),
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 401], [401, 401])
    for response in responses:
        if response.status_code == 200:
            successor = response.json()["refresh_token"]
            again = await api.http.post(REFRESH, json={"refresh_token": successor})
            assert again.status_code == 401


async def test_a_refresh_that_waited_for_a_concurrent_one_revokes_the_family(api, engine) -> None:
    await api.signup()
    first = await api.login()

    async def waiting_for_a_lock() -> bool:
        async with engine.connect() as connection:
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    async with engine.begin() as winner:
        # The other refresh has rotated the token and not committed yet.
        await winner.execute(update(RefreshToken).values(rotated_at=func.now()))
        loser = asyncio.create_task(
            api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
        )
        await eventually(waiting_for_a_lock, within=10)

    # The loser's revocation must not wait for a lock its own request still holds.
    response = await asyncio.wait_for(loser, timeout=10)
    assert response.status_code == 401
    async with engine.connect() as connection:
        rows = (await connection.execute(select(RefreshToken))).all()
    assert [row.revoked_at is not None for row in rows] == [True]


async def test_an_expired_refresh_token_is_refused(api, engine) -> None:
    await api.signup()
    pair = await api.login()
    async with engine.begin() as connection:
        await connection.execute(update(RefreshToken).values(expires_at=RefreshToken.created_at))

    response = await api.http.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 401


async def test_an_unknown_refresh_token_is_refused(api) -> None:
    response = await api.http.post(REFRESH, json={"refresh_token": "made-up"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_refresh_for_a_deleted_account_is_refused(api, engine) -> None:
    await api.signup()
    pair = await api.login()
    async with engine.begin() as connection:
        await connection.execute(User.__table__.delete())

    response = await api.http.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 401


async def test_logout_revokes_the_family(api, engine) -> None:
    await api.signup()
    first = await api.login()
    second = (await api.http.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

    response = await api.http.post(LOGOUT, json={"refresh_token": second["refresh_token"]})
    after = await api.http.post(REFRESH, json={"refresh_token": second["refresh_token"]})

    assert response.status_code == 204
    assert response.content == b""
    assert after.status_code == 401
    async with engine.connect() as connection:
        revoked = (await connection.execute(select(RefreshToken.revoked_at))).scalars().all()
    assert len(revoked) == 2
    assert all(value is not None for value in revoked)


async def test_logout_with_an_unknown_or_spent_token_is_still_204(api) -> None:
    await api.signup()
    pair = await api.login()
    await api.http.post(LOGOUT, json={"refresh_token": pair["refresh_token"]})

    again = await api.http.post(LOGOUT, json={"refresh_token": pair["refresh_token"]})
    unknown = await api.http.post(LOGOUT, json={"refresh_token": "made-up"})

    assert again.status_code == unknown.status_code == 204


# --- client credentials --------------------------------------------------------------------


def client_form(**overrides: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "worker",
        "client_secret": "worker-development-secret",
        **overrides,
    }


async def test_client_credentials_issue_a_service_token(api) -> None:
    response = await api.http.post(TOKEN, data=client_form())

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["scope"] == "orders:internal"
    claims = api.claims(body["access_token"])
    assert claims["kind"] == "service"
    assert claims["sub"] == "service:worker"
    assert claims["scope"] == "orders:internal"
    assert claims["aud"] == "chassis-api"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 300


async def test_configured_clients_get_their_scopes_or_a_subset(make_settings, make_client) -> None:
    clients = {"reports": {"secret": "a-long-reports-secret", "scopes": ["orders:read", "x:y"]}}
    async with make_client(create_app(make_settings(service_clients=clients))) as http:
        everything = await http.post(
            TOKEN, data=client_form(client_id="reports", client_secret="a-long-reports-secret")
        )
        subset = await http.post(
            TOKEN,
            data=client_form(
                client_id="reports", client_secret="a-long-reports-secret", scope="x:y"
            ),
        )
        too_much = await http.post(
            TOKEN,
            data=client_form(
                client_id="reports", client_secret="a-long-reports-secret", scope="users:admin"
            ),
        )
        old_worker = await http.post(TOKEN, data=client_form())

    assert everything.json()["scope"] == "orders:read x:y"
    assert subset.json()["scope"] == "x:y"
    assert too_much.status_code == 400
    assert too_much.json()["error"] == "invalid_scope"
    assert old_worker.status_code == 401


async def test_a_wrong_secret_or_unknown_client_is_the_same_401(api) -> None:
    wrong = await api.http.post(TOKEN, data=client_form(client_secret="not-the-secret"))
    unknown = await api.http.post(TOKEN, data=client_form(client_id="intruder"))

    assert wrong.status_code == unknown.status_code == 401
    assert without_ids(wrong.json()) == without_ids(unknown.json())
    assert wrong.json()["detail"] == "Invalid client credentials."


async def test_other_grant_types_are_400(api) -> None:
    response = await api.http.post(TOKEN, data=client_form(grant_type="password"))

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_the_token_endpoint_needs_a_form(api) -> None:
    response = await api.http.post(TOKEN, json=client_form())

    assert response.status_code == 422


async def test_concurrent_signups_with_one_email_create_one_account(api, engine) -> None:
    responses = await asyncio.gather(
        *(
            api.http.post(SIGNUP, json={"email": "twin@example.com", "password": api.password})
            for _ in range(3)
        )
    )

    assert sorted(response.status_code for response in responses) == [201, 409, 409]
    async with engine.connect() as connection:
        emails = (await connection.execute(select(User.email))).scalars().all()
    assert emails == ["twin@example.com"]
