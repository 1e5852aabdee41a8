"""The worker process: the ``WorkerSettings`` class that arq runs.

Run it with::

    uv run arq worker.main.WorkerSettings

configured by ``WORKER_*`` environment variables (`worker.settings`): Redis
(``WORKER_REDIS__URL``), the orders and users upstreams, the service
account's ``WORKER_CLIENT_SECRET``, and the health/metrics port
(``WORKER_SERVER__PORT``, 8003). SIGTERM stops taking jobs, waits up to
``WORKER_SERVER__GRACEFUL_TIMEOUT_SECONDS`` for running ones, then stops.

``WorkerSettings`` is built on first access (a module ``__getattr__``), so
importing this module reads no environment and opens nothing; arq looks the
attribute up when it starts. Tests build their own with `build_worker_settings`.
"""

from __future__ import annotations

import functools
import random
from typing import Any

from chassis.jobs import worker_settings
from worker.fulfilment.jobs import fulfil_job
from worker.health import HealthServer, create_health_app
from worker.maintenance.jobs import cron_jobs
from worker.resources import RESOURCES_KEY, Resources
from worker.settings import WorkerSettings as Settings
from worker.settings import get_settings

HEALTH_KEY = "health_server"


def build_worker_settings(settings: Settings, *, rng: random.Random | None = None) -> type:
    """An arq ``WorkerSettings`` class for `settings`; `rng` decides simulated payments."""
    # Simulated payment outcomes and retry jitter, not security.
    generator = rng if rng is not None else random.Random()  # noqa: S311

    async def on_startup(ctx: dict[str, Any]) -> None:
        resources = Resources.open(settings, rng=generator)
        ctx[RESOURCES_KEY] = resources
        health = HealthServer(
            create_health_app(resources, ctx["redis"]),
            host=settings.server.host,
            port=settings.server.port,
        )
        # Stored first: arq runs on_shutdown even when start-up fails half-way.
        ctx[HEALTH_KEY] = health
        await health.start()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        health: HealthServer | None = ctx.pop(HEALTH_KEY, None)
        resources: Resources | None = ctx.pop(RESOURCES_KEY, None)
        try:
            if health is not None:
                await health.stop()
        finally:
            if resources is not None:
                await resources.aclose()

    return worker_settings(
        settings,
        functions=[fulfil_job(settings)],
        cron_jobs=cron_jobs(settings),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        queue_name=settings.jobs.queue_name,
        max_jobs=settings.jobs.max_jobs,
        poll_delay=settings.jobs.poll_delay_seconds,
        max_tries=settings.fulfil.max_tries,
        queue_depth_interval=settings.jobs.queue_depth_interval_seconds,
        redis_outage_seconds=settings.jobs.redis_outage_seconds,
        # Stateless: orders owns its database and the outbox relay runs there (ADR 0006).
        database=False,
    )


@functools.lru_cache(maxsize=1)
def default_worker_settings() -> type:
    """The class arq runs: `build_worker_settings` over the environment's settings, once."""
    return build_worker_settings(get_settings())


def __getattr__(name: str) -> type:
    if name == "WorkerSettings":
        return default_worker_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
