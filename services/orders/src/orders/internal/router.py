"""Internal endpoints under ``/internal/v1``: service tokens with ``orders:internal`` only.

Never exposed by the gateway. A user token is refused with 403 even if it
carried the scope, a missing token with 401.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from chassis.auth import kind_guard, scopes_guard
from chassis.openapi import auth_problems, problem_responses
from contracts.orders import FulfilmentReport, OrderRead, OrderStatus, StatusChange
from orders.deps import SessionDep, SettingsDep
from orders.internal import service as maintenance
from orders.internal.schemas import ExpirePending, ExpirePendingResult, Purge, PurgeResult
from orders.order import service as orders

INTERNAL_SCOPE = "orders:internal"
GUARDED = problem_responses(auth_problems(f"Not a service token with {INTERNAL_SCOPE}."))
NOT_FOUND = {404: "No such order."}

router = APIRouter(
    prefix="/internal/v1",
    tags=["internal"],
    dependencies=[kind_guard("service"), scopes_guard(INTERNAL_SCOPE)],
    responses=GUARDED,
)


@router.get("/orders/{order_id}", response_model=OrderRead, responses=problem_responses(NOT_FOUND))
async def get_any_order(order_id: str, session: SessionDep) -> OrderRead:
    """Any order, whoever owns it."""
    return await orders.get_order(session, order_id=order_id)


@router.post(
    "/orders/{order_id}/fulfilment",
    response_model=OrderRead,
    responses=problem_responses(
        {**NOT_FOUND, 409: "The order was cancelled, expired or already ended otherwise."}
    ),
)
async def record_fulfilment(
    order_id: str, body: FulfilmentReport, session: SessionDep
) -> OrderRead:
    """The worker's one report: the payment outcome moves the order to its final state.

    orders applies its state table and writes every event in one transaction; the
    same report again answers 200 and records nothing.
    """
    return await orders.record_fulfilment(session, order_id=order_id, payment=body.payment)


@router.post(
    "/orders/{order_id}/status",
    response_model=OrderRead,
    responses=problem_responses({**NOT_FOUND, 409: "The state machine forbids this move."}),
)
async def change_order_status(order_id: str, body: StatusChange, session: SessionDep) -> OrderRead:
    """Move an order (operators); moving it to the state it is in answers 200, records nothing."""
    return await orders.change_status(
        session, order_id=order_id, status=OrderStatus(body.status), reason=body.reason
    )


@router.post("/maintenance/expire-pending", response_model=ExpirePendingResult)
async def expire_pending(
    body: ExpirePending, session: SessionDep, settings: SettingsDep
) -> ExpirePendingResult:
    """Fail pending orders older than the given age, each with its order.failed event.

    At most ``ORDERS_MAINTENANCE__EXPIRE_BATCH_SIZE`` per call; the cron runs again.
    """
    expired = await orders.expire_pending_orders(
        session,
        older_than=timedelta(seconds=body.older_than_seconds),
        limit=settings.maintenance.expire_batch_size,
    )
    return ExpirePendingResult(expired=expired)


@router.post("/maintenance/purge", response_model=PurgeResult)
async def purge(body: Purge, session: SessionDep) -> PurgeResult:
    """Delete old idempotency keys and outbox rows sent long ago."""
    return await maintenance.purge(
        session,
        idempotency_older_than=timedelta(seconds=body.idempotency_older_than_seconds),
        outbox_sent_older_than=timedelta(seconds=body.outbox_sent_older_than_seconds),
    )
