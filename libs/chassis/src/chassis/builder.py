"""Build a FastAPI app from settings, one step at a time.

    app = (
        AppBuilder(settings, title="orders")
        .with_database()
        .with_redis()
        .with_cache()
        .with_auth()
        .with_http_clients()
        .with_tracing()
        .with_metrics()
        .with_routes(orders_router)
        .build()
    )

Nothing connects at build time: each step registers a *resource* (an async
context manager entered in the lifespan, its value put on ``app.state``) and
its own readiness check. Resources are closed in reverse order of start.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, Self

import structlog
from fastapi import APIRouter, FastAPI

from chassis.builder_protocol import ResourceFactory
from chassis.docs import install_docs
from chassis.docs_paths import OPENAPI_URL
from chassis.errors import install_error_handlers
from chassis.health import ReadinessRegistry, health_router
from chassis.heap import freeze_startup_heap
from chassis.logging import configure_logging
from chassis.openapi import document_problems
from chassis.settings import BaseServiceSettings
from chassis.tracing.native import FASTAPI_TELEMETRY_OFF

if TYPE_CHECKING:
    from chassis.auth.setup import KeyLoaderFactory

logger = structlog.get_logger("chassis.builder")


class AppBuilder:
    """Collects steps, resources, readiness checks and routes; `build` makes the app."""

    def __init__(
        self,
        settings: BaseServiceSettings,
        *,
        title: str | None = None,
        description: str = "",
        openapi_tags: list[dict[str, Any]] | None = None,
        request_examples: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        #: OpenAPI examples by body model name (`chassis.openapi.add_request_examples`).
        self.request_examples = request_examples
        self.title = title or settings.service_name
        self.description = description
        self.openapi_tags = openapi_tags
        self.readiness = ReadinessRegistry()
        self.steps: list[str] = []
        self._resources: list[tuple[str, ResourceFactory]] = []
        self._routers: list[tuple[APIRouter, dict[str, Any]]] = []
        self._middleware = True
        self._configurators: list[Callable[[FastAPI], None]] = []
        #: Set by the tracing step; the middleware stack adds the server span only then.
        self.tracing_enabled = False
        #: Tests put an in-memory exporter here before `with_tracing()`.
        self.span_exporter: Any = None
        #: FastAPI's native OpenTelemetry layer; off because the chassis does it leaner.
        self.fastapi_telemetry: dict[str, Any] = dict(FASTAPI_TELEMETRY_OFF)
        #: Set by the metrics step; the middleware stack adds RED metrics only then.
        self.metrics_enabled = False

    # --- primitives the steps use -------------------------------------------------
    def add_resource(self, name: str, factory: ResourceFactory, *, first: bool = False) -> None:
        """Open `factory(app)` at start-up, in registration order; close it in reverse.

        ``first`` puts it ahead of the others (tracing, so start-up is traced).
        """
        if any(existing == name for existing, _ in self._resources):
            raise ValueError(f"resource {name!r} is already registered")
        if first:
            self._resources.insert(0, (name, factory))
        else:
            self._resources.append((name, factory))

    def configure_app(self, configurator: Callable[[FastAPI], None]) -> None:
        """Run `configurator(app)` once the app object exists (routes, handlers, state)."""
        self._configurators.append(configurator)

    def _step(self, name: str) -> None:
        if name in self.steps:
            raise ValueError(f"builder step {name!r} was added twice")
        self.steps.append(name)

    # --- steps ---------------------------------------------------------------------
    def with_database(self) -> Self:
        from chassis.database import setup_database

        self._step("database")
        setup_database(self)
        return self

    def with_redis(self, *, critical: bool = True) -> Self:
        """The shared Redis client; `critical=False` for a service that degrades without it."""
        from chassis.redis import setup_redis

        self._step("redis")
        setup_redis(self, critical=critical)
        return self

    def with_cache(self) -> Self:
        from chassis.cache import setup_cache

        self._step("cache")
        setup_cache(self)
        return self

    def with_auth(self, *, key_loader: KeyLoaderFactory | None = None) -> Self:
        """Verify bearer tokens; `key_loader` replaces the JWKS URL (see `setup_auth`)."""
        from chassis.auth import setup_auth

        self._step("auth")
        setup_auth(self, key_loader=key_loader)
        return self

    def with_http_clients(self) -> Self:
        from chassis.http import setup_http_clients

        self._step("http_clients")
        setup_http_clients(self)
        return self

    def with_tracing(self, *, exporter: Any = None) -> Self:
        """Trace requests; `exporter` (e.g. in-memory in tests) replaces OTLP."""
        from chassis.tracing import setup_tracing

        self._step("tracing")
        if exporter is not None:
            self.span_exporter = exporter
        setup_tracing(self)
        return self

    def with_metrics(self) -> Self:
        from chassis.metrics import setup_metrics

        self._step("metrics")
        setup_metrics(self)
        return self

    def with_routes(self, *routers: APIRouter, prefix: str = "", **kwargs: Any) -> Self:
        for router in routers:
            self._routers.append((router, {"prefix": prefix, **kwargs}))
        return self

    def without_middleware(self) -> Self:
        """Build a bare app (benchmarks and unit tests of one part)."""
        self._middleware = False
        return self

    # --- build -----------------------------------------------------------------------
    def build(self) -> FastAPI:
        settings = self.settings
        configure_logging(settings)
        docs = settings.docs_visible
        app = FastAPI(
            title=self.title,
            description=self.description,
            version=settings.version,
            openapi_tags=self.openapi_tags,
            # FastAPI's own pages load Swagger UI and ReDoc from a CDN; chassis.docs
            # serves them from the service instead.
            docs_url=None,
            redoc_url=None,
            openapi_url=OPENAPI_URL if docs else None,
            lifespan=self._lifespan,
            telemetry=self.fastapi_telemetry,  # type: ignore[arg-type]
        )
        if docs:
            install_docs(app, title=self.title)
        app.state.settings = settings
        app.state.readiness = self.readiness
        install_error_handlers(app)
        document_problems(app, request_examples=self.request_examples)
        app.include_router(health_router(self.readiness))
        for router, kwargs in self._routers:
            app.include_router(router, **kwargs)
        for configurator in self._configurators:
            configurator(app)
        if self._middleware:
            from chassis.middleware.stack import install_middleware

            install_middleware(app, self)
        return app

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Registered first so that it runs last: readiness is 503 before anything closes.
            stack.callback(self.readiness.begin_shutdown)
            for name, factory in self._resources:
                value = await stack.enter_async_context(factory(app))
                setattr(app.state, name, value)
                stack.callback(logger.info, "resource_closed", resource=name)
            if self.settings.server.freeze_heap_after_startup:
                freeze_startup_heap()
            restore = _flip_readiness_on_sigterm(
                self.readiness, drain_seconds=self.settings.server.drain_seconds
            )
            stack.callback(restore)
            logger.info(
                "service_started",
                service=self.settings.service_name,
                environment=str(self.settings.environment),
                steps=self.steps,
            )
            yield
            self.readiness.begin_shutdown()
            logger.info("service_stopping", service=self.settings.service_name)


def _flip_readiness_on_sigterm(
    registry: ReadinessRegistry, *, drain_seconds: float = 0.0
) -> Callable[[], None]:
    """Chain onto the server's SIGTERM/SIGINT handlers so readiness turns 503 at once.

    The server (uvicorn, gunicorn worker) installs its own handlers before the
    lifespan starts; we call through to them, flipping readiness first and,
    with `drain_seconds`, passing the signal on only after that delay so load
    balancers see "not ready" while requests are still being served.
    Returns a function that puts the previous handlers back.
    """
    previous: dict[int, Any] = {}
    loop = asyncio.get_running_loop()

    def forward(signum: int, frame: FrameType | None) -> None:
        prior = previous.get(signum)
        if callable(prior):
            prior(signum, frame)
        elif prior == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt

    def drain_then_forward(signum: int, frame: FrameType | None) -> None:
        logger.info("draining_before_shutdown", seconds=drain_seconds)
        loop.call_later(drain_seconds, forward, signum, frame)

    def handler(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the main thread was
        # doing: under load, often inside an access-log write that holds the stream's
        # lock, which is not reentrant. Logging here deadlocked the process (2 SIGTERMs
        # of 30 under wrk never stopped it). So the handler only flips readiness, which
        # takes no lock, and leaves the log lines and shutdown callbacks to the loop.
        first = registry.mark_shutting_down()
        if first:
            loop.call_soon_threadsafe(registry.begin_shutdown)
        if drain_seconds > 0 and first and signum == signal.SIGTERM:
            loop.call_soon_threadsafe(drain_then_forward, signum, frame)
            return
        forward(signum, frame)

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only; the server there owns them
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)

    def restore() -> None:
        for signum, prior in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, prior)

    return restore


def route_paths(app: FastAPI) -> Sequence[str]:
    """Paths of the app's routes (useful in tests and for docs exemptions)."""
    return [getattr(route, "path", "") for route in app.routes]
