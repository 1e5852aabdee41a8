"""The rate-limit middleware over the in-process backend, with an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from chassis.middleware.ratelimit import MemorySlidingWindow
from chassis.settings import RateLimitRule
from chassis.types import ASGIApp, Message, Scope

LimitedApp = Callable[..., ASGIApp]


def ratelimit_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: response.headers[name]
        for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
        if name in response.headers
    }


async def test_requests_over_the_limit_get_429_with_retry_after_and_ratelimit_headers(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=3, default_window_seconds=60)
    async with make_client(app) as client:
        answers = [await client.get("/items") for _ in range(3)]
        refused = await client.get("/items")

    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [ratelimit_headers(r) for r in answers] == [
        {"ratelimit-limit": "3", "ratelimit-remaining": "2", "ratelimit-reset": "60"},
        {"ratelimit-limit": "3", "ratelimit-remaining": "1", "ratelimit-reset": "60"},
        {"ratelimit-limit": "3", "ratelimit-remaining": "0", "ratelimit-reset": "60"},
    ]
    assert answers[0].headers["ratelimit-policy"] == "3;w=60"
    assert answers[0].text == "GET /items"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert ratelimit_headers(refused) == {
        "ratelimit-limit": "3",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "60",
    }
    assert refused.headers["ratelimit-policy"] == "3;w=60"


async def test_refusal_body_is_problem_json(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1)
    async with make_client(app) as client:
        await client.get("/items")
        refused = await client.get("/items")

    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert body["type"] == "urn:problem:too-many-requests"
    assert "retry in 60 s" in body["detail"]


async def test_window_slides_and_admits_again_once_the_oldest_hit_ages_out(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=3, default_window_seconds=60)
    async with make_client(app) as client:
        for _ in range(3):
            assert (await client.get("/items")).status_code == 200
            clock.advance(10)
        refused = await client.get("/items")  # t=30: the first hit (t=0) is 30 s from leaving
        clock.advance(30)  # t=60: the first hit has aged out, the others have not
        readmitted = await client.get("/items")
        refused_again = await client.get("/items")  # the t=10 hit leaves at t=70

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert readmitted.status_code == 200
    assert readmitted.headers["ratelimit-remaining"] == "0"
    assert refused_again.status_code == 429
    assert refused_again.headers["retry-after"] == "10"


async def test_retry_after_is_at_least_one_second(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1, default_window_seconds=1)
    async with make_client(app) as client:
        await client.get("/items")
        clock.advance(0.9)
        refused = await client.get("/items")

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"


async def test_each_client_ip_has_its_own_budget(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1)
    async with (
        make_client(app, client=("192.0.2.1", 1000)) as first,
        make_client(app, client=("192.0.2.2", 1000)) as second,
    ):
        assert (await first.get("/items")).status_code == 200
        assert (await first.get("/items")).status_code == 429
        assert (await second.get("/items")).status_code == 200


async def test_a_known_principal_is_limited_by_subject_wherever_it_comes_from(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=2)
    async with (
        make_client(app, client=("192.0.2.1", 1000)) as office,
        make_client(app, client=("198.51.100.9", 1000)) as phone,
    ):
        alice = {"X-Subject": "alice"}
        assert (await office.get("/items", headers=alice)).status_code == 200
        assert (await phone.get("/items", headers=alice)).status_code == 200
        assert (await phone.get("/items", headers=alice)).status_code == 429
        # Another principal behind the same IP is not affected, nor is the anonymous IP.
        assert (await office.get("/items", headers={"X-Subject": "bob"})).status_code == 200
        assert (await office.get("/items")).status_code == 200


async def test_a_rule_applies_only_to_its_path_and_methods_and_has_its_own_bucket(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    login = RateLimitRule(
        path_prefix="/auth/login", methods=["post"], requests=1, window_seconds=300
    )
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=3, rules=[login])
    async with make_client(app) as client:
        first_login = await client.post("/auth/login")
        second_login = await client.post("/auth/login")
        login_page = await client.get("/auth/login")
        items = await client.get("/items")

    assert first_login.status_code == 200
    assert first_login.headers["ratelimit-limit"] == "1"
    assert first_login.headers["ratelimit-policy"] == "1;w=300"
    assert second_login.status_code == 429
    assert second_login.headers["retry-after"] == "300"
    # GET is not covered by the rule and the rule's hits did not spend the default budget.
    assert login_page.status_code == 200
    assert login_page.headers["ratelimit-limit"] == "3"
    assert login_page.headers["ratelimit-remaining"] == "2"
    assert items.headers["ratelimit-remaining"] == "1"


async def test_the_longest_matching_prefix_wins(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    rules = [
        RateLimitRule(path_prefix="/auth", requests=5, window_seconds=60),
        RateLimitRule(path_prefix="/auth/login", requests=2, window_seconds=60),
        RateLimitRule(path_prefix="/auth/login", methods=["GET"], requests=4, window_seconds=60),
    ]
    app = limited_app(MemorySlidingWindow(clock=clock), rules=rules)
    async with make_client(app) as client:
        sso = await client.post("/auth/login/sso")
        login_get = await client.get("/auth/login")
        refresh = await client.post("/auth/refresh")

    assert sso.headers["ratelimit-limit"] == "2"
    assert login_get.headers["ratelimit-limit"] == "4"
    assert refresh.headers["ratelimit-limit"] == "5"


async def test_a_by_ip_rule_keys_by_ip_even_when_a_principal_is_known(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    login = RateLimitRule(path_prefix="/auth/login", requests=2, window_seconds=60, by_ip=True)
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=10, rules=[login])
    async with (
        make_client(app, client=("192.0.2.1", 1000)) as attacker,
        make_client(app, client=("192.0.2.2", 1000)) as bystander,
    ):
        statuses = [
            (await attacker.post("/auth/login", headers={"X-Subject": name})).status_code
            for name in ("alice", "bob", "carol")
        ]
        other_ip = await bystander.post("/auth/login", headers={"X-Subject": "alice"})

    assert statuses == [200, 200, 429]
    assert other_ip.status_code == 200


async def test_exempt_paths_are_never_limited(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(
        MemorySlidingWindow(clock=clock), default_limit=1, exempt_paths=["/health/", "/metrics"]
    )
    async with make_client(app) as client:
        answers = [await client.get("/health/live") for _ in range(5)]
        limited = await client.get("/items")

    assert [r.status_code for r in answers] == [200] * 5
    assert all("ratelimit-limit" not in r.headers for r in answers)
    assert limited.headers["ratelimit-remaining"] == "0"


async def test_cors_preflight_passes_untouched_but_plain_options_is_counted(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1)
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with make_client(app) as client:
        preflights = [await client.options("/items", headers=preflight) for _ in range(3)]
        plain = [await client.options("/items") for _ in range(2)]

    assert [r.status_code for r in preflights] == [200, 200, 200]
    assert all("ratelimit-limit" not in r.headers for r in preflights)
    assert [r.status_code for r in plain] == [200, 429]


async def test_websockets_pass_untouched(limited_app: LimitedApp, clock: Any) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1)

    async def connect() -> list[Message]:
        scope = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "client": ("192.0.2.1", 1000),
            "server": ("testserver", 80),
            "scheme": "ws",
            "subprotocols": [],
            "asgi": {"version": "3.0"},
        }
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect"}]
        sent: list[Message] = []

        async def receive() -> Message:
            return incoming.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    for _ in range(3):
        sent = await connect()
        assert [m["type"] for m in sent] == [
            "websocket.accept",
            "websocket.send",
            "websocket.close",
        ]
        assert sent[1]["text"] == "hello"


async def test_key_func_decides_who_the_client_is(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    def by_tenant(scope: Scope) -> str:
        return dict(scope["headers"]).get(b"x-tenant", b"none").decode()

    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1, key_func=by_tenant)
    async with make_client(app) as client:
        first = await client.get("/items", headers={"X-Tenant": "a", "X-Subject": "alice"})
        same_tenant = await client.get("/items", headers={"X-Tenant": "a", "X-Subject": "bob"})
        other_tenant = await client.get("/items", headers={"X-Tenant": "b"})

    assert [first.status_code, same_tenant.status_code, other_tenant.status_code] == [
        200,
        429,
        200,
    ]


async def test_a_request_without_client_address_is_still_limited(
    limited_app: LimitedApp, clock: Any
) -> None:
    app = limited_app(MemorySlidingWindow(clock=clock), default_limit=1)
    transport = httpx.ASGITransport(app=app, client=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        statuses = [(await client.get("/items")).status_code for _ in range(2)]

    assert statuses == [200, 429]


async def test_rejections_are_counted_per_rule(
    limited_app: LimitedApp, make_client: Any, clock: Any
) -> None:
    service = "ratelimit-metrics-test"
    login = RateLimitRule(path_prefix="/auth/login", requests=1, window_seconds=60)
    app = limited_app(
        MemorySlidingWindow(clock=clock), default_limit=1, rules=[login], service=service
    )
    async with make_client(app) as client:
        for _ in range(3):
            await client.post("/auth/login")
        for _ in range(2):
            await client.get("/items")

    def rejections(rule: str) -> float | None:
        return REGISTRY.get_sample_value(
            "rate_limit_rejections_total", {"service": service, "rule": rule}
        )

    assert rejections("/auth/login") == 2
    assert rejections("default") == 1


def test_a_nonsensical_default_limit_is_refused_at_build_time(clock: Any) -> None:
    from chassis.middleware.ratelimit import RateLimitMiddleware

    with pytest.raises(ValueError, match="default_limit"):
        RateLimitMiddleware(
            inner_app_stub,
            backend=MemorySlidingWindow(clock=clock),
            default_limit=0,
            default_window_seconds=60,
        )


async def inner_app_stub(scope: Scope, receive: Any, send: Any) -> None:
    raise AssertionError("never called")
