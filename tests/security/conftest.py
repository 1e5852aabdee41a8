"""The platform the security suite attacks: every service a real process, logs captured.

One platform for the session (tests.support.platform): users signs with a key
the suite holds (``USERS_SIGNING__PRIVATE_KEY_PEM``, as production does), so
attack tokens can be minted that differ from a valid one in exactly one claim;
one admin email is configured; every process writes its output to a file that
the leak test reads. Rate limits on this platform are out of the way (the
fuzzer sends hundreds of requests from one address); the limit tests start
processes of their own with the limits they check. Redis database 8, or
``CHASSIS_SECURITY_REDIS_DB``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from chassis.auth import SigningKey, generate_rsa_key
from chassis.testing.plugin import redis_test_url
from tests.support.platform import (
    WORKER_CLIENT_SECRET,
    Platform,
    PlatformConfig,
    migrate,
    running_platform,
)

SECURITY_REDIS_DB = int(os.environ.get("CHASSIS_SECURITY_REDIS_DB", "8"))
ISSUER = "chassis-users"
AUDIENCE = "chassis-api"
ALLOWED_ORIGIN = "https://app.example.com"
#: Cheap argon2: the suite tests who gets in, not what a hash costs.
FAST_PASSWORDS = {
    "USERS_PASSWORDS__TIME_COST": "1",
    "USERS_PASSWORDS__MEMORY_COST_KIB": "8",
    "USERS_PASSWORDS__PARALLELISM": "1",
}
NO_LIMIT = "1000000"


def security_redis_url() -> str:
    return redis_test_url(SECURITY_REDIS_DB)


@dataclass(frozen=True)
class SecurityPlatform:
    """The running platform plus what the suite needs to attack and inspect it."""

    platform: Platform
    signing_key: SigningKey
    signing_key_pem: str
    admin_email: str
    users_database_url: str
    client_secret: str = WORKER_CLIENT_SECRET

    @property
    def gateway(self) -> str:
        return self.platform.gateway

    @property
    def users(self) -> str:
        return self.platform.users

    @property
    def orders(self) -> str:
        return self.platform.orders

    def logs(self) -> dict[str, str]:
        """Everything each service has written so far, by service name."""
        return {
            name: self.platform.log_path(name).read_text(errors="replace")
            for name in ("users", "orders", "gateway", "worker")
        }


@pytest.fixture(scope="session")
def security_platform(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecurityPlatform]:
    users_db = postgres_database_factory("users_security")
    orders_db = postgres_database_factory("orders_security")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    client = redis.Redis.from_url(security_redis_url())
    client.flushdb()
    client.close()

    key = generate_rsa_key()
    pem = key.to_private_pem().decode()
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    config = PlatformConfig(
        users_database_url=users_db,
        orders_database_url=orders_db,
        redis_url=security_redis_url(),
        data_dir=tmp_path_factory.mktemp("security-data"),
        log_dir=tmp_path_factory.mktemp("security-logs"),
        service_env={
            "users": {
                "USERS_SIGNING__PRIVATE_KEY_PEM": pem,
                "USERS_ADMIN_EMAILS": json.dumps([admin_email]),
                "USERS_LOG__JSON_OUTPUT": "true",
                "USERS_RATE_LIMIT__REQUESTS": NO_LIMIT,
                "USERS_LOGIN_LIMIT__REQUESTS": NO_LIMIT,
                "USERS_LOGIN_LIMIT__ACCOUNT_REQUESTS": NO_LIMIT,
                **FAST_PASSWORDS,
            },
            "orders": {
                "ORDERS_LOG__JSON_OUTPUT": "true",
                "ORDERS_RATE_LIMIT__REQUESTS": NO_LIMIT,
            },
            "gateway": {
                "GATEWAY_LOG__JSON_OUTPUT": "true",
                "GATEWAY_RATE_LIMIT__REQUESTS": NO_LIMIT,
                "GATEWAY_RATE_LIMIT__RULES": "[]",
                "GATEWAY_SECURITY__CORS_ORIGINS": json.dumps([ALLOWED_ORIGIN]),
            },
            "worker": {"WORKER_LOG__JSON_OUTPUT": "true"},
        },
    )
    with running_platform(config) as platform:
        yield SecurityPlatform(
            platform=platform,
            signing_key=key,
            signing_key_pem=pem,
            admin_email=admin_email,
            users_database_url=users_db,
        )
