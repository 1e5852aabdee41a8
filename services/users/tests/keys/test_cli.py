"""``users-rotate-keys``: a new active key, the previous one published until its tokens expire."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from sqlalchemy import select, update

from chassis.auth import SigningKey, generate_rsa_key
from chassis.database import utc_now
from users.keys.cli import main
from users.keys.models import SigningKeyRecord
from users.main import create_app
from users.settings import UsersSettings

JWKS = "/.well-known/jwks.json"
ME = "/api/v1/users/me"


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def jwks_kids(http) -> set[str]:
    return {key["kid"] for key in (await http.get(JWKS)).json()["keys"]}


async def test_rotation_keeps_the_previous_public_key_until_it_expires(
    make_settings, make_client, make_api, engine, migrated_database_url, monkeypatch, capsys
) -> None:
    # Re-read keys at once, so the test need not wait for the refresh interval.
    settings = make_settings(
        signing={"key_refresh_seconds": 0.01}, auth={"jwks_min_refresh_interval_seconds": 0}
    )
    monkeypatch.setenv("USERS_DATABASE__URL", migrated_database_url)
    async with make_client(create_app(settings)) as http:
        client = make_api(http)
        old_token = await client.user_token()
        old_kid = kid_of(old_token)

        assert await asyncio.to_thread(main, []) == 0
        await asyncio.sleep(0.02)

        new_token = (await client.login())["access_token"]
        new_kid = kid_of(new_token)
        kids_after_rotation = await jwks_kids(http)
        old_still_valid = await http.get(ME, headers=client.bearer(old_token))
        new_valid = await http.get(ME, headers=client.bearer(new_token))

        # Once the old key's tokens have all expired, the key leaves the set.
        async with engine.begin() as connection:
            await connection.execute(
                update(SigningKeyRecord)
                .where(SigningKeyRecord.kid == old_kid)
                .values(retired_at=long_ago(settings))
            )
        await asyncio.sleep(0.02)
        kids_after_expiry = await jwks_kids(http)

    assert new_kid != old_kid
    assert f"new active signing key {new_kid}" in capsys.readouterr().out
    assert kids_after_rotation == {old_kid, new_kid}
    assert old_still_valid.status_code == new_valid.status_code == 200
    assert kids_after_expiry == {new_kid}
    async with engine.connect() as connection:
        rows = (await connection.execute(select(SigningKeyRecord))).all()
    retired = [row for row in rows if row.kid == old_kid]
    assert retired[0].private_pem is None
    # A fresh process (another replica) no longer accepts the expired key.
    async with make_client(create_app(settings)) as http:
        refused = await http.get(ME, headers=client.bearer(old_token))
        accepted = await http.get(ME, headers=client.bearer(new_token))
    assert refused.status_code == 401
    assert accepted.status_code == 200


def long_ago(settings: UsersSettings) -> datetime:
    """A retirement time old enough that every token the key signed has expired."""
    return utc_now() - timedelta(seconds=settings.retired_key_publish_seconds + 1)


async def test_rotation_prunes_keys_retired_long_ago(
    make_settings, make_client, engine, migrated_database_url, monkeypatch
) -> None:
    monkeypatch.setenv("USERS_DATABASE__URL", migrated_database_url)
    async with make_client(create_app(make_settings())):
        pass
    assert await asyncio.to_thread(main, []) == 0
    async with engine.begin() as connection:
        await connection.execute(
            update(SigningKeyRecord)
            .where(SigningKeyRecord.retired_at.is_not(None))
            .values(retired_at=long_ago(make_settings()))
        )

    assert await asyncio.to_thread(main, []) == 0

    async with engine.connect() as connection:
        rows = (await connection.execute(select(SigningKeyRecord))).all()
    assert len(rows) == 2
    assert sum(row.retired_at is None for row in rows) == 1


def test_a_key_from_a_secret_is_not_rotated_here(monkeypatch, capsys) -> None:
    pem = generate_rsa_key().to_private_pem().decode()
    monkeypatch.setenv("USERS_SIGNING__PRIVATE_KEY_PEM", pem)

    assert main([]) == 2
    assert "replacing that secret" in capsys.readouterr().err


def test_print_pem_makes_a_key_for_the_secret(capsys) -> None:
    assert main(["--print-pem"]) == 0

    key = SigningKey.from_private_pem(capsys.readouterr().out)
    assert key.algorithm == "RS256"


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "users-rotate-keys"

    result = subprocess.run(
        [str(script), "--print-pem"], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----")
