"""`GET /api/v1/platform/status`: signed-in callers only (anonymous ones learn nothing inside)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from chassis.openapi import problem_statuses
from gateway.deps import CurrentUser, SettingsDep
from gateway.status.schemas import PlatformStatus
from gateway.status.service import platform_status

router = APIRouter(prefix="/platform", tags=["overview"])


@router.get("/status", response_model=PlatformStatus, responses=problem_statuses(401, 429))
async def get_platform_status(
    request: Request, _principal: CurrentUser, settings: SettingsDep
) -> PlatformStatus:
    """Each service's readiness checks, every circuit breaker and the outbox lag."""
    targets = {name: upstream.base_url for name, upstream in settings.upstreams.items()}
    if settings.status.worker_url:
        targets["worker"] = settings.status.worker_url
    return await platform_status(
        app=request.app,
        registry=request.app.state.readiness,
        targets=targets,
        timeout_seconds=settings.status.timeout_seconds,
    )
