"""Dependency aliases for the gateway's routes (``Annotated`` only, never ``= Depends()``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chassis.auth import PrincipalDep
from chassis.http import UpstreamClient, upstream
from gateway.events.setup import LiveEvents, get_live_events
from gateway.settings import GatewaySettings, app_settings

SettingsDep = Annotated[GatewaySettings, Depends(app_settings)]
#: The caller, verified at the edge; 401 problem without a valid bearer token.
CurrentUser = PrincipalDep
UsersClient = Annotated[UpstreamClient, Depends(upstream("users"))]
OrdersClient = Annotated[UpstreamClient, Depends(upstream("orders"))]
LiveEventsDep = Annotated[LiveEvents, Depends(get_live_events)]

__all__ = ["CurrentUser", "LiveEventsDep", "OrdersClient", "SettingsDep", "UsersClient"]
