"""The app builder: every step at once, lifecycle order, and what a client sees."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.auth import generate_rsa_key, render_jwks, sign_token
from chassis.builder import AppBuilder
from chassis.logging import configure_logging
from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    CacheSettings,
    DatabaseSettings,
    RateLimitSettings,
    RedisSettings,
    ServerSettings,
    UpstreamSettings,
)
from chassis.testing.processes import (
    free_port,
    service_process,
    start_process,
    stop_process_group,
    uvicorn_command,
)
from chassis.testing.servers import serve_in_thread

sys.path.insert(0, str(Path(__file__).parent / "apps"))
from example_app import Base, Note, build_example_app

ISSUER = "https://issuer.test"
AUDIENCE = "example"
KEY = generate_rsa_key(kid="k1")


def issuer_app() -> FastAPI:
    """The token issuer's JWKS and an echo endpoint, served on a real socket."""
    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return render_jwks([KEY])

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {
            "x-request-id": request.headers.get("x-request-id"),
            "traceparent": request.headers.get("traceparent"),
        }

    return app


@pytest.fixture(scope="module")
def issuer_url() -> Iterator[str]:
    with serve_in_thread(issuer_app()) as url:
        yield url


def token(*scopes: str, subject: str = "alice") -> str:
    return sign_token(KEY, subject=subject, issuer=ISSUER, audience=AUDIENCE, scopes=scopes)


def example_settings(postgres_url: str, redis_url: str, issuer_url: str) -> BaseServiceSettings:
    return BaseServiceSettings(
        service_name="example",
        database=DatabaseSettings(url=postgres_url),
        redis=RedisSettings(url=redis_url),
        cache=CacheSettings(backend="redis"),
        rate_limit=RateLimitSettings(backend="redis", requests=1000),
        server=ServerSettings(request_timeout_seconds=0.5),
        auth=AuthSettings(
            enabled=True,
            jwks_url=issuer_url + "/.well-known/jwks.json",
            issuer=ISSUER,
            audience=AUDIENCE,
        ),
        upstreams={"echo": UpstreamSettings(base_url=issuer_url)},
    )


@pytest.fixture
async def tables(postgres_url: str) -> AsyncIterator[None]:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    structlog.reset_defaults()
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "chassis"]


def parse(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def test_every_step_at_once(
    postgres_url: str,
    redis_url: str,
    issuer_url: str,
    tables: None,
    span_exporter: Any,
    make_client: Any,
    log_lines: io.StringIO,
) -> None:
    settings = example_settings(postgres_url, redis_url, issuer_url)
    app = build_example_app(settings, exporter=span_exporter)
    # The builder configured logging; send it to a buffer as JSON to read it back.
    configure_logging(settings, json_output=True, stream=log_lines)
    write = {"Authorization": f"Bearer {token('notes:write')}"}

    async with make_client(app) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"database", "redis", "cache", "jwks", "upstreams"}

        created = await client.post("/api/notes", json={"text": "hi"}, headers=write)
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == "alice"
        listed = await client.get("/api/notes", headers={"Authorization": f"Bearer {token()}"})
        assert [note["text"] for note in listed.json()] == ["hi"]

        assert (await client.get("/api/notes")).status_code == 401
        forbidden = await client.post(
            "/api/notes", json={"text": "x"}, headers={"Authorization": f"Bearer {token()}"}
        )
        assert forbidden.status_code == 403

        cached = await client.get("/api/cached/k")
        assert cached.json() == {"value": "computed:k"}

        upstream = await client.get("/api/upstream", headers={"X-Request-ID": "req-upstream-1"})
        assert upstream.json()["status"] == 200
        assert upstream.json()["seen"]["x-request-id"] == "req-upstream-1"
        assert upstream.json()["seen"]["traceparent"]

        slow = await client.get("/api/slow")
        assert slow.status_code == 504
        assert slow.headers["x-request-id"] == slow.json()["request_id"]

        scrape = await client.get("/metrics")
        assert 'route="/api/notes"' in scrape.text
        assert "circuit_breaker_state" in scrape.text

    # The committed row is really in Postgres.
    engine = create_async_engine(postgres_url)
    async with engine.connect() as conn:
        assert (await conn.execute(select(Note.text))).scalars().all() == ["hi"]
    await engine.dispose()

    spans = span_exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert "POST /api/notes" in names
    assert "GET /api/upstream" in names
    # SQL and upstream calls are children of the request that made them.
    (create,) = [
        span
        for span in spans
        if span.name == "POST /api/notes" and span.attributes["http.response.status_code"] == 201
    ]
    children = [s for s in spans if s.parent and s.parent.span_id == create.context.span_id]
    assert any(s.attributes.get("db.system") == "postgresql" for s in children)
    (upstream_span,) = [span for span in spans if span.name == "GET /api/upstream"]
    assert any(
        s.parent and s.parent.span_id == upstream_span.context.span_id and s.name == "GET"
        for s in spans
    )

    access = [line for line in parse(log_lines) if line.get("logger") == "chassis.access"]
    assert any(line["route"] == "/api/notes" and line["status"] == 201 for line in access)
    closed = [line["resource"] for line in parse(log_lines) if line["event"] == "resource_closed"]
    assert closed == [
        "metrics",
        "http_clients",
        "token_verifier",
        "cache",
        "redis",
        "database",
        "tracing",
    ]


async def test_a_500_hides_the_traceback_and_matches_the_log_line(
    postgres_url: str,
    redis_url: str,
    issuer_url: str,
    make_client: Any,
    log_lines: io.StringIO,
) -> None:
    settings = example_settings(postgres_url, redis_url, issuer_url)
    app = build_example_app(settings)
    configure_logging(settings, json_output=True, stream=log_lines)
    async with make_client(app) as client:
        response = await client.get("/api/boom")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    for leak in ("Traceback", "RuntimeError", "secret-internal-detail", "/srv/app"):
        assert leak not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    (logged,) = [line for line in parse(log_lines) if line["event"] == "unhandled_error"]
    assert logged["request_id"] == body["request_id"]
    assert "secret-internal-detail" in json.dumps(logged["exception"])


def test_building_does_no_io(tmp_path: Path) -> None:
    settings = BaseServiceSettings(
        database=DatabaseSettings(url="postgresql+asyncpg://nobody@127.0.0.1:1/none"),
        redis=RedisSettings(url="redis://127.0.0.1:1/0"),
    )
    app = AppBuilder(settings).with_database().with_redis().build()
    assert isinstance(app, FastAPI)
    assert not (tmp_path / ".data").exists()


async def test_docs_are_off_in_production_unless_enabled(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = BaseServiceSettings(environment="production")
    async with make_client(AppBuilder(production).build()) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
    enabled = BaseServiceSettings(environment="production", docs_enabled=True)
    async with make_client(AppBuilder(enabled).build()) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "'unsafe-inline'" in docs.headers["content-security-policy"]
        api = await client.get("/health/live")
        assert "'unsafe-inline'" not in api.headers["content-security-policy"]


def test_a_step_twice_is_refused() -> None:
    builder = AppBuilder(BaseServiceSettings()).with_metrics()
    with pytest.raises(ValueError, match="metrics"):
        builder.with_metrics()


def test_redis_rate_limit_without_the_redis_step_is_refused() -> None:
    settings = BaseServiceSettings(rate_limit=RateLimitSettings(backend="redis"))
    with pytest.raises(SystemExit, match="with_redis"):
        AppBuilder(settings).build()


def test_memory_rate_limit_with_web_concurrency_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
        AppBuilder(BaseServiceSettings()).build()


SHUTDOWN_APP = """
from chassis.builder import AppBuilder
from chassis.settings import BaseServiceSettings, ServerSettings

def create_app():
    registry_checks = AppBuilder(BaseServiceSettings(server=ServerSettings(drain_seconds=3)))
    registry_checks.readiness.add("always", lambda app: None)
    return registry_checks.build()
"""


@pytest.mark.slow
def test_readiness_is_503_during_shutdown_while_liveness_stays_200(tmp_path: Path) -> None:
    (tmp_path / "shutdown_app.py").write_text(SHUTDOWN_APP)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = uvicorn_command("shutdown_app:create_app", port, app_dir=tmp_path)
    with service_process(command, ready_url=base + "/health/ready") as process:
        os.kill(process.pid, signal.SIGTERM)
        ready = httpx.get(base + "/health/ready")
        live = httpx.get(base + "/health/live")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "shutting down"
        assert live.status_code == 200
        # After the drain the server stops by itself.
        process.wait(timeout=15)


SIGNAL_MID_LOG_APP = """
import os
import signal
import sys

import structlog
from fastapi import APIRouter

from chassis.builder import AppBuilder
from chassis.logging import configure_logging
from chassis.settings import BaseServiceSettings


class SignalMidWrite:
    # stdout that sends its own process SIGTERM from inside a write: the handler then
    # runs while the log writer holds the stream's lock, as when a signal lands mid-line.
    armed = False

    def write(self, text):
        sys.stdout.write(text)
        if self.armed and "arm_signal" in text:
            self.armed = False
            os.kill(os.getpid(), signal.SIGTERM)
        return len(text)

    def flush(self):
        sys.stdout.flush()


STREAM = SignalMidWrite()
router = APIRouter()


@router.get("/signal-mid-log")
async def signal_mid_log():
    STREAM.armed = True
    structlog.get_logger("test").info("arm_signal")
    return {"logged": True}


def create_app():
    settings = BaseServiceSettings(service_name="signalled", environment="production")
    app = AppBuilder(settings).with_routes(router).build()
    configure_logging(settings, stream=STREAM)
    return app
"""


@pytest.mark.slow
def test_a_sigterm_that_lands_inside_a_log_write_still_stops_the_server(tmp_path: Path) -> None:
    """The handler ran inside the access-log write and logged: a deadlock, never an exit."""
    (tmp_path / "signal_app.py").write_text(SIGNAL_MID_LOG_APP)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = uvicorn_command("signal_app:create_app", port, app_dir=tmp_path)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as output:
        process = start_process(command, ready_url=base + "/health/live", output=output)
        try:
            response = httpx.get(base + "/signal-mid-log", timeout=10)
            assert response.json() == {"logged": True}
            process.wait(timeout=15)
        finally:
            stop_process_group(process, timeout=5)
    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines()]
    # The readiness line is still written, by the loop once the write has finished.
    assert events.index("arm_signal") < events.index("readiness_shutdown_begun")
    assert events[-1] != "arm_signal"
