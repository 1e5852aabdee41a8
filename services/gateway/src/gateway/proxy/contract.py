"""The proxied operations, declared for the OpenAPI document only.

The gateway serves these paths with streaming catch-all routes
(`gateway.proxy.router`) that never parse a body; these declarations give
/openapi.json their parameters, bodies, answers and security, with the
schemas the users and orders services publish (their ``schemas`` modules
only). They are not mounted: `gateway.openapi.openapi_with` merges them into
the document, and a test checks that every one of them is routed to its
upstream. Besides each upstream's own errors, every operation can get the
gateway's: 429 (rate limit), 502/503/504 (upstream broken, down or slow).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel

from chassis.openapi import problem_statuses
from contracts.auth import (
    ClientCredentialsRequest,
    LoginForm,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    ServiceToken,
    TokenPair,
)
from contracts.keys import JsonWebKeySet
from contracts.orders import OrderCreate, OrderPage, OrderRead
from contracts.users import UserCreate, UserPage, UserRead, UserUpdate
from gateway.deps import CurrentUser

SERVED_BY_PROXY = "declared for the OpenAPI document; the streaming proxy serves this path"

#: Models referenced by hand (``openapi_extra``) that no declared parameter brings in.
EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (LoginForm,)

EDGE = (429, 502, 503, 504)
PROTECTED = (401, *EDGE)

contract = APIRouter()

LOGIN_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/LoginForm"}
            }
        }
    }
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body by the same user replays the first answer.",
    ),
]
IfNoneMatch = Annotated[
    str | None, Header(alias="If-None-Match", description="ETags held; a match gets 304.")
]


# --- users: auth (public) ----------------------------------------------------------
@contract.post(
    "/api/v1/auth/signup",
    status_code=201,
    tags=["auth"],
    summary="Create an account",
    responses=problem_statuses(409, 422, *EDGE),
)
async def signup(body: UserCreate) -> UserRead:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.post(
    "/api/v1/auth/login",
    tags=["auth"],
    summary="Log in with email and password (JSON or OAuth2 password form)",
    responses=problem_statuses(401, 422, *EDGE),
    openapi_extra=LOGIN_FORM_BODY,
)
async def login(body: LoginRequest) -> TokenPair:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.post(
    "/api/v1/auth/refresh",
    tags=["auth"],
    summary="Exchange a refresh token for a new pair (the old one stops working)",
    responses=problem_statuses(401, 422, *EDGE),
)
async def refresh_tokens(body: RefreshRequest) -> TokenPair:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.post(
    "/api/v1/auth/logout",
    status_code=204,
    tags=["auth"],
    summary="Revoke a refresh token and every token rotated from the same login",
    responses=problem_statuses(422, *EDGE),
)
async def logout(body: LogoutRequest) -> None:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.post(
    "/api/v1/auth/token",
    tags=["auth"],
    summary="Client-credentials grant: a service token for a machine client",
    responses=problem_statuses(400, 401, 422, *EDGE),
)
async def issue_service_token(form: Annotated[ClientCredentialsRequest, Form()]) -> ServiceToken:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.get(
    "/.well-known/jwks.json",
    tags=["auth"],
    summary="Public keys that verify access tokens (JWKS)",
    responses=problem_statuses(*EDGE),
)
async def get_jwks() -> JsonWebKeySet:
    raise NotImplementedError(SERVED_BY_PROXY)


# --- users: profiles ---------------------------------------------------------------
@contract.get(
    "/api/v1/users/me",
    tags=["users"],
    summary="The caller's profile",
    responses=problem_statuses(403, 404, *PROTECTED),
)
async def get_me(_principal: CurrentUser) -> UserRead:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.patch(
    "/api/v1/users/me",
    tags=["users"],
    summary="Change the display name or the password (with the current password)",
    responses=problem_statuses(403, 404, 422, *PROTECTED),
)
async def update_me(body: UserUpdate, _principal: CurrentUser) -> UserRead:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.get(
    "/api/v1/users",
    tags=["users"],
    summary="All users, oldest first (admins only)",
    responses=problem_statuses(403, 422, *PROTECTED),
)
async def list_users(
    _principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPage:
    raise NotImplementedError(SERVED_BY_PROXY)


# --- orders --------------------------------------------------------------------------
@contract.post(
    "/api/v1/orders",
    status_code=201,
    tags=["orders"],
    summary="Place an order (pending); retry safely with an Idempotency-Key",
    responses=problem_statuses(403, 409, 422, *PROTECTED),
)
async def create_order(
    body: OrderCreate, _principal: CurrentUser, idempotency_key: IdempotencyKey = None
) -> OrderRead:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.get(
    "/api/v1/orders",
    tags=["orders"],
    summary="The caller's orders, newest first",
    responses=problem_statuses(403, 422, *PROTECTED),
)
async def list_orders(
    _principal: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100, description="Orders per page.")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor.")] = None,
) -> OrderPage:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.get(
    "/api/v1/orders/{order_id}",
    tags=["orders"],
    summary="One order, with an ETag (If-None-Match with it gets 304)",
    responses={
        304: {"description": "The order still has the version named by If-None-Match."},
        **problem_statuses(403, 404, 422, *PROTECTED),
    },
)
async def get_order(
    order_id: str, _principal: CurrentUser, if_none_match: IfNoneMatch = None
) -> OrderRead:
    raise NotImplementedError(SERVED_BY_PROXY)


@contract.post(
    "/api/v1/orders/{order_id}/cancel",
    tags=["orders"],
    summary="Cancel a pending or confirmed order",
    responses=problem_statuses(403, 404, 409, 422, *PROTECTED),
)
async def cancel_order(order_id: str, _principal: CurrentUser) -> OrderRead:
    raise NotImplementedError(SERVED_BY_PROXY)


def documented_routes() -> list[APIRoute]:
    """The declarations above, for `gateway.openapi.openapi_with`."""
    return [route for route in contract.routes if isinstance(route, APIRoute)]
