"""The outbox table's side: its columns, staging an event with the caller's data, purging.

A service mixes `OutboxMixin` into its declarative base and stages events with
`add_event` (or `insert_event`, without the ORM) in the transaction that writes
the data they describe; the relay (chassis.events.outbox, which re-exports these
names) publishes them after the commit.
Why, and the guarantees, in docs/adr/0003-transactional-outbox.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, Insert, Integer, String, Table, delete, insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from chassis.database.metadata import UTCDateTime
from chassis.events.envelope import EventEnvelope, utcnow

LAST_ERROR_LENGTH = 500
#: ``session.info`` key: the outbox models with rows staged in the session's open transaction.
STAGED_MODELS_KEY = "chassis.outbox.staged_models"


class OutboxMixin:
    """Columns of an outbox table; mix into the service's declarative base::

    class OutboxEvent(OutboxMixin, Base):
        __tablename__ = "outbox"
    """

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(200))
    event_version: Mapped[int] = mapped_column(Integer, default=1)
    producer: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    trace: Mapped[dict[str, str]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_LENGTH))


OutboxT = TypeVar("OutboxT", bound=OutboxMixin)


def add_event(
    session: AsyncSession | Session,
    model: type[OutboxT],
    *,
    type: str,
    payload: dict[str, Any],
    producer: str,
    subject: str | None = None,
    version: int = 1,
) -> EventEnvelope:
    """Stage an event in the caller's transaction; it is published after the commit.

    The payload is stored exactly as it will be published (JSON-normalised by
    the envelope), with the trace context of the active span. The row is an ORM
    object, written when the session flushes; `insert_event` writes it at once.
    """
    envelope = EventEnvelope.new(
        type=type, producer=producer, payload=payload, subject=subject, version=version
    )
    row = model()
    for column, value in _row_values(envelope).items():
        setattr(row, column, value)
    session.add(row)
    _mark_staged(session, model)
    return envelope


async def insert_event(
    session: AsyncSession,
    model: type[OutboxMixin],
    *,
    type: str,
    payload: dict[str, Any],
    producer: str,
    subject: str | None = None,
    version: int = 1,
) -> EventEnvelope:
    """`add_event` as one Core ``INSERT`` sent now, in the caller's transaction.

    For a write path that has nothing else for the unit of work to flush: the ORM's
    flush (sorting the pending objects, building their parameters, reading back their
    state) cost more CPU than the insert itself (issue 15). The same row, the same
    wake of the relay on commit, and a rollback undoes it like any other write.
    """
    envelope = EventEnvelope.new(
        type=type, producer=producer, payload=payload, subject=subject, version=version
    )
    await session.execute(_insert_statement(model), _row_values(envelope))
    _mark_staged(session, model)
    return envelope


def _row_values(envelope: EventEnvelope) -> dict[str, Any]:
    """The outbox row of a new event, by column."""
    return {
        "id": envelope.id,
        "event_type": envelope.type,
        "event_version": envelope.version,
        "producer": envelope.producer,
        "subject": envelope.subject,
        "payload": envelope.model_dump(mode="json", include={"payload"})["payload"],
        "trace": dict(envelope.trace),
        "occurred_at": envelope.occurred_at,
        "created_at": envelope.occurred_at,
        "attempts": 0,
        "next_attempt_at": envelope.occurred_at,
        "sent_at": None,
        "last_error": None,
    }


#: One INSERT per outbox table: its compiled form is cached with it, so a call costs
#: the parameters only.
_INSERTS: dict[type[OutboxMixin], Insert] = {}


def _insert_statement(model: type[OutboxMixin]) -> Insert:
    statement = _INSERTS.get(model)
    if statement is None:
        table: Table = model.__table__  # type: ignore[attr-defined]
        statement = _INSERTS[model] = insert(table)
    return statement


def _mark_staged(session: AsyncSession | Session, model: type[OutboxMixin]) -> None:
    # Read by the after_commit hook, which wakes this process's relays of `model`.
    session.info.setdefault(STAGED_MODELS_KEY, set()).add(model)


def envelope_from_row(row: OutboxMixin) -> EventEnvelope:
    return EventEnvelope(
        id=row.id,
        type=row.event_type,
        version=row.event_version,
        occurred_at=row.occurred_at,
        producer=row.producer,
        subject=row.subject,
        trace=row.trace or {},
        payload=row.payload,
    )


async def purge_sent(
    session: AsyncSession,
    model: type[OutboxMixin],
    *,
    older_than: timedelta,
    now: datetime | None = None,
) -> int:
    """Delete rows sent more than `older_than` ago (in the caller's transaction); return count."""
    cutoff = (now or utcnow()) - older_than
    result = await session.execute(
        delete(model).where(model.sent_at.is_not(None), model.sent_at < cutoff)
    )
    return int(cast(CursorResult[Any], result).rowcount)
