"""Which Redis the platform uses: ``REDIS_URL``, else a local one, else one we start, else stop."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 6379
INSTALL_HINT = (
    "no Redis: set REDIS_URL=redis://host:port/db, start one on 127.0.0.1:6379, "
    "or install redis-server (Debian/Ubuntu: `apt-get install redis-server`, "
    "macOS: `brew install redis`) and `make dev` starts its own"
)


class RedisSource(Enum):
    ENV = "REDIS_URL"
    LOCAL = "local"
    START = "start"
    MISSING = "missing"


@dataclass(frozen=True)
class RedisChoice:
    source: RedisSource
    url: str | None = None
    server_binary: str | None = None


def ping(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def discover_redis(
    env: Mapping[str, str],
    *,
    ping: Callable[[str, int], bool] = ping,
    which: Callable[[str], str | None] = shutil.which,
) -> RedisChoice:
    """``REDIS_URL`` if set; else 127.0.0.1:6379 if it answers; else redis-server; else missing."""
    url = env.get("REDIS_URL", "").strip()
    if url:
        return RedisChoice(RedisSource.ENV, url=url)
    if ping(LOCAL_HOST, LOCAL_PORT):
        return RedisChoice(RedisSource.LOCAL, url=f"redis://{LOCAL_HOST}:{LOCAL_PORT}/0")
    binary = which("redis-server")
    if binary:
        return RedisChoice(RedisSource.START, server_binary=binary)
    return RedisChoice(RedisSource.MISSING)


def redis_server_command(binary: str, port: int) -> list[str]:
    """A throwaway redis-server on loopback: no RDB snapshots, no AOF."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        LOCAL_HOST,
        "--save",
        "",
        "--appendonly",
        "no",
    ]
