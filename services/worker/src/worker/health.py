"""The worker's health and metrics server (port 8003): a small FastAPI app on uvicorn.

It runs as a task on the worker's own event loop, started by the start-up
hook and stopped by the shutdown hook; every handler is async and short, so
it never holds up jobs. uvicorn's signal handling is switched off: SIGTERM
belongs to arq, which drains jobs and then stops this server.

- ``/health/live``: the process runs (no dependency touched).
- ``/health/ready``: Redis answers PING (critical); the orders breaker is not
  open and a service token can be had (both non-critical: they show, they
  do not take the worker out). Once an open breaker's wait is over, the check
  probes orders' liveness through it, so a healed upstream shows as healed
  even when no job has called it since.
- ``/metrics``: Prometheus exposition (jobs, queue depth, breakers, upstream calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from chassis.health import ReadinessRegistry, health_router
from chassis.http import BreakerState, CircuitOpenError
from chassis.jobs import update_queue_depth
from chassis.metrics import render_metrics
from worker.resources import Resources

logger = structlog.get_logger("worker.health")

#: How long a scrape waits for the queue-depth sample before serving the last one.
QUEUE_DEPTH_TIMEOUT_SECONDS = 0.5


#: What readiness asks orders once its breaker may probe: liveness, no token, no data.
ORDERS_PROBE_PATH = "/health/live"


async def probe_orders(resources: Resources) -> None:
    """One call to orders through its breaker; raises what the call raised."""
    response = await resources.orders.get(ORDERS_PROBE_PATH)
    response.raise_for_status()


def create_health_app(resources: Resources, redis: Redis) -> FastAPI:
    """The app: liveness, readiness over the worker's dependencies, and metrics."""
    settings = resources.settings
    registry = ReadinessRegistry()

    async def check_redis(_app: FastAPI) -> None:
        await redis.ping()

    async def check_orders(_app: FastAPI) -> dict[str, Any]:
        breaker = resources.orders.breaker
        if breaker.state is BreakerState.OPEN:
            if breaker.retry_in() > 0:
                raise CircuitOpenError(breaker.name, retry_in=breaker.retry_in())
            # The breaker only leaves OPEN on a call, and an idle worker makes none: without
            # this probe, readiness would report orders down long after it healed. The probe
            # goes through the breaker like any call, so an answer closes it.
            await probe_orders(resources)
        return breaker.snapshot()

    async def check_token(_app: FastAPI) -> dict[str, Any]:
        await resources.tokens.token()
        return resources.tokens.snapshot()

    registry.add("redis", check_redis)
    registry.add("orders", check_orders, critical=False)
    registry.add("token", check_token, critical=False)

    app = FastAPI(
        title=f"{settings.service_name} health",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.readiness = registry
    app.include_router(health_router(registry))
    if settings.metrics.enabled:
        queue_name = settings.jobs.queue_name

        @app.get(settings.metrics.path, include_in_schema=False)
        async def metrics(request: Request) -> Response:
            # A fresh depth for this scrape; the periodic sample stands in if Redis is slow.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(QUEUE_DEPTH_TIMEOUT_SECONDS):
                    await update_queue_depth(redis, queue_name)
            body, content_type = render_metrics(request.headers.get("accept", ""))
            return Response(body, headers={"Content-Type": content_type})

    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # arq owns SIGINT/SIGTERM in this process; uvicorn would take them over.
        yield


class HealthServer:
    """Serves an app on `host`:`port` from a task on the running loop."""

    def __init__(self, app: FastAPI, *, host: str, port: int, start_timeout: float = 10.0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._start_timeout = start_timeout
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        if self._socket is None:
            return self._requested_port
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind (failing at once if the port is taken) and serve until `stop`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, access_log=False, log_level="warning"
        )
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="health-server")
        async with asyncio.timeout(self._start_timeout):
            while not server.started:
                if self._task.done():
                    # serve() ended before listening: surface its error here.
                    await self._task
                    raise RuntimeError("health server stopped before it started")
                await asyncio.sleep(0.01)
        logger.info("health_server_started", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop serving; readiness answers 503 from here on while connections close."""
        registry: ReadinessRegistry = self.app.state.readiness
        registry.begin_shutdown()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                async with asyncio.timeout(self._start_timeout):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._socket is not None:
            self._socket.close()
        logger.info("health_server_stopped")
