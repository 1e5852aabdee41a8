"""Every request body of every service's OpenAPI document has examples that its model accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import contracts.auth
import contracts.orders
import contracts.users
import gateway.main
import orders.internal.schemas
import orders.main
import users.main

MODEL_MODULES = (contracts.auth, contracts.orders, contracts.users, orders.internal.schemas)
FACTORIES: dict[str, Callable[[], FastAPI]] = {
    "users": users.main.create_app,
    "orders": orders.main.create_app,
    "gateway": gateway.main.create_app,
}


def _model(name: str) -> type[BaseModel]:
    for module in MODEL_MODULES:
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise AssertionError(f"no model named {name!r} in {[m.__name__ for m in MODEL_MODULES]}")


def _bodies(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, media in content.items():
                found.append((f"{method.upper()} {path} {media_type}", media_type, media))
    return found


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_every_request_body_has_examples_its_model_accepts(service: str) -> None:
    document = FACTORIES[service]().openapi()
    bodies = _bodies(document)
    assert len(bodies) >= 5, f"{service}: only {len(bodies)} request bodies documented"
    for where, _media_type, media in bodies:
        examples = media.get("examples")
        assert examples, f"{service} {where}: no examples"
        schema = media["schema"]
        name = str(schema.get("$ref", "")).rpartition("/")[2] or schema["title"]
        model = _model(name)
        for key, example in examples.items():
            assert example.get("summary"), f"{service} {where} {key}: no summary"
            model.model_validate(example["value"])  # raises, naming the field, if it drifts


def test_the_gateway_documents_the_same_examples_as_the_services() -> None:
    gateway_doc = gateway.main.create_app().openapi()
    for service in ("users", "orders"):
        service_doc = FACTORIES[service]().openapi()
        for where, _media_type, media in _bodies(service_doc):
            method, path, media_type = where.split(" ")
            public = gateway_doc["paths"].get(path, {}).get(method.lower())
            if public is None:
                continue  # internal routes are never proxied
            assert public["requestBody"]["content"][media_type]["examples"] == media["examples"]
