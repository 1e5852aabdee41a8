"""What a setup step may use of the builder: a small protocol in a leaf module.

Each ``*/setup.py`` (database, redis, cache, auth, http clients, tracing, metrics,
the middleware stack) configures the app through these members only. They import
this protocol, not `chassis.builder.AppBuilder`, so the builder can import every
step while no step imports the builder: the chassis' import graph has no circle
(``make lint`` checks it with import-linter).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from chassis.health import ReadinessRegistry
from chassis.settings import BaseServiceSettings

#: Opens a resource for the app's lifetime; what it yields lands on ``app.state.<name>``.
ResourceFactory = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


class Builder(Protocol):
    """The members of `chassis.builder.AppBuilder` that setup steps read and write."""

    settings: BaseServiceSettings
    readiness: ReadinessRegistry
    #: Names of the steps added so far, in order (a step checks what came before it).
    steps: list[str]
    #: Set by the tracing step; the middleware stack adds the server span only then.
    tracing_enabled: bool
    #: Tests put an in-memory exporter here before `with_tracing()`.
    span_exporter: Any
    #: Set by the metrics step; the middleware stack adds RED metrics only then.
    metrics_enabled: bool

    def add_resource(self, name: str, factory: ResourceFactory, *, first: bool = False) -> None:
        """Open `factory(app)` at start-up, in registration order; close it in reverse."""

    def configure_app(self, configurator: Callable[[FastAPI], None]) -> None:
        """Run `configurator(app)` once the app object exists."""

    def with_routes(self, *routers: APIRouter, prefix: str = "", **kwargs: Any) -> Any:
        """Include `routers` when the app is built."""
