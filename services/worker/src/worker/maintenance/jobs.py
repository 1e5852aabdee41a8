"""Maintenance crons: expire stale pending orders every minute, purge old bookkeeping hourly.

Both call the orders maintenance endpoints with the service token; orders
does the work in its own database. arq gives each tick a unique job id, so
several worker replicas still run a tick once. A tick that fails (orders
down) is not retried: the next tick does the same work.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq.cron import CronJob

from chassis.jobs import cron_job
from worker.resources import get_resources
from worker.settings import WorkerSettings

logger = structlog.get_logger("worker.maintenance")

EXPIRE_PENDING_JOB = "orders.expire_pending"
PURGE_JOB = "orders.purge"


async def expire_pending(ctx: dict[str, Any]) -> int:
    """Fail pending orders older than ``crons.pending_ttl_seconds``; return how many."""
    resources = get_resources(ctx)
    ttl = resources.settings.crons.pending_ttl_seconds
    expired = await resources.orders_api.expire_pending(older_than_seconds=ttl)
    if expired:
        logger.info("pending_orders_expired", expired=expired, older_than_seconds=ttl)
    return expired


async def purge(ctx: dict[str, Any]) -> dict[str, int]:
    """Delete old idempotency keys and sent outbox rows in orders; return the counts."""
    resources = get_resources(ctx)
    crons = resources.settings.crons
    counts = await resources.orders_api.purge(
        idempotency_older_than_seconds=crons.idempotency_ttl_seconds,
        outbox_sent_older_than_seconds=crons.outbox_sent_ttl_seconds,
    )
    logger.info(
        "orders_purged", idempotency_keys=counts.idempotency_keys, outbox_rows=counts.outbox_rows
    )
    return counts.model_dump()


def cron_jobs(settings: WorkerSettings) -> list[CronJob]:
    """The crons `settings` ask for: none when ``crons.enabled`` is false."""
    if not settings.crons.enabled:
        return []
    return [
        cron_job(EXPIRE_PENDING_JOB, expire_pending, second=0),
        cron_job(PURGE_JOB, purge, minute=settings.crons.purge_minute, second=0),
    ]
