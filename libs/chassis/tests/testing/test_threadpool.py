"""threadpool_calls names every endpoint and dependency FastAPI would hand to its thread pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPBearer

from chassis.testing.threadpool import threadpool_calls

MODULE = __name__
SYNC_ENDPOINT = "test_sync_calls_are_named_async_ones_are_not.<locals>.sync_endpoint"


def sync_dependency() -> int:
    return 1


async def async_dependency() -> int:
    return 1


def sync_generator() -> Iterator[int]:
    yield 1


async def async_generator() -> AsyncIterator[int]:
    yield 1


async def needs_sync(value: Annotated[int, Depends(sync_dependency)]) -> int:
    return value


class Pager:
    def __init__(self, size: int = 10) -> None:
        self.size = size


def test_sync_calls_are_named_async_ones_are_not() -> None:
    inner = APIRouter()

    @inner.get("/nested")
    async def nested(value: Annotated[int, Depends(needs_sync)]) -> int:
        return value

    @inner.get("/sync-endpoint")
    def sync_endpoint() -> int:
        return 1

    app = FastAPI()

    @app.get("/async")
    async def fine(
        a: Annotated[int, Depends(async_dependency)],
        b: Annotated[int, Depends(async_generator)],
        token: Annotated[object, Depends(HTTPBearer(auto_error=False))],
    ) -> int:
        return a + b

    @app.get("/generator")
    async def generator(value: Annotated[int, Depends(sync_generator)]) -> int:
        return value

    @app.get("/class")
    async def by_class(pager: Annotated[Pager, Depends()]) -> int:
        return pager.size

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner, prefix="/inner")
    app.include_router(outer)

    assert threadpool_calls(app) == [
        f"/class: {MODULE}.Pager",
        f"/generator: {MODULE}.sync_generator",
        f"/outer/inner/nested: {MODULE}.sync_dependency",
        f"/outer/inner/sync-endpoint: {MODULE}.{SYNC_ENDPOINT}",
    ]


def test_an_all_async_app_has_none() -> None:
    app = FastAPI()

    @app.get("/")
    async def root(value: Annotated[int, Depends(async_dependency)]) -> int:
        return value

    assert threadpool_calls(app) == []
