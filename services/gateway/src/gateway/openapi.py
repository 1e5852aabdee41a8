"""OpenAPI helpers: the problem+json error shape every route declares, and the gateway document.

The gateway serves the proxied operations through catch-all routes that never
parse a body (they stream it); those operations are described by
documentation-only path operations (`gateway.proxy.contract`) that are merged
into the document here, so /openapi.json describes the whole public API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from chassis.errors import PROBLEM_CONTENT_TYPE


class Problem(BaseModel):
    """RFC 9457 problem details, as every error answer carries them."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URN naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = Field(default=None, description="Echoed in `X-Request-ID`.")
    trace_id: str | None = None


COMPONENT_REF = "#/components/schemas/{model}"
PROBLEM_REF = COMPONENT_REF.format(model="Problem")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting `statuses` as problem+json answers."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status in statuses
    }


def openapi_with(
    app: FastAPI,
    documented: Sequence[APIRoute],
    *,
    extra_schemas: Sequence[type[BaseModel]] = (),
) -> Callable[[], dict[str, Any]]:
    """An ``app.openapi`` that documents the app's own routes plus `documented` ones.

    `extra_schemas` are models that operations reference by hand (``openapi_extra``)
    and that FastAPI therefore does not put in the components itself.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                terms_of_service=app.terms_of_service,
                contact=app.contact,
                license_info=app.license_info,
                routes=[*app.routes, *documented],
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            schemas = app.openapi_schema.setdefault("components", {}).setdefault("schemas", {})
            models: tuple[type[BaseModel], ...] = (Problem, *extra_schemas)
            for model in models:
                add_component(schemas, model)
        return app.openapi_schema

    return openapi


def add_component(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    """Put `model` (and the models it nests) in the components, unless already there."""
    schema = model.model_json_schema(ref_template=COMPONENT_REF)
    for name, nested in schema.pop("$defs", {}).items():
        schemas.setdefault(name, nested)
    schemas.setdefault(model.__name__, schema)
