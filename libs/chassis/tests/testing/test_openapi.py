"""`openapi_problems` / `assert_valid_openapi`: each kind of problem, and real FastAPI output."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from chassis.testing import assert_valid_openapi, openapi_problems, openapi_refs
from chassis.testing.openapi import resolve_ref


def valid_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "things", "version": "1.0.0"},
        "paths": {
            "/things": {
                "get": {
                    "operationId": "list_things",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Thing"}
                                }
                            },
                        }
                    },
                },
                "post": {
                    "operationId": "create_thing",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/a~1b"}}
                        }
                    },
                    "responses": {"201": {"description": "Created"}},
                },
            },
            "/things/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True}],
                "get": {
                    "operationId": "get_thing",
                    "responses": {
                        "200": {"$ref": "#/components/responses/Thing~0ish"},
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "Thing": {"type": "object", "properties": {"name": {"type": "string"}}},
                "a/b": {"type": "object"},
            },
            "responses": {"Thing~ish": {"description": "A thing"}},
        },
    }


def test_a_valid_document_has_no_problems() -> None:
    document = valid_document()

    assert openapi_problems(document) == []
    assert_valid_openapi(document)


def test_refs_are_collected_in_document_order() -> None:
    assert openapi_refs(valid_document()) == [
        "#/components/schemas/Thing",
        "#/components/schemas/a~1b",
        "#/components/responses/Thing~0ish",
    ]


def test_pointer_tokens_are_unescaped_and_may_index_lists() -> None:
    document = valid_document()

    assert resolve_ref(document, "#/components/schemas/a~1b") == {"type": "object"}
    assert resolve_ref(document, "#/components/responses/Thing~0ish") == {"description": "A thing"}
    assert resolve_ref(document, "#/paths/~1things~1%7Bid%7D/parameters/0")["name"] == "id"
    with pytest.raises(LookupError):
        resolve_ref(document, "#/paths/~1things~1%7Bid%7D/parameters/1")
    with pytest.raises(ValueError, match="not a local"):
        resolve_ref(document, "other.json#/Thing")


def _schema_of(document: dict[str, Any], method: str) -> dict[str, Any]:
    operation = document["paths"]["/things"][method]
    body = operation["responses"]["200"] if method == "get" else operation["requestBody"]
    content: dict[str, Any] = body["content"]["application/json"]
    return content


BREAKAGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "no version": lambda document: document.pop("openapi"),
    "swagger 2": lambda document: document.update(openapi="2.0"),
    "numeric version": lambda document: document.update(openapi=3.1),
    "no info": lambda document: document.pop("info"),
    "no title": lambda document: document["info"].pop("title"),
    "empty version": lambda document: document["info"].update(version=""),
    "no paths": lambda document: document.pop("paths"),
    "empty paths": lambda document: document.update(paths={}),
    "no responses": lambda document: document["paths"]["/things"]["get"].pop("responses"),
    "empty responses": lambda document: document["paths"]["/things"]["post"].update(responses={}),
    "remote ref": lambda document: _schema_of(document, "get").update(
        schema={"$ref": "https://example.com/schemas.json#/Thing"}
    ),
    "dangling ref": lambda document: document["components"]["schemas"].pop("Thing"),
    "unescaped ref": lambda document: _schema_of(document, "post").update(
        schema={"$ref": "#/components/schemas/a/b"}
    ),
    "leaf ref": lambda document: _schema_of(document, "post").update(
        schema={"$ref": "#/info/title"}
    ),
    "duplicate operationId": lambda document: document["paths"]["/things"]["post"].update(
        operationId="list_things"
    ),
}


def break_document(change: str) -> dict[str, Any]:
    document = valid_document()
    BREAKAGES[change](document)
    return document


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("no version", "missing 'openapi' version"),
        ("swagger 2", "unsupported 'openapi' version '2.0' (expected 3.x)"),
        ("numeric version", "unsupported 'openapi' version 3.1 (expected 3.x)"),
        ("no info", "missing 'info' object"),
        ("no title", "missing 'info.title'"),
        ("empty version", "missing 'info.version'"),
        ("no paths", "no 'paths' (the document describes no operation)"),
        ("empty paths", "no 'paths' (the document describes no operation)"),
        ("no responses", "GET /things: the operation has no 'responses'"),
        ("empty responses", "POST /things: the operation has no 'responses'"),
        (
            "remote ref",
            "$ref 'https://example.com/schemas.json#/Thing' is not a local '#/...' JSON pointer",
        ),
        ("dangling ref", "$ref '#/components/schemas/Thing' does not resolve: no 'Thing'"),
        ("unescaped ref", "$ref '#/components/schemas/a/b' does not resolve: no 'a'"),
        ("leaf ref", "$ref '#/info/title' names a str, not an object"),
        (
            "duplicate operationId",
            "duplicate operationId 'list_things': GET /things, POST /things",
        ),
    ],
)
def test_each_kind_of_problem_is_reported(change: str, expected: str) -> None:
    assert change in BREAKAGES
    document = break_document(change)

    assert openapi_problems(document) == [expected]
    with pytest.raises(AssertionError, match="1 problems") as raised:
        assert_valid_openapi(document)
    assert f"- {expected}" in str(raised.value)


def test_every_problem_is_listed_at_once() -> None:
    document = copy.deepcopy(break_document("no title"))
    del document["openapi"]
    del document["components"]

    problems = openapi_problems(document)

    assert problems[:2] == ["missing 'openapi' version", "missing 'info.title'"]
    assert len(problems) == 5  # and the three dangling refs
    with pytest.raises(AssertionError, match="5 problems"):
        assert_valid_openapi(document)


class Item(BaseModel):
    name: str
    tags: list[str] = []


class ItemPage(BaseModel):
    items: list[Item]


def test_a_fastapi_document_is_valid() -> None:
    app = FastAPI(title="items", version="2.3.4")

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/items")
    async def list_items() -> ItemPage:
        return ItemPage(items=[])

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> Item:
        return Item(name=str(item_id))

    document = app.openapi()

    assert_valid_openapi(document)
    assert "#/components/schemas/Item" in openapi_refs(document)
    assert "#/components/schemas/HTTPValidationError" in openapi_refs(document)
