"""Declared errors: one ``Problem`` component in each built document, and bodies that fit it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from chassis.builder import AppBuilder
from chassis.errors import Conflict, NotFound
from chassis.openapi import (
    PROBLEM_REF,
    Problem,
    auth_problems,
    problem_responses,
    problem_statuses,
)
from chassis.settings import BaseServiceSettings
from chassis.testing import assert_valid_openapi, openapi_refs

router = APIRouter(prefix="/notes", tags=["notes"])


@router.get(
    "/{note_id}",
    responses=problem_responses({**auth_problems(), 404: "No such note."}),
)
async def get_note(note_id: str) -> dict[str, str]:
    raise NotFound(f"No note {note_id}.")


@router.post("", responses=problem_statuses(409, 422))
async def create_note(body: dict[str, str]) -> dict[str, str]:
    raise Conflict("Taken.", extra={"existing": body.get("name", "")})


def build() -> FastAPI:
    return AppBuilder(BaseServiceSettings()).without_middleware().with_routes(router).build()


async def fetch(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


async def test_declared_errors_reference_the_problem_component_of_the_document() -> None:
    document = (await fetch(build(), "GET", "/openapi.json")).json()

    assert_valid_openapi(document)
    assert PROBLEM_REF in openapi_refs(document)
    responses = document["paths"]["/notes/{note_id}"]["get"]["responses"]
    assert {
        status: answer["description"] for status, answer in responses.items() if status != "422"
    } == {
        "200": "Successful Response",
        "401": "Missing or invalid access token.",
        "403": "The token lacks the scope.",
        "404": "No such note.",
    }
    assert responses["404"]["content"] == {
        "application/problem+json": {"schema": {"$ref": PROBLEM_REF}}
    }
    problem = document["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    assert problem["additionalProperties"] is True
    assert {"request_id", "trace_id", "errors"} <= set(problem["properties"])


async def test_statuses_alone_are_described_by_their_reason_phrase() -> None:
    document = (await fetch(build(), "GET", "/openapi.json")).json()

    responses = document["paths"]["/notes"]["post"]["responses"]
    assert responses["409"]["description"] == "Conflict"
    assert responses["422"]["description"] == HTTPStatus(422).phrase


async def test_the_bodies_the_chassis_renders_fit_the_documented_problem() -> None:
    app = build()

    missing = await fetch(app, "GET", "/notes/n1")
    taken = await fetch(app, "POST", "/notes", json={"name": "a"})
    malformed = await fetch(app, "POST", "/notes", json=[1])

    assert Problem.model_validate(missing.json()).status == 404
    assert Problem.model_validate(taken.json()).model_extra == {"existing": "a"}
    assert Problem.model_validate(malformed.json()).errors


def test_the_document_is_built_once() -> None:
    app = build()

    assert app.openapi() is app.openapi()
