"""Which Redis: REDIS_URL, then the local one, then redis-server, then a clear stop."""

from __future__ import annotations

import pytest

from devkit.processes import free_port
from devkit.redis_discovery import (
    INSTALL_HINT,
    RedisChoice,
    RedisSource,
    discover_redis,
    ping,
    redis_server_command,
)


def _no_ping(host: str, port: int) -> bool:
    return False


def _ping_ok(host: str, port: int) -> bool:
    return True


def _no_binary(name: str) -> str | None:
    return None


def _binary(name: str) -> str | None:
    return f"/usr/bin/{name}"


def test_redis_url_wins_over_everything() -> None:
    choice = discover_redis({"REDIS_URL": "redis://r:6380/2"}, ping=_ping_ok, which=_binary)
    assert choice == RedisChoice(RedisSource.ENV, url="redis://r:6380/2")


def test_a_blank_redis_url_counts_as_unset() -> None:
    choice = discover_redis({"REDIS_URL": "  "}, ping=_ping_ok, which=_binary)
    assert choice.source is RedisSource.LOCAL


def test_the_local_redis_when_it_answers_ping() -> None:
    asked: list[tuple[str, int]] = []

    def recording_ping(host: str, port: int) -> bool:
        asked.append((host, port))
        return True

    choice = discover_redis({}, ping=recording_ping, which=_binary)
    assert choice == RedisChoice(RedisSource.LOCAL, url="redis://127.0.0.1:6379/0")
    assert asked == [("127.0.0.1", 6379)]


def test_starts_redis_server_when_nothing_answers() -> None:
    choice = discover_redis({}, ping=_no_ping, which=_binary)
    assert choice == RedisChoice(RedisSource.START, server_binary="/usr/bin/redis-server")


def test_missing_when_there_is_no_redis_at_all() -> None:
    assert discover_redis({}, ping=_no_ping, which=_no_binary).source is RedisSource.MISSING
    assert "redis-server" in INSTALL_HINT
    assert "REDIS_URL" in INSTALL_HINT


def test_redis_server_command_is_loopback_and_keeps_nothing() -> None:
    assert redis_server_command("/usr/bin/redis-server", 7000) == [
        "/usr/bin/redis-server",
        "--port",
        "7000",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def test_ping_is_false_on_a_closed_port() -> None:
    assert ping("127.0.0.1", free_port()) is False


def test_ping_is_true_for_a_real_redis() -> None:
    if not ping("127.0.0.1", 6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    assert ping("127.0.0.1", 6379) is True
