"""The gateway's OpenAPI document: its own routes plus the proxied operations.

The gateway serves the proxied operations through catch-all routes that never
parse a body (they stream it); those operations are described by
documentation-only path operations (`gateway.proxy.contract`) that are merged
into the document here, so /openapi.json describes the whole public API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from chassis.openapi import Problem, add_component, add_request_examples


def openapi_with(
    app: FastAPI,
    documented: Sequence[APIRoute],
    *,
    extra_schemas: Sequence[type[BaseModel]] = (),
    request_examples: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[], dict[str, Any]]:
    """An ``app.openapi`` that documents the app's own routes plus `documented` ones.

    `extra_schemas` are models that operations reference by hand (``openapi_extra``)
    and that FastAPI therefore does not put in the components itself;
    `request_examples` are the bodies' examples (`chassis.openapi.add_request_examples`).
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
            if request_examples:
                add_request_examples(app.openapi_schema, request_examples)
        return app.openapi_schema

    return openapi
