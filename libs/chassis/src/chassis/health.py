"""Liveness and readiness: a registry of dependency checks and the two endpoints.

Liveness never touches a dependency: a dead database must not restart a pod.
Readiness runs every registered check concurrently, each under its own
timeout, and answers 503 naming what failed; it answers 503 as soon as
shutdown begins so the load balancer stops sending traffic first.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse

logger = structlog.get_logger("chassis.health")

#: A check gets the app and raises (or returns False) when the dependency is unusable.
#: It may return a mapping of details to show in the readiness report.
CheckResult = Mapping[str, Any] | bool | None
ReadinessCheck = Callable[[FastAPI], Awaitable[CheckResult] | CheckResult]


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    check: ReadinessCheck
    timeout: float
    critical: bool


class ReadinessRegistry:
    """Named dependency checks; builder steps add theirs as they are configured."""

    def __init__(self, default_timeout: float = 2.0) -> None:
        self.default_timeout = default_timeout
        self._checks: dict[str, _Check] = {}
        self._shutting_down = False
        self._shutdown_announced = False
        self._shutdown_callbacks: list[Callable[[], None]] = []

    def add(
        self,
        name: str,
        check: ReadinessCheck,
        *,
        timeout: float | None = None,
        critical: bool = True,
    ) -> None:
        """Register `check`; a non-critical check reports details but never fails readiness."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = _Check(name, check, timeout or self.default_timeout, critical)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when shutdown begins (SIGTERM, or the end of the lifespan).

        For long-lived streams (SSE, WebSocket) that the server would otherwise
        wait for before it can stop. It runs on the event loop's thread, from
        `begin_shutdown`; keep it short. A failing callback is logged and does
        not stop the others.
        """
        self._shutdown_callbacks.append(callback)

    def _stopping(self) -> bool:
        return self._shutting_down

    def mark_shutting_down(self) -> bool:
        """Turn readiness to 503 and do nothing else; True if this call turned it.

        The one part of shutdown that is safe inside a signal handler: it takes
        no lock and writes no log line. `begin_shutdown` still has to run (it
        logs and calls the callbacks).
        """
        first = not self._shutting_down
        self._shutting_down = True
        return first

    def begin_shutdown(self) -> None:
        """Readiness 503 from now on; log it and run the shutdown callbacks, once.

        Never from a signal handler: it logs, and a log write takes the stream's
        lock, which the interrupted code may be holding (`mark_shutting_down`).
        """
        self._shutting_down = True
        if self._shutdown_announced:
            return
        self._shutdown_announced = True
        logger.info("readiness_shutdown_begun")
        for callback in self._shutdown_callbacks:
            try:
                callback()
            except Exception:  # one broken hook must not block the others
                logger.exception("shutdown_callback_failed", callback=repr(callback))

    async def run(self, app: FastAPI) -> tuple[bool, dict[str, Any]]:
        """Run every check concurrently; return (ready, report)."""
        if self._shutting_down:
            # At once, touching no dependency: the load balancer must see 503 while the
            # drain window is still open, not after a slow check under load has finished.
            return False, {"status": "not_ready", "checks": {}, "reason": "shutting down"}
        results = await asyncio.gather(*(self._run_one(app, c) for c in self._checks.values()))
        checks = dict(results)
        # Shutdown may have begun while the checks ran (a method call: re-read, not narrowed).
        stopping = self._stopping()
        ready = not stopping and all(
            report["status"] == "ok" or not self._checks[name].critical
            for name, report in checks.items()
        )
        failed = [
            name
            for name, report in checks.items()
            if report["status"] != "ok" and self._checks[name].critical
        ]
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
        if stopping:
            body["reason"] = "shutting down"
        elif failed:
            body["failed"] = failed
        return ready, body

    async def _run_one(self, app: FastAPI, check: _Check) -> tuple[str, dict[str, Any]]:
        started = time.perf_counter()
        report: dict[str, Any]
        try:
            async with asyncio.timeout(check.timeout):
                result = check.check(app)
                if inspect.isawaitable(result):
                    result = await result
            if result is False:
                report = {"status": "failed", "error": "check reported failure"}
            else:
                report = {"status": "ok"}
                if isinstance(result, Mapping):
                    report["details"] = dict(result)
        except TimeoutError:
            report = {"status": "failed", "error": f"timed out after {check.timeout:g}s"}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            # The exception type only: messages can carry hosts or credentials.
            report = {"status": "failed", "error": type(exc).__name__}
            logger.warning("readiness_check_failed", check=check.name, error=repr(exc))
        report["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if not check.critical:
            report["critical"] = False
        return check.name, report


def health_router(registry: ReadinessRegistry) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"], include_in_schema=False)

    @router.get("/live")
    async def liveness() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/ready")
    async def readiness(request: Request) -> JSONResponse:
        ready, body = await registry.run(request.app)
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
