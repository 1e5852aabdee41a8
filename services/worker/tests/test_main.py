"""``worker.main.WorkerSettings``: lazy, accepted by arq, and runnable with the arq command."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import create_worker
from worker_fakes import CLIENT_SECRET, FakeOrders

import worker.main
from chassis.jobs import enqueue, job_id_for
from chassis.testing import eventually
from chassis.testing.processes import free_port, service_process
from contracts.jobs import FULFIL_ORDER
from worker.settings import get_settings


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    get_settings.cache_clear()
    worker.main.default_worker_settings.cache_clear()
    yield
    get_settings.cache_clear()
    worker.main.default_worker_settings.cache_clear()


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_module_reads_no_settings() -> None:
    # Settings that cannot load: only an attribute access may notice.
    env = {"WORKER_ENVIRONMENT": "production"}

    imported = python("import worker.main", env)
    resolved = python("import worker.main; worker.main.WorkerSettings", env)

    assert imported.returncode == 0, imported.stderr
    assert resolved.returncode != 0
    assert "client_secret is the development default" in resolved.stderr


async def test_arq_builds_a_worker_from_the_module_attribute(
    monkeypatch: pytest.MonkeyPatch, fresh_caches: None, redis_url: str
) -> None:
    monkeypatch.setenv("WORKER_REDIS__URL", redis_url)
    monkeypatch.setenv("WORKER_JOBS__QUEUE_NAME", "arq:custom")
    monkeypatch.setenv("WORKER_JOBS__MAX_JOBS", "4")
    monkeypatch.setenv("WORKER_JOBS__POLL_DELAY_SECONDS", "0.2")

    settings_cls = worker.main.WorkerSettings
    arq_worker = create_worker(settings_cls, handle_signals=False)
    try:
        assert worker.main.WorkerSettings is settings_cls
        assert set(arq_worker.functions) == {FULFIL_ORDER, "orders.expire_pending", "orders.purge"}
        assert (arq_worker.queue_name, arq_worker.max_jobs) == ("arq:custom", 4)
        # arq starts at most max_jobs per read of the queue: the pause bounds the rate.
        assert arq_worker.poll_delay_s == 0.2
        assert arq_worker.functions[FULFIL_ORDER].max_tries == 8
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            await arq_worker.close()


def test_other_attributes_are_missing() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = worker.main.NoSuchThing


@pytest.mark.slow
async def test_the_arq_command_runs_the_worker_until_sigterm(
    fake_orders: FakeOrders,
    users_url: str,
    orders_url: str,
    redis_url: str,
    arq_pool: ArqRedis,
    queue_name: str,
) -> None:
    order_id = fake_orders.add_order()
    port = free_port()
    env = {
        "WORKER_REDIS__URL": redis_url,
        "WORKER_UPSTREAMS__ORDERS__BASE_URL": orders_url,
        "WORKER_UPSTREAMS__USERS__BASE_URL": users_url,
        "WORKER_CLIENT_SECRET": CLIENT_SECRET,
        "WORKER_SERVER__PORT": str(port),
        "WORKER_JOBS__QUEUE_NAME": queue_name,
        "WORKER_CRONS__ENABLED": "false",
        "WORKER_SERVER__GRACEFUL_TIMEOUT_SECONDS": "2",
    }
    arq = str(Path(sys.executable).parent / "arq")
    await enqueue(
        arq_pool,
        FULFIL_ORDER,
        order_id,
        job_id=job_id_for(FULFIL_ORDER, order_id),
        queue_name=queue_name,
    )

    with service_process(
        [arq, "worker.main.WorkerSettings"],
        ready_url=f"http://127.0.0.1:{port}/health/live",
        env=env,
        stop_timeout=10,
    ) as process:
        await eventually(
            lambda: fake_orders.status_of(order_id) == "fulfilled",
            within=15,
            step=0.05,
            message=f"order {order_id} was not fulfilled",
        )
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)

    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]
    assert ready.status_code == 200
    # arq handled SIGTERM itself (uvicorn did not take the signal) and exited cleanly.
    assert process.returncode == 0
