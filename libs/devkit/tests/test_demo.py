"""The demo's pieces that need no platform."""

from __future__ import annotations

import httpx
import pytest

from devkit import demo
from devkit.processes import free_port


def test_expect_returns_the_body_on_the_expected_status() -> None:
    request = httpx.Request("POST", "http://gw/api/v1/orders")
    response = httpx.Response(201, json={"id": "o1"}, request=request)
    assert demo.expect(response, 201, "first order") == {"id": "o1"}


def test_expect_names_the_step_and_the_answer() -> None:
    request = httpx.Request("POST", "http://gw/api/v1/auth/signup")
    response = httpx.Response(409, text='{"title": "Conflict"}', request=request)
    with pytest.raises(demo.DemoError) as caught:
        demo.expect(response, 201, "sign-up")
    assert str(caught.value) == (
        'sign-up: POST /api/v1/auth/signup answered 409, expected 201: {"title": "Conflict"}'
    )


def test_describe_event() -> None:
    event = {"type": "order.created", "payload": {"order": {"id": "o1", "status": "pending"}}}
    assert demo.describe_event(event) == "order.created  order o1  status pending"


def test_a_gateway_that_does_not_answer_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        demo.main(["--gateway", f"http://127.0.0.1:{free_port()}", "--timeout", "5"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "demo failed: the gateway at http://127.0.0.1:" in err
    assert "`make dev`" in err


def test_options() -> None:
    args = demo.parse_args([])
    assert (args.gateway, args.timeout) == ("http://127.0.0.1:8000", 30.0)
    args = demo.parse_args(["--gateway", "http://gw:9000", "--timeout", "5"])
    assert (args.gateway, args.timeout) == ("http://gw:9000", 5.0)
