"""Figures that need the platform: gateway cost, writes, and order-event latency.

users, orders and gateway run as real processes (tests/support/platform.py,
the launcher the e2e suites use) with their real settings, each on its own
fresh Postgres database with its Alembic history applied, all on one Redis
database, in the staging environment (as docker compose runs them: JSON
logs, Redis-backed rate limits). Two changes, both said in the report: rate limits
are raised far above the offered load (the limiter still runs on every
request, its cost included), and the worker is not started (these figures
stop at the event; fulfilment jobs wait in the queue, flushed at the end).
Gateway and orders share the server core; the load generator has the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import websockets

from load import BENCH_DIR, LOAD_CPU, Measurement, measure, percentile, pin_process, tool

ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chassis.settings import UpstreamSettings  # noqa: E402
from chassis.testing.processes import free_port, start_process, stop_process_group  # noqa: E402
from orders.settings import OrdersSettings  # noqa: E402
from tests.support.platform import Platform, PlatformConfig, migrate  # noqa: E402

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
ORDER = {"items": [{"sku": "BENCH-1", "quantity": 1, "unit_price_minor": 1000}], "currency": "EUR"}
#: The orders relay's documented default pause between passes (read from the model).
DEFAULT_POLL_INTERVAL = OrdersSettings().outbox.poll_interval_seconds
#: How the relay learns of new rows: woken by the commit (the default) or only by its poll.
RELAY_MODES = ("wake", "poll")
UNLIMITED = "1000000000"
JWKS_PATH = "/.well-known/jwks.json"
#: Upstream transports the gateway figure compares (chassis UpstreamSettings.transport).
TRANSPORTS = ("aiohttp", "httpx")
#: What the platform's gateway runs with: the chassis default (UpstreamSettings.transport).
DEFAULT_TRANSPORT = UpstreamSettings.model_fields["transport"].default


@dataclass
class Account:
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def admin_postgres_url() -> str:
    return os.environ.get(
        "CHASSIS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


@contextlib.contextmanager
def bench_databases() -> Iterator[tuple[str, str]]:
    """Two fresh Postgres databases (users, orders), migrated; dropped on exit."""
    admin = admin_postgres_url()
    base = admin.rpartition("/")[0]
    names = [f"bench_{service}_{uuid.uuid4().hex[:10]}" for service in ("users", "orders")]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        users, orders = (
            f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1) for name in names
        )
        migrate(users_database_url=users, orders_database_url=orders)
        yield users, orders
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _flush_redis() -> None:
    client = redis.Redis.from_url(redis_url())
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def running_platform(
    *, otlp_endpoint: str, log_dir: Path, relay_mode: str = "wake"
) -> Iterator[Platform]:
    """users, orders and gateway pinned to the server core; stopped (by PID) on exit."""
    _flush_redis()
    with bench_databases() as (users_db, orders_db):
        config = PlatformConfig(
            users_database_url=users_db,
            orders_database_url=orders_db,
            redis_url=redis_url(),
            data_dir=log_dir / "data",
            log_dir=log_dir,
            with_worker=False,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint},
            service_env=_service_env(relay_mode),
        )
        platform = Platform(config)
        try:
            platform.start_all()
            for name in ("users", "orders", "gateway"):
                pin_process(platform.process(name).pid)
            yield platform
        finally:
            platform.stop_all()
            _flush_redis()


def _service_env(relay_mode: str) -> dict[str, dict[str, str]]:
    # staging, as docker compose runs them: JSON logs, Redis-backed rate limits.
    env = {
        name: {
            f"{name.upper()}_ENVIRONMENT": "staging",
            f"{name.upper()}_RATE_LIMIT__REQUESTS": UNLIMITED,
        }
        for name in ("users", "orders", "gateway")
    }
    # The documented defaults (the launcher's own test set-up polls faster); "poll" turns
    # the wake off.
    env["orders"]["ORDERS_OUTBOX__POLL_INTERVAL_SECONDS"] = str(DEFAULT_POLL_INTERVAL)
    env["orders"]["ORDERS_OUTBOX__WAKE_ON_COMMIT"] = str(relay_mode == "wake").lower()
    return env


def restart_orders(platform: Platform, *, relay_mode: str) -> None:
    platform.config.service_env = _service_env(relay_mode)
    platform.stop("orders")
    platform.start("orders")
    pin_process(platform.process("orders").pid)


def sign_up(gateway: str) -> Account:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=gateway, timeout=10) as client:
        credentials = {"email": email, "password": PASSWORD}
        client.post(
            "/api/v1/auth/signup", json={**credentials, "display_name": "Bench"}
        ).raise_for_status()
        response = client.post("/api/v1/auth/login", json=credentials)
        response.raise_for_status()
        return Account(token=str(response.json()["access_token"]))


def create_order(gateway: str, account: Account) -> str:
    response = httpx.post(f"{gateway}/api/v1/orders", json=ORDER, headers=account.auth, timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])


# --- gateway cost -------------------------------------------------------------------------


def gateway_cost(
    platform: Platform,
    *,
    duration: float,
    rounds: int,
    connections: int,
    transports: Sequence[str] = TRANSPORTS,
    warmup: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, list[Measurement]]:
    """The same request straight to the upstream and through the gateway, two routes.

    ``order``: GET one order with a valid token (verified by both gateway and
    orders, read from Postgres), the representative proxied call. ``jwks``: the
    public GET /.well-known/jwks.json on users, a cheap upstream answer, so that
    the gateway's own cost shows. The platform's gateway runs with its default
    transport; one more gateway process per other transport runs beside it,
    pinned to the same core, so that transports are compared in the same rounds.
    """
    account = sign_up(platform.gateway)
    order_id = create_order(platform.gateway, account)
    paths = {"order": (f"/api/v1/orders/{order_id}", "orders"), "jwks": (JWKS_PATH, "users")}
    with contextlib.ExitStack() as stack:
        gateways = {
            transport: stack.enter_context(_extra_gateway(platform, transport))
            if transport != DEFAULT_TRANSPORT
            else (platform.gateway, platform.process("gateway").pid)
            for transport in transports
        }
        targets: dict[str, tuple[str, list[int]]] = {}
        for route, (path, upstream) in paths.items():
            upstream_pid = platform.process(upstream).pid
            targets[f"{route}_direct"] = (platform.url(upstream) + path, [upstream_pid])
            for transport, (base, pid) in gateways.items():
                targets[f"{route}_via_gateway_{transport}"] = (base + path, [upstream_pid, pid])
        results: dict[str, list[Measurement]] = {name: [] for name in targets}
        for round_number in range(1, rounds + 1):
            for name, (url, pids) in targets.items():
                if round_number == 1 and warmup > 0:
                    # Warm-up: connection pools, JWKS cache, route and metric caches.
                    measure(
                        url,
                        duration=warmup,
                        connections=connections,
                        server_pids=pids,
                        headers=account.auth,
                    )
                result = measure(
                    url,
                    duration=duration,
                    connections=connections,
                    server_pids=pids,
                    headers=account.auth,
                )
                if result.errors:
                    raise RuntimeError(f"{name}: {result.errors} failed responses from {url}")
                results[name].append(result)
                cpu = result.cpu_us_per_request or 0
                say(
                    f"  gateway round {round_number} {name:28} "
                    f"{result.requests_per_second:7.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
                    f"{cpu:6.0f} us CPU/req"
                )
    return results


@contextlib.contextmanager
def _extra_gateway(platform: Platform, transport: str) -> Iterator[tuple[str, int]]:
    """A second gateway, configured as the platform's but for its upstreams' transport."""
    port = free_port()
    env = {
        "PYTHONUNBUFFERED": "1",
        **platform.config.env,
        "GATEWAY_REDIS__URL": platform.config.redis_url,
        "GATEWAY_AUTH__JWKS_URL": platform.users + JWKS_PATH,
        "GATEWAY_UPSTREAMS__USERS__BASE_URL": platform.users,
        "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": platform.orders,
        "GATEWAY_UPSTREAMS__USERS__TRANSPORT": transport,
        "GATEWAY_UPSTREAMS__ORDERS__TRANSPORT": transport,
        **platform.config.service_env.get("gateway", {}),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log_dir = platform.config.log_dir or Path(tempfile.gettempdir())
    with (log_dir / f"gateway-{transport}.log").open("ab") as output:
        process = start_process(
            command, ready_url=url + "/health/ready", env=env, timeout=60, output=output
        )
        try:
            pin_process(process.pid)
            yield url, process.pid
        finally:
            stop_process_group(process, timeout=20)


# --- writes -------------------------------------------------------------------------------

_POST_SCRIPT = """
-- One POST /api/v1/orders per request, each with its own Idempotency-Key.
local prefix = "bench"
local counter = 0
local body = '%s'

function init(args)
  prefix = args[1] or prefix
end

function request()
  counter = counter + 1
  -- wrk.format replaces wrk.headers (the -H ones) when given a table: copy them in.
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  return wrk.format("POST", nil, headers, body)
end
"""


def writes(
    platform: Platform,
    *,
    duration: float,
    connections: int,
    work_dir: Path,
    warmup: float = 1.0,
    say: Callable[[str], None] = print,
) -> Measurement:
    """POST /api/v1/orders through the gateway, Postgres and the outbox behind it."""
    if tool() != "wrk":
        raise RuntimeError("the writes figure needs wrk (apt-get install wrk)")
    account = sign_up(platform.gateway)
    script = work_dir / "post_order.lua"
    script.write_text(_POST_SCRIPT % json.dumps(ORDER))
    headers = {**account.auth, "Content-Type": "application/json"}
    pids = [platform.process("orders").pid, platform.process("gateway").pid]
    url = platform.gateway + "/api/v1/orders"
    if warmup > 0:
        measure(
            url,
            duration=warmup,
            connections=connections,
            server_pids=pids,
            headers=headers,
            script=script,
            script_args=[f"warm-{uuid.uuid4().hex[:8]}"],
        )
    result = measure(
        url,
        duration=duration,
        connections=connections,
        server_pids=pids,
        headers=headers,
        script=script,
        script_args=[f"run-{uuid.uuid4().hex[:8]}"],
    )
    if result.errors:
        raise RuntimeError(f"writes: {result.errors} failed responses")
    say(
        f"  writes {result.requests_per_second:8.0f} req/s  p99 {result.p99_ms:7.2f} ms"
        f"  {result.cpu_us_per_request or 0:6.0f} us CPU/req"
    )
    return result


# --- event latency ------------------------------------------------------------------------


@dataclass
class EventLatency:
    relay_mode: str
    poll_interval_seconds: float
    rate_per_second: float
    orders: int
    failed_posts: int
    #: Why POSTs failed: HTTP status, or the transport error's class name, with counts.
    failures: dict[str, int]
    received: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def event_latency(
    platform: Platform,
    *,
    rate: float,
    seconds: float,
    relay_mode: str,
    say: Callable[[str], None] = print,
) -> EventLatency:
    """Paced POSTs; time from each POST's response to its order.created on /ws/events."""
    # Not the drain of the figure before: every earlier event is out before this run starts.
    waited = wait_for_outbox_drained(platform)
    if waited >= 0.1:
        say(f"  (waited {waited:.1f} s for the outbox of the previous figure to drain)")
    account = sign_up(platform.gateway)
    # The client is the load generator: it gets the other core.
    pin_process(os.getpid(), LOAD_CPU)
    # The client's own full collections (50-90 ms over this process's heap) would be
    # counted as event latency: freeze what is alive so they walk only this run's objects.
    gc.collect()
    gc.freeze()
    values, failures = asyncio.run(
        _paced_orders(platform.gateway, account, rate=rate, seconds=seconds)
    )
    result = EventLatency(
        relay_mode=relay_mode,
        poll_interval_seconds=DEFAULT_POLL_INTERVAL,
        rate_per_second=rate,
        orders=round(rate * seconds),
        failed_posts=sum(failures.values()),
        failures=failures,
        received=len(values),
        p50_ms=round(percentile(values, 50), 2),
        p95_ms=round(percentile(values, 95), 2),
        p99_ms=round(percentile(values, 99), 2),
        max_ms=round(max(values, default=float("nan")), 2),
    )
    say(
        f"  events ({relay_label(relay_mode)}, {rate:g}/s) "
        f"{result.received}/{result.orders} received, "
        f"{result.failed_posts} POSTs failed {result.failures or ''}  "
        f"p50 {result.p50_ms:.1f}  p95 {result.p95_ms:.1f}  p99 {result.p99_ms:.1f} ms"
    )
    return result


def wait_for_outbox_drained(platform: Platform, *, timeout: float = 60.0) -> float:
    """Wait until orders has no unsent outbox row; return the seconds waited."""
    url = platform.config.orders_database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            unsent = row[0] if row is not None else 0
            waited = time.perf_counter() - started
            if unsent == 0:
                return waited
            if waited > timeout:
                raise RuntimeError(f"{unsent} outbox rows still unsent after {timeout:g} s")
            time.sleep(0.1)


async def _paced_orders(
    gateway: str, account: Account, *, rate: float, seconds: float
) -> tuple[list[float], dict[str, int]]:
    """Latency (ms) of every order.created that arrived, and why POSTs failed (with counts)."""
    answered: dict[str, float] = {}
    arrived: dict[str, float] = {}
    total = max(1, round(rate * seconds))
    ws_url = gateway.replace("http://", "ws://", 1) + "/ws/events"
    failures: Counter[str] = Counter()
    placed_all = False
    all_arrived = asyncio.Event()
    async with (
        # No keepalive pings: a busy bench client must not close its own socket.
        websockets.connect(ws_url, additional_headers=account.auth, ping_interval=None) as socket,
        httpx.AsyncClient(
            base_url=gateway,
            headers=account.auth,
            timeout=30,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        ) as client,
    ):

        async def listen() -> None:
            async for raw in socket:
                message: dict[str, Any] = json.loads(raw)
                event = message.get("event") or {}
                if message.get("type") == "event" and event.get("type") == "order.created":
                    order_id = event.get("payload", {}).get("order", {}).get("id")
                    if order_id is not None:
                        arrived.setdefault(order_id, time.perf_counter())
                        if placed_all and answered.keys() <= arrived.keys():
                            all_arrived.set()

        async def place(at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                response = await client.post(
                    "/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
                return
            if response.status_code != 201:
                failures[str(response.status_code)] += 1
                return
            answered[str(response.json()["id"])] = time.perf_counter()

        listener = asyncio.create_task(listen())
        started = time.perf_counter() + 0.2
        await asyncio.gather(*(place(started + i / rate) for i in range(total)))
        placed_all = True
        # Events still on their way: wait up to 5 s (ten default relay passes) for the rest.
        if answered.keys() <= arrived.keys():
            all_arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_arrived.wait(), 5)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await listener
    # An event can beat the POST's response home; that is zero latency, not negative.
    latencies = [
        max(0.0, (arrived[oid] - t) * 1000) for oid, t in answered.items() if oid in arrived
    ]
    return latencies, dict(failures)


def relay_label(relay_mode: str) -> str:
    if relay_mode == "wake":
        return "relay woken by commit"
    return f"relay polls every {DEFAULT_POLL_INTERVAL:g} s"


def median_of(runs: list[Measurement]) -> dict[str, float | None]:
    """Per-field medians over rounds."""
    cpu = [run.cpu_us_per_request for run in runs if run.cpu_us_per_request is not None]
    return {
        "requests_per_second": round(statistics.median(run.requests_per_second for run in runs), 1),
        "p50_ms": round(statistics.median(run.p50_ms for run in runs), 2),
        "p99_ms": round(statistics.median(run.p99_ms for run in runs), 2),
        "cpu_us_per_request": round(statistics.median(cpu), 1) if cpu else None,
    }
