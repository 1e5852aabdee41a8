"""Housekeeping: forget old idempotency keys and sent outbox rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import utc_now
from chassis.events import purge_sent
from orders.idempotency import repository as idempotency_keys
from orders.internal.schemas import PurgeResult
from orders.outbox.models import OutboxEvent


async def purge(
    session: AsyncSession,
    *,
    idempotency_older_than: timedelta,
    outbox_sent_older_than: timedelta,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete keys stored and outbox rows sent before the given ages; unsent rows stay."""
    moment = now or utc_now()
    keys = await idempotency_keys.delete_created_before(
        session, cutoff=moment - idempotency_older_than
    )
    rows = await purge_sent(session, OutboxEvent, older_than=outbox_sent_older_than, now=moment)
    return PurgeResult(idempotency_keys=keys, outbox_rows=rows)
