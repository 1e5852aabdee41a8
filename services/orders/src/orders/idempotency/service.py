"""Run a create once per (user, key): the first answer is stored with the data it created.

How a keyed request is answered:

1. The work runs and its answer is inserted into ``idempotency_keys`` in the
   SAME transaction: the order, its outbox event and the stored answer commit
   together or not at all. Nothing is read first: a new key, nearly every
   request, costs no query beyond its INSERT.
2. A key already stored fails that INSERT on the unique constraint on
   (owner_id, key). The request then rolls back everything it staged (its
   order and event too) and reads the stored answer: the same request (equal
   canonical JSON hash) gets it replayed with ``Idempotent-Replayed: true``; a
   different request gets 422 (the IETF idempotency-key draft's choice: the
   key was reused for another payload).
3. Two concurrent requests with one key: the second INSERT waits for the
   first transaction (Postgres blocks on the index entry) and then fails once
   the first commits, and step 2 replays the first's answer: one order, two
   equal answers. If the first rolled back instead, the second simply
   succeeds. Should the re-read find nothing (the row was purged in between),
   the caller gets 409 "retry" rather than a second order.

A request that fails (4xx/5xx) stores nothing, so fixing and retrying it with
the same key works.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import utc_now
from chassis.errors import Conflict, UnprocessableContent
from orders.idempotency import repository
from orders.idempotency.models import IdempotencyKey
from orders.idempotency.schemas import StoredResponse

#: Produces (status code, JSON body) of the first answer, staging its rows in the session
#: and doing nothing outside it: it also runs for a used key, before the key is known used.
Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


class KeyReused(UnprocessableContent):
    default_detail = "This Idempotency-Key was already used with a different request body."


class RequestInProgress(Conflict):
    default_detail = "A request with this Idempotency-Key is being processed; retry shortly."


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request (sorted keys, no spaces)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyKey, request_hash: str) -> StoredResponse:
    if record.request_hash != request_hash:
        raise KeyReused
    return StoredResponse(record.status_code, dict(record.response_body), replayed=True)


async def run_once(
    session: AsyncSession,
    *,
    owner_id: str,
    key: str,
    request: Mapping[str, Any],
    work: Work,
    now: datetime | None = None,
) -> StoredResponse:
    """The answer for `owner_id`'s request under `key`: replayed, or `work`'s, stored."""
    request_hash = fingerprint(request)
    # Insert first, read only on conflict: a new key (nearly every request) costs no
    # read, and a key already used fails the same unique index a racing duplicate does.
    status_code, body = await work()
    repository.add(
        session,
        IdempotencyKey(
            owner_id=owner_id,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response_body=body,
            created_at=now or utc_now(),
        ),
    )
    try:
        # Flushed here, not at commit, so that a used key is handled here.
        await session.flush()
    except IntegrityError:
        # Nothing staged by `work` survives: the replay is the stored answer alone.
        await session.rollback()
        existing = await repository.find(session, owner_id=owner_id, key=key)
        if existing is None:
            raise RequestInProgress from None
        return _replay(existing, request_hash)
    return StoredResponse(status_code, body)
