"""Read login credentials from a JSON body or an OAuth2 password-grant form.

One endpoint serves both: browsers and scripts post JSON, OAuth2 tools (and
the OpenAPI "Authorize" dialog) post ``username``/``password`` as a form.
Validation failures become the usual 422 problem, without the submitted values.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from contracts.auth import LoginForm, LoginRequest
from contracts.examples import REQUEST_EXAMPLES

FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # No "input": it would carry the password into the error list.
    return [
        {"loc": ("body", *error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False)
    ]


async def read_login_credentials(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if content_type in FORM_CONTENT_TYPES:
            async with request.form() as form:
                fields = {name: value for name, value in form.items() if isinstance(value, str)}
            login = LoginForm.model_validate(fields)
            return LoginRequest(email=login.username, password=login.password)
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(_errors(exc)) from None


def login_request_body() -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of the login operation: JSON or form."""
    return {
        "required": True,
        "content": {
            # Inline schemas (no component to key on), so the examples are attached here.
            "application/json": {
                "schema": LoginRequest.model_json_schema(),
                "examples": REQUEST_EXAMPLES["LoginRequest"],
            },
            "application/x-www-form-urlencoded": {
                "schema": LoginForm.model_json_schema(),
                "examples": REQUEST_EXAMPLES["LoginForm"],
            },
        },
    }
