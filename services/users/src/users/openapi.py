"""How errors appear in the OpenAPI document: the RFC 9457 problem the chassis renders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chassis.errors import PROBLEM_CONTENT_TYPE


class Problem(BaseModel):
    """An RFC 9457 problem; validation problems add `errors`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: loc, msg and type of each."
    )


def problem_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses: ``problem_responses({404: "No such user."})``."""
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        for status, description in described.items()
    }
