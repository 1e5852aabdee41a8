"""add_request_examples: examples by body model name, on every media type that references it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI
from pydantic import BaseModel

from chassis.builder import AppBuilder
from chassis.openapi import add_request_examples
from chassis.settings import BaseServiceSettings

GADGET_OWN_EXAMPLES: dict[str, Any] = {"own": {"summary": "Its own", "value": {"label": "g"}}}
WIDGET_EXAMPLES = {"small": {"summary": "A small widget", "value": {"name": "w", "size": 1}}}


class Widget(BaseModel):
    name: str
    size: int


class Gadget(BaseModel):
    label: str


def _app(**builder_kwargs: Any) -> FastAPI:
    app = AppBuilder(BaseServiceSettings(), **builder_kwargs).without_middleware().build()

    @app.post("/widgets")
    async def create_widget(body: Widget) -> None: ...

    @app.put("/widgets/{name}")
    async def replace_widget(name: str, body: Widget) -> None: ...

    @app.post("/gadgets")
    async def create_gadget(
        body: Annotated[Gadget, Body(openapi_examples=GADGET_OWN_EXAMPLES)],
    ) -> None: ...

    return app


def _content(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    content: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"]
    return content["application/json"]


def test_every_operation_with_the_model_gets_its_examples() -> None:
    document = _app(request_examples={"Widget": WIDGET_EXAMPLES}).openapi()
    assert _content(document, "/widgets", "post")["examples"] == WIDGET_EXAMPLES
    assert _content(document, "/widgets/{name}", "put")["examples"] == WIDGET_EXAMPLES


def test_examples_declared_on_the_route_are_kept() -> None:
    document = _app(request_examples={"Gadget": {"other": {"value": {"label": "x"}}}}).openapi()
    assert list(_content(document, "/gadgets", "post")["examples"]) == ["own"]


def test_without_examples_the_document_is_unchanged() -> None:
    plain = _app().openapi()
    assert "examples" not in _content(plain, "/widgets", "post")


def test_path_level_entries_and_bodiless_operations_are_skipped() -> None:
    document: dict[str, Any] = {
        "paths": {"/x": {"parameters": [], "get": {"responses": {}}}},
    }
    add_request_examples(document, {"Widget": WIDGET_EXAMPLES})
    assert document == {"paths": {"/x": {"parameters": [], "get": {"responses": {}}}}}
