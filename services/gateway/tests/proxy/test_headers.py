"""Header rules of the proxy, case by case (the end-to-end tests cover the common path)."""

from __future__ import annotations

from gateway.proxy.headers import (
    client_response_headers,
    connection_tokens,
    upstream_request_headers,
)

ORIGIN = b"http://10.0.0.5:8002"


def test_headers_named_in_connection_are_hop_by_hop() -> None:
    headers = [(b"connection", b"close, X-One"), (b"Connection", b"x-two ,")]

    assert connection_tokens(headers) == {b"close", b"x-one", b"x-two"}


def test_a_request_without_client_or_host_still_gets_the_scheme() -> None:
    scope = {"headers": [(b"accept", b"*/*")], "scheme": "https"}

    assert upstream_request_headers(scope) == [
        (b"accept", b"*/*"),
        (b"x-forwarded-proto", b"https"),
    ]


def location(value: bytes) -> bytes:
    headers = client_response_headers(
        [(b"location", value)], upstream_origin=ORIGIN, strip_rate_limit=False
    )
    return headers[0][1]


def test_locations_into_the_upstream_become_relative_and_others_stay() -> None:
    assert location(ORIGIN + b"/api/v1/orders/1") == b"/api/v1/orders/1"
    assert location(ORIGIN) == b"/"
    assert location(ORIGIN + b"?page=2") == b"/?page=2"
    assert location(b"HTTP://10.0.0.5:8002/x") == b"/x"
    assert location(ORIGIN + b"0/elsewhere") == ORIGIN + b"0/elsewhere"
    assert location(b"https://example.com/x") == b"https://example.com/x"
    assert location(b"/already/relative") == b"/already/relative"


def test_upstream_rate_limit_headers_are_kept_when_the_gateway_sends_none() -> None:
    headers = [(b"ratelimit-limit", b"10"), (b"server", b"uvicorn"), (b"x-kept", b"1")]

    kept = client_response_headers(headers, upstream_origin=ORIGIN, strip_rate_limit=False)

    assert kept == [(b"ratelimit-limit", b"10"), (b"x-kept", b"1")]
