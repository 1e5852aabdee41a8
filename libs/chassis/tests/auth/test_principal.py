"""Principal: scopes, kind and token id read from verified claims."""

from __future__ import annotations

import pytest

from chassis.auth import Principal
from chassis.auth.principal import InvalidClaimsError


def test_scopes_come_from_scope_string_and_scp_list() -> None:
    principal = Principal.from_claims({"sub": "s", "scope": "a b  c", "scp": ["c", "d"]})

    assert principal.scopes == {"a", "b", "c", "d"}
    assert principal.has_scopes("a", "d")
    assert not principal.has_scopes("a", "e")
    assert principal.missing_scopes(["a", "e", "f"]) == {"e", "f"}


def test_scp_as_a_string_is_split() -> None:
    assert Principal.from_claims({"sub": "s", "scp": "x y"}).scopes == {"x", "y"}


def test_token_without_kind_is_a_user_without_scopes() -> None:
    principal = Principal.from_claims({"sub": "s"})

    assert principal.kind == "user"
    assert not principal.is_service
    assert principal.scopes == frozenset()
    assert principal.token_id is None


def test_service_kind_and_token_id_are_read() -> None:
    principal = Principal.from_claims({"sub": "worker", "kind": "service", "jti": "j-1"})

    assert principal.is_service
    assert principal.token_id == "j-1"


def test_claims_are_kept_read_only() -> None:
    claims = {"sub": "s", "tenant": "t-1"}
    principal = Principal.from_claims(claims)
    claims["tenant"] = "changed"

    assert principal.claims["tenant"] == "t-1"
    with pytest.raises(TypeError):
        principal.claims["tenant"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="no-sub"),
        pytest.param({"sub": ""}, id="empty-sub"),
        pytest.param({"sub": 7}, id="sub-not-a-string"),
        pytest.param({"sub": "s", "kind": "robot"}, id="unknown-kind"),
        pytest.param({"sub": "s", "jti": 5}, id="jti-not-a-string"),
        pytest.param({"sub": "s", "scope": 42}, id="scope-a-number"),
        pytest.param({"sub": "s", "scp": [1, 2]}, id="scp-not-strings"),
    ],
)
def test_claims_that_do_not_make_a_principal_are_refused(claims) -> None:
    with pytest.raises(InvalidClaimsError):
        Principal.from_claims(claims)
