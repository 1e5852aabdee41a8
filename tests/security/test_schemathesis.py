"""Property-based fuzzing of each service's OpenAPI document, and the gateway's, over real HTTP.

Schemathesis generates requests from each running process's own
``/openapi.json`` and sends them authenticated: a real user's access token
everywhere, a real service token on the orders ``/internal`` routes. Every
response must be no 5xx and conform to the document: status code declared,
content type declared, headers and body matching their schemas. The example
count per operation is bounded (``SECURITY_FUZZ_EXAMPLES``, default 20) so the
run fits in CI; a failure prints the request that reproduces it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from tests.security.accounts import sign_up_and_log_in_sync
from tests.security.conftest import SecurityPlatform

pytestmark = [pytest.mark.security, pytest.mark.slow]

EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "20"))
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def credentials(security_platform: SecurityPlatform) -> dict[str, str]:
    """A real user's and a real service client's access tokens."""
    account = sign_up_and_log_in_sync(security_platform.gateway, "fuzz")
    response = httpx.post(
        security_platform.gateway + "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "worker",
            "client_secret": security_platform.client_secret,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"user": account["access_token"], "service": response.json()["access_token"]}


def headers_for(case: Any, credentials: dict[str, str]) -> dict[str, str]:
    token = credentials["service" if case.path.startswith("/internal/") else "user"]
    return {"Authorization": f"Bearer {token}"}


def fuzz(schema: Any, credentials: dict[str, str]) -> None:
    """Fuzz every operation of `schema`; fail with every failing operation, not just the first.

    The operations are driven here rather than by ``schemathesis.pytest.from_fixture``,
    whose per-operation subtests rely on a pytest internal that pytest 9 removed.
    """
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @FUZZ_SETTINGS
        def call(case: Any) -> None:
            case.call_and_validate(
                headers=headers_for(case, credentials), checks=CHECKS, timeout=10
            )

        try:
            call()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert operations > 0
    assert not failures, "\n\n".join(failures)


def test_users_api_conforms_to_its_document(
    security_platform: SecurityPlatform, credentials: dict[str, str]
) -> None:
    fuzz(schemathesis.openapi.from_url(security_platform.users + "/openapi.json"), credentials)


def test_orders_api_conforms_to_its_document(
    security_platform: SecurityPlatform, credentials: dict[str, str]
) -> None:
    fuzz(schemathesis.openapi.from_url(security_platform.orders + "/openapi.json"), credentials)


def test_gateway_api_conforms_to_its_document(
    security_platform: SecurityPlatform, credentials: dict[str, str]
) -> None:
    # The SSE stream never ends by design (its own tests cover it); everything else is fuzzed.
    schema = schemathesis.openapi.from_url(security_platform.gateway + "/openapi.json")
    fuzz(schema.exclude(path="/api/v1/events"), credentials)
