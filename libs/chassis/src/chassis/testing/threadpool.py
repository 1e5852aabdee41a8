"""Find what FastAPI would run in its thread pool on every request.

FastAPI runs a plain ``def`` endpoint or dependency (and a sync generator
dependency) through ``anyio.to_thread``: a hand-off to a worker thread and
back for each call, under a 40-token limiter shared by the whole process.
For a dependency that only reads ``app.state`` that hop costs more than the
work, and under load requests queue for tokens. Services test that
`threadpool_calls(app)` is empty, so a new ``def`` dependency cannot slip in.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant


def threadpool_calls(app: FastAPI) -> list[str]:
    """``"<route path>: <qualified name>"`` of each sync endpoint or dependency, sorted."""
    found: set[str] = set()
    for path, dependant in _route_dependants(app.routes):
        for call in _calls(dependant):
            if _runs_in_threadpool(call):
                found.add(f"{path}: {_name(call)}")
    return sorted(found)


def _route_dependants(routes: Iterable[Any]) -> Iterator[tuple[str, Dependant]]:
    for route in routes:
        dependant = getattr(route, "dependant", None)
        if isinstance(dependant, Dependant):
            yield str(getattr(route, "path", "?")), dependant
        # FastAPI >= 0.160 keeps included routers as branches resolved at match time.
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _route_dependants(candidates())
        # A mounted Starlette router or sub-application.
        yield from _route_dependants(getattr(route, "routes", ()))


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _unwrap(call: Callable[..., Any]) -> Any:
    while isinstance(call, functools.partial):
        call = call.func
    return inspect.unwrap(call)


def _runs_in_threadpool(call: Callable[..., Any]) -> bool:
    target = _unwrap(call)
    if inspect.isclass(target):
        # A class used as a dependency is constructed in the thread pool.
        return True
    if not inspect.isroutine(target):
        # An instance: FastAPI looks at its __call__ (security schemes are async).
        target = _unwrap(target.__call__)
    return not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target))


def _name(call: Callable[..., Any]) -> str:
    target = _unwrap(call)
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qualname}"
