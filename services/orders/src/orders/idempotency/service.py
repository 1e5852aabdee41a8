"""Run a create once per (user, key): the first answer is stored with the data it created.

How a keyed request is answered (`run_once` is the request's whole unit of work):

1. The work runs, staging its rows, and then its answer is inserted into
   ``idempotency_keys`` with ``ON CONFLICT (owner_id, key) DO NOTHING``: the
   order, its outbox event and the stored answer commit together (when the
   session dependency commits) or not at all. Nothing is read first and no
   savepoint is taken: a new key, nearly every request, costs that INSERT and
   nothing more (a savepoint cost two more round trips per order).
2. A key already stored inserts nothing. The request's transaction is rolled
   back, so nothing the work staged (its order and event too) survives, and
   the stored answer is read: the same request (equal canonical JSON hash)
   gets it replayed, marked as such; a different request is refused with
   `KeyReused` (the IETF idempotency-key draft's choice: the key was reused
   for another payload).
3. Two concurrent requests with one key: the second INSERT waits for the
   first transaction (Postgres blocks on the index entry) and inserts nothing
   once the first commits, and step 2 replays the first's answer: one order,
   two equal answers. If the first rolled back instead, the second simply
   succeeds. Should the re-read find nothing (the row was purged in between),
   the caller gets `RequestInProgress` ("retry") rather than a second order.

The answer is a pydantic model, stored as its JSON and validated again on a
replay; the HTTP status belongs to the router.
A request that fails (4xx/5xx) stores nothing, so fixing and retrying it with
the same key works.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import utc_now
from chassis.errors import Conflict, UnprocessableContent
from orders.idempotency import repository
from orders.idempotency.models import CREATED, IdempotencyKey

AnswerT = TypeVar("AnswerT", bound=BaseModel)

#: Produces the first answer, staging its rows in the session and doing nothing outside
#: it: it also runs for a used key, before the key is known used.
Work = Callable[[], Awaitable[AnswerT]]


@dataclass(frozen=True, slots=True)
class Outcome(Generic[AnswerT]):
    """The answer to give: `replayed` when it is the first request's, not this one's."""

    answer: AnswerT
    replayed: bool = False


class KeyReused(UnprocessableContent):
    default_detail = "This Idempotency-Key was already used with a different request body."


class RequestInProgress(Conflict):
    default_detail = "A request with this Idempotency-Key is being processed; retry shortly."


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request (sorted keys, no spaces)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyKey, request_hash: str, answer: type[AnswerT]) -> Outcome[AnswerT]:
    if record.request_hash != request_hash:
        raise KeyReused
    return Outcome(answer.model_validate(record.response_body), replayed=True)


async def run_once(
    session: AsyncSession,
    *,
    owner_id: str,
    key: str,
    request: Mapping[str, Any],
    work: Work[AnswerT],
    answer: type[AnswerT],
    now: datetime | None = None,
) -> Outcome[AnswerT]:
    """The answer for `owner_id`'s request under `key`: replayed, or `work`'s, stored."""
    request_hash = fingerprint(request)
    fresh = await work()
    claimed = await repository.claim(
        session,
        {
            "owner_id": owner_id,
            "key": key,
            "request_hash": request_hash,
            "status_code": CREATED,
            "response_body": fresh.model_dump(mode="json"),
            "created_at": now or utc_now(),
        },
    )
    if not claimed:
        # Nothing staged by `work` survives; the replay is the stored answer alone.
        await session.rollback()
        existing = await repository.find(session, owner_id=owner_id, key=key)
        if existing is None:
            raise RequestInProgress
        return _replay(existing, request_hash, answer)
    return Outcome(fresh)
