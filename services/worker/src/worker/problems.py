"""Read the human part of an RFC 9457 problem answer from another service, for logs and errors."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError


class _Problem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = ""
    detail: str = ""


def problem_detail(response: httpx.Response) -> str:
    """The problem's detail (or title); the status phrase when the body is no problem."""
    try:
        problem = _Problem.model_validate_json(response.content)
    except ValidationError:
        return response.reason_phrase
    return problem.detail or problem.title or response.reason_phrase
