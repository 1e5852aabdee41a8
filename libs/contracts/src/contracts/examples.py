"""Request examples for the OpenAPI documents, by the name of the body's model.

Each entry is an OpenAPI Example Object map (what FastAPI's ``openapi_examples``
produces): Swagger UI offers them in a drop-down and "Try it out" starts from
the chosen one. The users and orders services and the gateway, which documents
the same operations, attach them through `chassis.openapi.add_request_examples`;
`tests/test_openapi_examples.py` checks that every request body of every service
has examples and that each one passes its model's validation.
"""

from __future__ import annotations

from typing import Any

#: An OpenAPI Example Object map: name -> {"summary": ..., "value": ...}.
Examples = dict[str, dict[str, Any]]

_PASSWORD = "correct horse battery staple"  # noqa: S105 - a documented example, no secret
_REFRESH_TOKEN = "rt_2m0a9Yb3Qk-7V6c1T8xW4pLzR5nJ"  # noqa: S105 - an example shape, no secret

REQUEST_EXAMPLES: dict[str, Examples] = {
    "UserCreate": {
        "minimal": {
            "summary": "Email and password",
            "value": {"email": "ada@example.com", "password": _PASSWORD},
        },
        "with_display_name": {
            "summary": "With a display name",
            "value": {"email": "ada@example.com", "password": _PASSWORD, "display_name": "Ada"},
        },
    },
    "UserUpdate": {
        "rename": {"summary": "Change the display name", "value": {"display_name": "Ada L."}},
        "clear_name": {"summary": "Clear the display name", "value": {"display_name": None}},
        "new_password": {
            "summary": "Change the password (the current one is required)",
            "value": {"password": "a new and longer passphrase", "current_password": _PASSWORD},
        },
    },
    "LoginRequest": {
        "json": {
            "summary": "Email and password",
            "value": {"email": "ada@example.com", "password": _PASSWORD},
        },
    },
    "LoginForm": {
        "password_grant": {
            "summary": "OAuth2 password grant (what Swagger UI's Authorize sends)",
            "value": {
                "username": "ada@example.com",
                "password": _PASSWORD,
                "grant_type": "password",
            },
        },
    },
    "RefreshRequest": {
        "refresh": {
            "summary": "The refresh token from the login answer",
            "value": {"refresh_token": _REFRESH_TOKEN},
        },
    },
    "LogoutRequest": {
        "logout": {
            "summary": "Revoke this login's refresh token family",
            "value": {"refresh_token": _REFRESH_TOKEN},
        },
    },
    "ClientCredentialsRequest": {
        "all_scopes": {
            "summary": "Every scope the client has",
            "value": {
                "grant_type": "client_credentials",
                "client_id": "worker",
                "client_secret": "the-client-secret",
            },
        },
        "one_scope": {
            "summary": "A subset of its scopes",
            "value": {
                "grant_type": "client_credentials",
                "client_id": "worker",
                "client_secret": "the-client-secret",
                "scope": "orders:fulfil",
            },
        },
    },
    "OrderCreate": {
        "one_line": {
            "summary": "One line",
            "value": {
                "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 1999}],
                "currency": "EUR",
            },
        },
        "several_lines": {
            "summary": "Several lines (amounts are integer minor units)",
            "value": {
                "items": [
                    {"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1999},
                    {"sku": "SKU-42", "quantity": 1, "unit_price_minor": 500},
                ],
                "currency": "USD",
            },
        },
    },
    "FulfilmentReport": {
        "paid": {"summary": "The payment went through", "value": {"payment": "paid"}},
        "declined": {"summary": "The payment was declined", "value": {"payment": "declined"}},
    },
    "StatusChange": {
        "confirm": {"summary": "Confirm a pending order", "value": {"status": "confirmed"}},
        "fail": {
            "summary": "Fail an order, saying why",
            "value": {"status": "failed", "reason": "stock unavailable"},
        },
    },
}
