"""Security headers are on every answer of every service, errors included.

(413, 429, 431 and 504 are checked where the limit tests provoke them.)
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.conftest import ALLOWED_ORIGIN, SecurityPlatform
from tests.security.edge import assert_security_headers

pytestmark = [pytest.mark.security, pytest.mark.slow]

#: (method, path, body) and the status each target answers: success and every error kind.
REQUESTS = [
    ("GET", "/health/live", None, 200),
    ("GET", "/api/v1/orders", None, 401),
    ("GET", "/no/such/path", None, 404),
    ("DELETE", "/health/live", None, 405),
    ("POST", "/api/v1/auth/signup", b"{not json", 422),
]


@pytest.mark.parametrize("target", ["gateway", "users", "orders"])
async def test_every_answer_carries_the_security_headers(
    security_platform: SecurityPlatform, target: str
) -> None:
    base_url = security_platform.platform.url(target)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for method, listed_path, body, expected in REQUESTS:
            if target == "orders" and listed_path.startswith("/api/v1/auth"):
                continue
            path = listed_path
            if target == "users" and listed_path == "/api/v1/orders":
                path = "/api/v1/users/me"
            response = await client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == expected, (method, path, response.text)
            assert_security_headers(response.headers, what=f"{target} {method} {path}")


async def test_a_refused_cors_preflight_carries_the_security_headers(
    security_platform: SecurityPlatform,
) -> None:
    async with httpx.AsyncClient(base_url=security_platform.gateway, timeout=10) as client:
        refused = await client.options(
            "/api/v1/orders",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
        )
        allowed = await client.options(
            "/api/v1/orders",
            headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"},
        )

    assert refused.status_code == 400
    assert_security_headers(refused.headers, what="refused preflight")
    assert_security_headers(allowed.headers, what="allowed preflight")
