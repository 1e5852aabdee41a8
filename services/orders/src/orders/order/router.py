"""Public order endpoints under ``/api/v1/orders``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from chassis.openapi import auth_problems, problem_responses
from contracts.orders import OrderCreate, OrderPage, OrderRead
from orders.deps import (
    DEFAULT_PAGE_SIZE,
    IdempotencyKeyHeader,
    IfNoneMatchHeader,
    OrdersReader,
    OrdersWriter,
    PageCursor,
    PageLimit,
    SessionDep,
)
from orders.idempotency.schemas import REPLAYED_HEADER
from orders.order import service

router = APIRouter(prefix="/orders", tags=["orders"])

AUTH_REQUIRED = auth_problems("The token lacks the required scope or kind.")
NOT_FOUND = {404: "No such order, or not yours."}


def etag_for(order: OrderRead) -> str:
    """A weak validator from the version, which every change bumps."""
    return f'W/"{order.version}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of `etag` against an If-None-Match list (or ``*``)."""
    if not if_none_match:
        return False
    candidates = [part.strip() for part in if_none_match.split(",")]
    if "*" in candidates:
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.removeprefix("W/") == opaque for candidate in candidates)


@router.post(
    "",
    status_code=201,
    response_model=OrderRead,
    responses={
        **problem_responses(
            {
                **AUTH_REQUIRED,
                409: "A request with this key is still being processed.",
                422: "Invalid body, or the key was used with another body.",
            }
        ),
        201: {
            "description": "The order was created (or, with `Idempotent-Replayed: true`, the "
            "first answer to this Idempotency-Key is replayed).",
            "headers": {
                "Location": {"schema": {"type": "string"}},
                "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
            },
        },
    },
)
async def create_order(
    request: Request,
    body: OrderCreate,
    principal: OrdersWriter,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Place an order (pending); fulfilment starts once its event is relayed."""
    placed = await service.place_order(
        session, owner_id=principal.subject, data=body, idempotency_key=idempotency_key
    )
    # Only successful creates are stored, so a replay is a 201 with an order too.
    location = request.app.url_path_for("get_order", order_id=placed.order.id)
    replayed = {REPLAYED_HEADER: "true"} if placed.replayed else {}
    headers = {**replayed, "Location": str(location)}
    return JSONResponse(placed.order.model_dump(mode="json"), status_code=201, headers=headers)


@router.get(
    "",
    response_model=OrderPage,
    responses=problem_responses({**AUTH_REQUIRED, 422: "Invalid limit or cursor."}),
)
async def list_orders(
    principal: OrdersReader,
    session: SessionDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> OrderPage:
    """The caller's orders, newest first (everyone's for `orders:admin`)."""
    return await service.list_orders(session, viewer=principal, limit=limit, cursor=cursor)


@router.get(
    "/{order_id}",
    response_model=OrderRead,
    responses={
        **problem_responses({**AUTH_REQUIRED, **NOT_FOUND}),
        200: {"headers": {"ETag": {"schema": {"type": "string"}}}},
        304: {"description": "The order still has the version named by If-None-Match."},
    },
)
async def get_order(
    order_id: str,
    principal: OrdersReader,
    session: SessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> OrderRead | Response:
    """One order, with an ETag; `If-None-Match` with the current one gets 304."""
    order = await service.get_order(
        session, order_id=order_id, owner_id=service.owner_scope(principal)
    )
    etag = etag_for(order)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return order


@router.post(
    "/{order_id}/cancel",
    response_model=OrderRead,
    responses=problem_responses(
        {**AUTH_REQUIRED, **NOT_FOUND, 409: "The order can no longer be cancelled."}
    ),
)
async def cancel_order(order_id: str, principal: OrdersWriter, session: SessionDep) -> OrderRead:
    """Cancel a pending or confirmed order; cancelling a cancelled one changes nothing."""
    return await service.cancel_order(session, order_id=order_id, viewer=principal)
