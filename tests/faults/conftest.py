"""The fault suite's platform: four real services, fault proxies in front of their dependencies.

Redis (every service), the orders and users databases, and the gateway's
route to orders each go through a `FaultProxy`, so a scenario can take one
down, slow it or cut it while the real processes run. Timeouts, deadlines,
breaker thresholds and TTLs are short (`report.SETTINGS`) so that each
scenario takes seconds. The platform is started once per session; every
scenario leaves it healthy again.

At the end of a session in which every scenario passed, docs/reliability.md
is rewritten from what the scenarios measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
import redis.asyncio
from arq.constants import in_progress_key_prefix

from chassis.jobs import job_id_for
from chassis.testing.faultproxy import FaultProxy
from chassis.testing.plugin import redis_test_url
from contracts.jobs import FULFIL_ORDER
from tests.faults.report import REPORT_PATH, SCENARIO_IDS, SETTINGS, Reliability, render
from tests.replicas.report import keep_replicas_section
from tests.support.accounts import sign_up_and_log_in
from tests.support.platform import SERVICES, Platform, PlatformConfig, migrate

logger = logging.getLogger("tests.faults")

FAULTS_REDIS_DB = int(os.environ.get("CHASSIS_FAULTS_REDIS_DB", "10"))
READY_TIMEOUT = 60.0
#: How long a running service may take to be ready when a scenario starts before it is
#: restarted (a heal takes effect within seconds; a loaded machine gets slack).
REVIVE_WITHIN = 30.0
#: Per-test timeout: the session's platform start (up to a minute on a loaded machine)
#: counts against whichever scenario runs first.
FIRST_TEST_TIMEOUT = 240


def _via(url: str, proxy: FaultProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc
    credentials = netloc.rpartition("@")[0]
    address = f"{credentials}@{proxy.address}" if credentials else proxy.address
    return urlunsplit(parts._replace(netloc=address))


def _env() -> dict[str, str]:
    s = SETTINGS
    env: dict[str, str] = {}
    for prefix in ("USERS", "ORDERS", "GATEWAY", "WORKER"):
        env |= {
            f"{prefix}_LOG__LEVEL": "WARNING",
            f"{prefix}_REDIS__SOCKET_TIMEOUT_SECONDS": str(s["redis_socket_timeout"]),
            f"{prefix}_REDIS__CONNECT_TIMEOUT_SECONDS": str(s["redis_socket_timeout"]),
            f"{prefix}_SERVER__DRAIN_SECONDS": str(s["drain"]),
            f"{prefix}_SERVER__GRACEFUL_TIMEOUT_SECONDS": str(s["graceful_timeout"]),
            f"{prefix}_AUTH__JWKS_TTL_SECONDS": str(s["jwks_ttl"]),
        }
    for prefix in ("USERS", "ORDERS"):
        env |= {
            f"{prefix}_DATABASE__CONNECT_TIMEOUT_SECONDS": str(s["db_connect_timeout"]),
            f"{prefix}_DATABASE__POOL_TIMEOUT_SECONDS": str(s["db_pool_timeout"]),
            f"{prefix}_DATABASE__STATEMENT_TIMEOUT_MS": str(int(s["db_statement_timeout_ms"])),
            f"{prefix}_DATABASE__POOL_SIZE": str(int(s["db_pool_size"])),
            f"{prefix}_DATABASE__MAX_OVERFLOW": str(int(s["db_max_overflow"])),
        }
    orders = "GATEWAY_UPSTREAMS__ORDERS__"
    env |= {
        # One client IP sends everything here: limits high, except where a test sets its own.
        "GATEWAY_RATE_LIMIT__REQUESTS": "100000",
        "GATEWAY_RATE_LIMIT__FAIL_OPEN": "true",
        "GATEWAY_RATE_LIMIT__RULES": "[]",
        "USERS_LOGIN_LIMIT__REQUESTS": "10000",
        # orders' default 100/min per caller would throttle the worker's own calls under load.
        "ORDERS_RATE_LIMIT__REQUESTS": "100000",
        "USERS_RATE_LIMIT__REQUESTS": "100000",
        "ORDERS_SERVER__REQUEST_TIMEOUT_SECONDS": str(s["orders_request_timeout"]),
        "ORDERS_OUTBOX__MAX_BACKOFF_SECONDS": str(s["outbox_max_backoff"]),
        f"{orders}DEADLINE_SECONDS": str(s["gateway_orders_deadline"]),
        f"{orders}BREAKER_FAILURE_THRESHOLD": str(int(s["breaker_threshold"])),
        f"{orders}BREAKER_OPEN_SECONDS": str(s["breaker_open"]),
        "GATEWAY_EVENTS__REPLAY_MARGIN_SECONDS": str(s["replay_margin"]),
        # The worker's own breaker on orders: opened by one scenario, it must not still be
        # open (30 s by default) when the next one starts.
        "WORKER_UPSTREAMS__ORDERS__BREAKER_OPEN_SECONDS": str(s["worker_breaker_open"]),
        "WORKER_CRONS__ENABLED": "false",
        "WORKER_FULFIL__TIMEOUT_SECONDS": str(s["fulfil_timeout"]),
        "WORKER_FULFIL__LATENCY_SECONDS": "0.2",
        "WORKER_FULFIL__RETRY_BACKOFF_INITIAL_SECONDS": "0.2",
        "WORKER_FULFIL__RETRY_BACKOFF_MAX_SECONDS": "1.0",
    }
    return env


@dataclass
class FaultPlatform:
    """The running platform, its proxies and the direct (unproxied) addresses tests inspect."""

    platform: Platform
    redis: FaultProxy
    orders_db: FaultProxy
    users_db: FaultProxy
    orders_route: FaultProxy
    orders_database_url: str
    redis_url: str
    worker_env: dict[str, str]
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.platform.gateway

    def postgres_dsn(self) -> str:
        """orders' database, direct (not through the proxy), for psycopg."""
        return self.orders_database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def restart(self, name: str, **env: str) -> None:
        """Start `name` again (after stop/kill); worker env changes apply from this start."""
        if name == "worker":
            self.worker_env.clear()
            self.worker_env.update(env)
        self.platform.start(name)


@pytest.fixture(scope="session")
def reliability() -> Reliability:
    return _RELIABILITY


_RELIABILITY = Reliability()


@pytest.fixture(scope="session")
def faults(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultPlatform]:
    users_db = postgres_database_factory("users_faults")
    orders_db = postgres_database_factory("orders_faults")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    direct_redis = redis_test_url(FAULTS_REDIS_DB)
    with redis.Redis.from_url(direct_redis) as client:
        client.flushdb()

    redis_target = urlsplit(direct_redis)
    pg_target = urlsplit(orders_db)
    with (
        FaultProxy(redis_target.hostname or "127.0.0.1", redis_target.port or 6379) as redis_proxy,
        FaultProxy(pg_target.hostname or "127.0.0.1", pg_target.port or 5432) as orders_db_proxy,
        FaultProxy(pg_target.hostname or "127.0.0.1", pg_target.port or 5432) as users_db_proxy,
    ):
        route_proxies: dict[tuple[str, str], FaultProxy] = {}

        def route(caller: str, peer: str, url: str) -> str:
            proxy = route_proxies.get((caller, peer))
            return _via(url, proxy) if proxy is not None else url

        worker_env: dict[str, str] = {}
        config = PlatformConfig(
            users_database_url=_via(users_db, users_db_proxy),
            orders_database_url=_via(orders_db, orders_db_proxy),
            redis_url=f"redis://{redis_proxy.address}/{FAULTS_REDIS_DB}",
            data_dir=tmp_path_factory.mktemp("faults-data"),
            env=_env(),
            service_env={"worker": worker_env},
            route=route,
            ready_timeout=READY_TIMEOUT,
            # Four services' logs through ten minutes of faults would drown pytest's report.
            log_dir=tmp_path_factory.mktemp("faults-logs"),
        )
        platform = Platform(config)
        with FaultProxy("127.0.0.1", platform.ports["orders"]) as orders_route:
            route_proxies[("gateway", "orders")] = orders_route
            try:
                _start_all(platform)
                yield FaultPlatform(
                    platform=platform,
                    redis=redis_proxy,
                    orders_db=orders_db_proxy,
                    users_db=users_db_proxy,
                    orders_route=orders_route,
                    orders_database_url=orders_db,
                    redis_url=direct_redis,
                    worker_env=worker_env,
                )
            finally:
                platform.stop_all()
        with redis.Redis.from_url(direct_redis) as client:
            client.flushdb()


def _start_all(platform: Platform) -> None:
    """users first (the others fetch its keys), then the other three side by side.

    Each start is mostly imports and waiting for readiness; side by side they
    cost the suite one start instead of three on a loaded 2-core machine.
    """
    platform.start("users")
    with ThreadPoolExecutor(max_workers=3) as pool:
        for started in [pool.submit(platform.start, name) for name in SERVICES[1:]]:
            started.result()


@pytest.fixture
async def healthy(faults: FaultPlatform) -> AsyncIterator[FaultPlatform]:
    """The platform clean before and after the test: proxies healed, every service running
    and ready, the gateway's and the worker's breakers on orders closed."""
    proxies = (faults.redis, faults.orders_db, faults.users_db, faults.orders_route)
    for proxy in proxies:
        proxy.heal()
    if faults.worker_env:  # a scenario that failed half-way left its worker settings
        with contextlib.suppress(KeyError):
            faults.platform.stop("worker")
        faults.restart("worker")
    for name in SERVICES:  # users first: the others fetch its keys
        await _revive(faults, name)
    await wait_healthy(faults)
    yield faults
    for proxy in proxies:
        proxy.heal()


async def _revive(faults: FaultPlatform, name: str) -> None:
    """Restart `name` if it is stopped, exited, or running but not ready within REVIVE_WITHIN.

    A scenario that failed half-way may leave a service down or stuck (a worker that
    never came back from an outage): the next scenarios get a fresh one, and the log
    says so, instead of failing in set-up one after another.
    """
    platform = faults.platform
    try:
        process = platform.process(name)
    except KeyError:
        reason = "stopped"
    else:
        if process.poll() is not None:
            reason = f"exited with {process.returncode}"
        elif await _ready(platform.url(name), within=REVIVE_WITHIN):
            return
        else:
            reason = f"running but not ready within {REVIVE_WITHIN:g}s"
            platform.kill(name)
    logger.warning("%s %s (see %s): restarting it", name, reason, platform.log_path(name))
    faults.restart(name)


async def _ready(url: str, *, within: float) -> bool:
    try:
        await wait_ready(url, within=within)
    except AssertionError:
        return False
    return True


async def account(faults: FaultPlatform, name: str) -> dict[str, Any]:
    """A signed-up, logged-in user (one per name per session)."""
    if name not in faults.accounts:
        async with httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client:
            faults.accounts[name] = await sign_up_and_log_in(client, name)
    return faults.accounts[name]


async def wait_healthy(faults: FaultPlatform, *, within: float = 30.0) -> None:
    """Every service ready, and no breaker on orders left open by an earlier scenario."""
    platform = faults.platform
    for url in (platform.users, platform.orders, platform.gateway, platform.worker_health):
        await wait_ready(url, within=within)
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        # Once its breaker's open time is over, the worker's readiness probes orders through
        # it (worker.health), so a healed orders shows closed with no job run: a breaker still
        # reported open here, with orders ready, is that promise broken.
        while True:
            worker = (await client.get(platform.worker_health + "/health/ready")).json()
            orders = worker["checks"]["orders"]
            state = orders.get("details", {}).get("state", orders["status"])
            if state == "closed":
                break
            assert time.monotonic() < deadline, f"the worker's breaker on orders is {state}"
            await asyncio.sleep(0.2)
        while True:
            gateway = (await client.get(platform.gateway + "/health/ready")).json()
            state = gateway["checks"]["upstreams"]["details"]["orders"]["state"]
            if state == "closed":
                return
            assert time.monotonic() < deadline, f"the gateway's breaker on orders is {state}"
            await asyncio.sleep(0.2)


#: A readiness answer waits for its slowest check (2 s timeout each): a probe that gave up
#: at 2 s would never see a 200 while any check, even a non-critical one, ran to its timeout.
READY_PROBE_TIMEOUT = 10.0


async def wait_ready(url: str, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    last: object = "no answer"
    async with httpx.AsyncClient(timeout=READY_PROBE_TIMEOUT) as client:
        while True:
            try:
                response = await client.get(url + "/health/ready")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as error:
                last = repr(error)
            assert time.monotonic() < deadline, f"{url} not ready within {within:g}s: {last}"
            await asyncio.sleep(0.1)


async def orders_query(faults: FaultPlatform, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows from orders' database, read directly (never through the proxy)."""
    async with await psycopg.AsyncConnection.connect(faults.postgres_dsn()) as conn:
        cursor = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cursor.fetchall())


async def outbox_types(faults: FaultPlatform, order_id: str) -> list[str]:
    """Event types staged for one order, oldest first: its state changes, as orders made them."""
    rows = await orders_query(
        faults,
        "SELECT event_type FROM outbox WHERE payload->'order'->>'id' = %s ORDER BY created_at, id",
        order_id,
    )
    return [row[0] for row in rows]


async def order_status(
    faults: FaultPlatform, *, owner: str, status: str | None = None
) -> list[tuple[str, str]]:
    """(id, status) of one owner's orders, from orders' database; only `status` ones if given."""
    rows = await orders_query(
        faults, "SELECT id::text, status FROM orders WHERE owner_id = %s", owner
    )
    return [(row[0], row[1]) for row in rows if status is None or row[1] == status]


async def wait_for_status(
    faults: FaultPlatform, order_id: str, status: str, *, within: float
) -> None:
    """Poll orders' database until the order has `status`."""
    deadline = time.monotonic() + within
    while True:
        rows = await orders_query(faults, "SELECT status FROM orders WHERE id::text = %s", order_id)
        if rows and rows[0][0] == status:
            return
        assert time.monotonic() < deadline, f"order {order_id} not {status}: {rows}"
        await asyncio.sleep(0.05)


async def fulfilment_jobs_running(faults: FaultPlatform) -> list[str]:
    """The ids of the fulfilment jobs running now (arq's in-progress keys are set)."""
    prefix = f"{in_progress_key_prefix}{FULFIL_ORDER}:"
    client = redis.asyncio.Redis.from_url(faults.redis_url, decode_responses=True)
    try:
        return [
            key.removeprefix(in_progress_key_prefix) async for key in client.scan_iter(f"{prefix}*")
        ]
    finally:
        await client.aclose()


async def wait_for_job_running(faults: FaultPlatform, order_id: str, *, within: float) -> None:
    """Poll Redis until the order's fulfilment job runs: it is inside its payment step.

    The order itself stays pending while it is charged (orders moves it once the
    worker reports, ADR 0019), so its status cannot tell.
    """
    deadline = time.monotonic() + within
    while job_id_for(FULFIL_ORDER, order_id) not in await fulfilment_jobs_running(faults):
        assert time.monotonic() < deadline, f"the fulfilment job of {order_id} never ran"
        await asyncio.sleep(0.05)


# --- the report -----------------------------------------------------------------------


def _scenario_of(item: pytest.Item) -> str | None:
    """A scenario module names its scenario in ``SCENARIO``."""
    module = getattr(item, "module", None)
    scenario = getattr(module, "SCENARIO", None)
    return str(scenario) if scenario in SCENARIO_IDS else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    scenario = _scenario_of(item)
    if scenario is None:
        return
    if report.when == "call" and report.passed:
        _RELIABILITY.passed.add(scenario)
    elif report.failed:
        _RELIABILITY.passed.discard(scenario)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Only a session in which every scenario ran and passed may rewrite the document.
    if _RELIABILITY.complete():
        now = dt.datetime.now(dt.UTC)
        # The replica suite's section (tests/replicas) is its own output: kept as it is.
        old = REPORT_PATH.read_text() if REPORT_PATH.exists() else ""
        REPORT_PATH.write_text(keep_replicas_section(old, render(_RELIABILITY.measured, when=now)))


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started
