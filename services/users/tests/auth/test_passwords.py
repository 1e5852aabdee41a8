"""Password hashing: argon2id, rehash on login, and no timing tell for unknown emails."""

from __future__ import annotations

import statistics
import time

from sqlalchemy import select

from users.auth.passwords import Passwords
from users.main import create_app
from users.settings import PasswordSettings
from users.user.models import User

FAST = PasswordSettings(time_cost=1, memory_cost_kib=8, parallelism=1)
LOGIN = "/api/v1/auth/login"


async def test_hashes_are_argon2id_and_verify_only_the_right_password() -> None:
    passwords = Passwords(FAST)

    password_hash = await passwords.hash("the password 123")

    assert password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert await passwords.verify(password_hash, "the password 123")
    assert not await passwords.verify(password_hash, "the password 124")
    assert not await passwords.verify("not-a-hash", "the password 123")
    assert not passwords.needs_rehash(password_hash)
    assert Passwords(PasswordSettings()).needs_rehash(password_hash)


async def test_login_rehashes_a_password_hashed_with_older_parameters(
    make_settings, make_client, make_api, engine
) -> None:
    async with make_client(create_app(make_settings())) as http:
        await make_api(http).signup()
    async with engine.connect() as connection:
        before = (await connection.execute(select(User.password_hash))).scalar_one()

    stronger = {"time_cost": 2, "memory_cost_kib": 16, "parallelism": 1}
    async with make_client(create_app(make_settings(passwords=stronger))) as http:
        await make_api(http).login()
        await make_api(http).login()
    async with engine.connect() as connection:
        after = (await connection.execute(select(User.password_hash))).scalar_one()

    assert before.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert after.startswith("$argon2id$v=19$m=16,t=2,p=1$")


async def test_an_unknown_email_costs_as_much_as_a_wrong_password(
    make_settings, make_client, make_api
) -> None:
    # Costly enough that skipping the hash would stand out against request overhead.
    costly = {"time_cost": 3, "memory_cost_kib": 16_384, "parallelism": 1}
    async with make_client(create_app(make_settings(passwords=costly))) as http:
        await make_api(http).signup()

        async def duration(email: str) -> float:
            started = time.perf_counter()
            response = await http.post(LOGIN, json={"email": email, "password": "wrong guess 1"})
            assert response.status_code == 401
            return time.perf_counter() - started

        known = [await duration("alice@example.com") for _ in range(5)]
        unknown = [await duration(f"ghost{n}@example.com") for n in range(5)]

    # Relative, not absolute: both pay one argon2 verification.
    assert statistics.median(unknown) > 0.5 * statistics.median(known)
