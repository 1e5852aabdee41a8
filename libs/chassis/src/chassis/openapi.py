"""How errors appear in the OpenAPI document: the RFC 9457 problem `chassis.errors` renders.

Routes declare the errors they answer with `problem_responses`; every entry
references one ``Problem`` component, which the builder puts in each document
(`document_problems`), so a client generator sees one named error type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from chassis.errors import PROBLEM_CONTENT_TYPE

__all__ = [
    "COMPONENT_REF",
    "PROBLEM_REF",
    "Problem",
    "Responses",
    "add_component",
    "auth_problems",
    "document_problems",
    "problem_responses",
    "problem_statuses",
]

Responses = dict[int | str, dict[str, Any]]
"""What FastAPI takes as ``responses=``."""

COMPONENT_REF: Final = "#/components/schemas/{model}"
PROBLEM_REF: Final = COMPONENT_REF.format(model="Problem")


class Problem(BaseModel):
    """An RFC 9457 problem, as every error answer carries it; validation problems add `errors`.

    Some answers carry more members (``from_status`` on an illegal move,
    ``missing_scopes`` on a 403), hence ``extra="allow"``.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URN naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = Field(default=None, description="Echoed in `X-Request-ID`.")
    trace_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: loc, msg and type of each."
    )


def problem_responses(described: Mapping[int, str]) -> Responses:
    """``responses=`` entries for error statuses: ``problem_responses({404: "No such order."})``."""
    return {
        status: {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status, description in described.items()
    }


def auth_problems(forbidden: str = "The token lacks the scope.") -> dict[int, str]:
    """The 401 and 403 of a guarded route: ``problem_responses({**auth_problems(), 404: ...})``.

    `forbidden` says what the guard wants when it is more than a scope.
    """
    return {401: "Missing or invalid access token.", 403: forbidden}


def problem_statuses(*statuses: int) -> Responses:
    """`problem_responses` described by each status' reason phrase (``404: "Not Found"``)."""
    return problem_responses({status: HTTPStatus(status).phrase for status in statuses})


def add_component(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    """Put `model` (and the models it nests) in the components, unless already there."""
    schema = model.model_json_schema(ref_template=COMPONENT_REF)
    for name, nested in schema.pop("$defs", {}).items():
        schemas.setdefault(name, nested)
    schemas.setdefault(model.__name__, schema)


def document_problems(
    app: FastAPI, *, request_examples: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Make ``app.openapi()`` carry the ``Problem`` component the error entries reference.

    With `request_examples` (see `add_request_examples`) the request bodies get them too.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            add_component(document.setdefault("components", {}).setdefault("schemas", {}), Problem)
            if request_examples:
                add_request_examples(document, request_examples)
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def add_request_examples(
    document: dict[str, Any], examples: Mapping[str, Mapping[str, Any]]
) -> None:
    """Give each request body whose schema is a component named in `examples` those examples.

    `examples` maps a model's component name to an OpenAPI Example Object map
    (what ``Body(openapi_examples=...)`` would write), so that one table serves
    every service documenting the model (the gateway repeats the users and
    orders operations). Examples already on a media type are kept.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue  # a path-level "parameters" or "summary" entry
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                name = str(media.get("schema", {}).get("$ref", "")).rpartition("/")[2]
                if name in examples and "examples" not in media:
                    media["examples"] = {key: dict(value) for key, value in examples[name].items()}
