"""Figure "CPU per order": what one ``POST /api/v1/orders`` costs every process it touches.

The writes figure counts the gateway and orders while the POSTs are answered;
an order costs more than that. This one runs the worker too and counts, from
the first POST until the last of those orders is fulfilled (or failed): the
gateway, users (the worker's client-credentials tokens), orders (its relay
included), the worker, the Postgres backends connected to the two databases,
and the Redis server. Divided by the orders made, per process and in all.
CPU is read from /proc (user + system), so every process must be local.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
import redis

from event_latency import wait_for_outbox_drained
from load import Measurement, measure, pin_process
from platform_launch import Platform, admin_postgres_url, redis_url

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Statuses an order leaves once the worker has run its fulfilment job.
_UNFINISHED = ("pending", "confirmed")


def process_cpu(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds per pid; a pid that has exited is left out."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return seconds


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def postgres_backends(databases: Iterable[str]) -> list[int]:
    """Pids of the server processes serving connections to `databases`."""
    names = [_plain(url).rsplit("/", 1)[1].split("?", 1)[0] for url in databases]
    with psycopg.connect(admin_postgres_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (names,),
        ).fetchall()
    return [row[0] for row in rows]


def redis_server_pid() -> int | None:
    info: dict[str, Any] = redis.Redis.from_url(redis_url()).info("server")
    pid = info.get("process_id")
    return int(pid) if pid else None


def _database_now(orders_url: str) -> Any:
    with psycopg.connect(_plain(orders_url), autocommit=True) as conn:
        row = conn.execute("SELECT now()").fetchone()
    return row[0] if row is not None else None


def _orders_since(orders_url: str, since: Any, *, unfinished: bool = False) -> int:
    query = "SELECT count(*) FROM orders WHERE created_at >= %s"
    if unfinished:
        query += " AND status = ANY(%s)"
    with psycopg.connect(_plain(orders_url), autocommit=True) as conn:
        row = conn.execute(query, (since, list(_UNFINISHED)) if unfinished else (since,)).fetchone()
    return row[0] if row is not None else 0


def _settle_backlog(orders_url: str, *, timeout: float = 60.0, stall: float = 3.0) -> None:
    """Let the worker finish earlier orders first, so their work is not counted here.

    Stops when none is left, or when the count has not moved for `stall` seconds (an
    order whose job is gone waits for the expiry cron, not for the worker).
    """
    epoch = _database_now(orders_url).replace(year=2000)
    started = last_change = time.perf_counter()
    last = _orders_since(orders_url, epoch, unfinished=True)
    while last and time.perf_counter() - started < timeout:
        time.sleep(0.5)
        left = _orders_since(orders_url, epoch, unfinished=True)
        if left != last:
            last, last_change = left, time.perf_counter()
        elif time.perf_counter() - last_change > stall:
            return


def wait_until_fulfilled(orders_url: str, since: Any, *, timeout: float = 120.0) -> float:
    """Wait until every order made since `since` has left pending and confirmed."""
    started = time.perf_counter()
    while (left := _orders_since(orders_url, since, unfinished=True)) > 0:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{left} orders still unfinished after {timeout:g} s")
        time.sleep(0.2)
    return time.perf_counter() - started


def cpu_per_order(
    platform: Platform,
    *,
    url: str,
    headers: dict[str, str],
    script: Path,
    duration: float,
    connections: int,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """POST orders for `duration` with the worker running; CPU per order, by process."""
    started_worker = False
    if "worker" not in platform.running():
        platform.start("worker")
        pin_process(platform.process("worker").pid)
        started_worker = True
    try:
        return _measure(
            platform,
            url=url,
            headers=headers,
            script=script,
            duration=duration,
            connections=connections,
            say=say,
        )
    finally:
        if started_worker:
            platform.stop("worker")


def _measure(
    platform: Platform,
    *,
    url: str,
    headers: dict[str, str],
    script: Path,
    duration: float,
    connections: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    orders_url = platform.config.orders_database_url
    databases = (platform.config.users_database_url, orders_url)
    _settle_backlog(orders_url)
    apps = {name: platform.process(name).pid for name in ("gateway", "users", "orders", "worker")}
    redis_pid = redis_server_pid()
    groups: dict[str, list[int]] = {name: [pid] for name, pid in apps.items()}
    groups["postgres"] = postgres_backends(databases)
    if redis_pid is not None:
        groups["redis"] = [redis_pid]
    before = {name: process_cpu(pids) for name, pids in groups.items()}
    # Only this run's orders are waited for: the writes figure's (no worker then) may
    # have had their jobs flushed, and the expiry cron settles those later.
    since = _database_now(orders_url)
    result: Measurement = measure(
        url,
        duration=duration,
        connections=connections,
        server_pids=list(apps.values()),
        headers=headers,
        script=script,
        script_args=[f"cost-{uuid.uuid4().hex[:8]}"],
    )
    if result.errors:
        raise RuntimeError(f"cpu per order: {result.errors} failed responses")
    try:
        drained = wait_for_outbox_drained(platform) + wait_until_fulfilled(orders_url, since)
    except RuntimeError:
        # Say why: the worker's last lines (its job outcomes, retries, upstream errors).
        worker_log = platform.log_path("worker")
        if worker_log.exists():
            say("\n".join(worker_log.read_text(errors="replace").splitlines()[-20:]))
        raise
    # Backends opened during the run are counted from zero (they did not exist before).
    groups["postgres"] = sorted(set(groups["postgres"]) | set(postgres_backends(databases)))
    after = {name: process_cpu(pids) for name, pids in groups.items()}
    orders = _orders_since(orders_url, since)
    if orders <= 0:
        raise RuntimeError("cpu per order: no order was made")
    per_process = {
        name: round(
            sum(seconds - before[name].get(pid, 0.0) for pid, seconds in after[name].items())
            / orders
            * 1e3,
            3,
        )
        for name in groups
    }
    total = round(sum(per_process.values()), 3)
    say(
        f"  cpu per order {total:6.2f} ms over {orders} orders ("
        + ", ".join(f"{name} {ms:.2f}" for name, ms in per_process.items())
        + f"; fulfilled {drained:.1f} s after the load)"
    )
    return {
        "orders": orders,
        "cpu_ms_per_order": total,
        "cpu_ms_per_order_by_process": per_process,
        "seconds_to_fulfil_after_load": round(drained, 1),
        "requests_per_second": result.requests_per_second,
    }
