"""The key store: keys from a secret, shared generated keys, and riding out a database blip."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from chassis.auth import generate_rsa_key
from chassis.database import Database
from chassis.settings import DatabaseSettings
from chassis.testing.clock import ManualClock
from users.keys.models import SigningKeyRecord
from users.keys.store import KeyStore
from users.main import create_app

JWKS = "/.well-known/jwks.json"
ME = "/api/v1/users/me"


async def kids(http) -> list[str]:
    return [key["kid"] for key in (await http.get(JWKS)).json()["keys"]]


async def test_a_key_from_the_secret_signs_and_only_its_public_part_is_stored(
    make_settings, make_client, make_api, engine
) -> None:
    key = generate_rsa_key()
    settings = make_settings(signing={"private_key_pem": key.to_private_pem().decode()})

    async with make_client(create_app(settings)) as http:
        token = await make_api(http).user_token()
        published = await kids(http)
        ready = await http.get("/health/ready")

    assert jwt.get_unverified_header(token)["kid"] == key.kid
    assert published == [key.kid]
    assert ready.json()["checks"]["signing_keys"]["details"]["source"] == "secret"
    async with engine.connect() as connection:
        (row,) = (await connection.execute(select(SigningKeyRecord))).all()
    assert row.kid == key.kid
    assert row.private_pem is None
    assert row.retired_at is None


async def test_a_new_secret_retires_the_old_key_but_keeps_it_published(
    make_settings, make_client, make_api, engine
) -> None:
    old, new = generate_rsa_key(), generate_rsa_key()
    first = make_settings(signing={"private_key_pem": old.to_private_pem().decode()})
    second = make_settings(signing={"private_key_pem": new.to_private_pem().decode()})
    async with make_client(create_app(first)) as http:
        old_token = await make_api(http).user_token()

    async with make_client(create_app(second)) as http:
        client = make_api(http)
        new_token = (await client.login())["access_token"]
        published = await kids(http)
        old_accepted = await http.get(ME, headers=client.bearer(old_token))

    # Rolling back to the first secret makes its key active again.
    async with make_client(create_app(first)) as http:
        rolled_back = (await make_api(http).login())["access_token"]

    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    assert published == [new.kid, old.kid]
    assert old_accepted.status_code == 200
    assert jwt.get_unverified_header(rolled_back)["kid"] == old.kid
    async with engine.connect() as connection:
        rows = {row.kid: row for row in (await connection.execute(select(SigningKeyRecord)))}
    assert rows[old.kid].retired_at is None
    assert rows[new.kid].retired_at is not None


async def test_replicas_share_the_generated_key(make_settings, make_client) -> None:
    settings = make_settings()

    async with make_client(create_app(settings)) as one, make_client(create_app(settings)) as two:
        first, second = await kids(one), await kids(two)

    assert first == second
    assert len(first) == 1


async def test_a_generated_key_replaces_one_that_came_from_a_secret(
    make_settings, make_client, engine
) -> None:
    secret_key = generate_rsa_key()
    from_secret = make_settings(signing={"private_key_pem": secret_key.to_private_pem().decode()})
    async with make_client(create_app(from_secret)):
        pass

    async with make_client(create_app(make_settings())) as http:
        published = await kids(http)

    assert len(published) == 2
    assert published[1] == secret_key.kid


async def test_the_last_keys_keep_serving_while_the_database_is_unreachable(
    settings, closed_port_url
) -> None:
    database = Database.from_settings(settings)
    clock = ManualClock()
    store = KeyStore(
        database,
        configured_key=None,
        publish_seconds=settings.retired_key_publish_seconds,
        refresh_seconds=30,
        clock=clock,
    )
    try:
        await store.start()
        before = await store.signing_key()
        down = Database.from_settings(
            settings.model_copy(
                update={
                    "database": DatabaseSettings(url=closed_port_url, connect_timeout_seconds=1)
                }
            )
        )
        store.database = down
        clock.advance(31)

        after = await store.signing_key()
        jwks = await store.jwks()
        await down.dispose()
    finally:
        await database.dispose()

    assert after.kid == before.kid
    assert [key["kid"] for key in jwks["keys"]] == [before.kid]


async def test_replicas_starting_together_agree_on_one_generated_key(settings, engine) -> None:
    databases = [Database.from_settings(settings) for _ in range(2)]
    stores = [
        KeyStore(database, configured_key=None, publish_seconds=60, refresh_seconds=30)
        for database in databases
    ]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        active = [(await store.signing_key()).kid for store in stores]
    finally:
        for database in databases:
            await database.dispose()

    assert active[0] == active[1]
    async with engine.connect() as connection:
        rows = (await connection.execute(select(SigningKeyRecord))).all()
    assert [row.kid for row in rows if row.retired_at is None] == [active[0]]


async def test_restarting_with_the_same_secret_keeps_one_active_key(
    make_settings, make_client, engine
) -> None:
    key = generate_rsa_key()
    settings = make_settings(signing={"private_key_pem": key.to_private_pem().decode()})

    for _ in range(2):
        async with make_client(create_app(settings)) as http:
            assert await kids(http) == [key.kid]

    async with engine.connect() as connection:
        rows = (await connection.execute(select(SigningKeyRecord))).all()
    assert [(row.kid, row.retired_at) for row in rows] == [(key.kid, None)]


async def test_a_store_that_never_loaded_fails_loudly(settings, closed_port_url) -> None:
    down = Database.from_settings(
        settings.model_copy(
            update={"database": DatabaseSettings(url=closed_port_url, connect_timeout_seconds=1)}
        )
    )
    store = KeyStore(down, configured_key=None, publish_seconds=60, refresh_seconds=30)
    try:
        with pytest.raises(OperationalError):
            await store.signing_key()
        with pytest.raises(RuntimeError, match="not loaded"):
            store.status()
    finally:
        await down.dispose()
