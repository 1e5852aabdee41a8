"""Routes the public API to its upstream: auth, users and the JWKS to users; orders to orders.

Public without a token: POST ``/api/v1/auth/{signup,login,refresh,logout,token}``
and GET ``/.well-known/jwks.json``. Everything else under the proxied prefixes
needs a valid bearer token at the edge (401 here; the upstream verifies it
again). Nothing else is routed: ``/internal/*`` and unknown paths are 404 at
the gateway and never reach an upstream.

These routes are left out of the OpenAPI document; `gateway.proxy.contract`
describes the operations they serve, with their schemas.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chassis.auth import get_principal
from gateway.deps import OrdersClient, SettingsDep, UsersClient
from gateway.proxy.forward import forward

#: Every method a proxied route accepts (the upstream answers 405 for the ones it lacks).
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

PUBLIC_AUTH_OPERATIONS = ("signup", "login", "refresh", "logout", "token")
JWKS_PATH = "/.well-known/jwks.json"

public = APIRouter(include_in_schema=False)
protected = APIRouter(include_in_schema=False, dependencies=[Depends(get_principal)])


async def forward_to_users(request: Request, users: UsersClient, settings: SettingsDep) -> Response:
    return await forward(request, users, strip_rate_limit_headers=settings.rate_limit.enabled)


async def forward_to_orders(
    request: Request, orders: OrdersClient, settings: SettingsDep
) -> Response:
    return await forward(request, orders, strip_rate_limit_headers=settings.rate_limit.enabled)


for operation in PUBLIC_AUTH_OPERATIONS:
    public.add_api_route(f"/api/v1/auth/{operation}", forward_to_users, methods=["POST"])
public.add_api_route(JWKS_PATH, forward_to_users, methods=["GET", "HEAD"])

for prefix, endpoint in (
    ("/api/v1/auth", forward_to_users),
    ("/api/v1/users", forward_to_users),
    ("/api/v1/orders", forward_to_orders),
):
    protected.add_api_route(prefix, endpoint, methods=METHODS)
    protected.add_api_route(prefix + "/{path:path}", endpoint, methods=METHODS)
