"""The supervisor's pieces with small stand-in processes (no platform needed)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from devkit import dev
from devkit.commands import ServiceSpec
from devkit.logs import Console
from devkit.processes import ManagedProcess, StartupError, free_port, http_ready, wait_until
from devkit.redis_discovery import RedisChoice, RedisSource

READY_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health/ready" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn', flush=True); time.sleep(60)"
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def make_supervisor(tmp_path: Path, stream: io.StringIO, **kwargs: float) -> dev.Supervisor:
    return dev.Supervisor(
        console=Console(stream),
        stop=dev.StopFlag(),
        env=dict(os.environ),
        root=tmp_path,
        data_dir=tmp_path,
        ready_timeout=kwargs.get("ready_timeout", 15.0),
        grace=kwargs.get("grace", 5.0),
    )


def fake_service(name: str = "fake") -> ServiceSpec:
    port = free_port()
    return ServiceSpec(
        name=name, command=[sys.executable, "-c", READY_SERVER, str(port)], port=port
    )


def test_starts_waits_for_ready_and_stops_on_signal(tmp_path: Path) -> None:
    stream = io.StringIO()
    sup = make_supervisor(tmp_path, stream)
    spec = fake_service()
    try:
        sup.start_service(spec)
        pid = sup.processes[0].pid
        assert http_ready(spec.ready_url)
        sup.stop.handler(signal.SIGTERM, None)
        assert sup.watch() == 0
    finally:
        sup.stop_all()
    assert not alive(pid)
    output = stream.getvalue()
    assert f"started fake: pid {pid} (process group {pid})" in output
    assert "fake    | serving" in output
    assert "SIGTERM: stopping" in output
    assert "all processes stopped" in output


def test_a_child_dying_is_reported_and_exits_non_zero(tmp_path: Path) -> None:
    stream = io.StringIO()
    sup = make_supervisor(tmp_path, stream)
    try:
        sup.start_service(fake_service("first"))
        sup.start_service(fake_service("second"))
        first, second = sup.processes
        os.kill(second.pid, signal.SIGKILL)
        assert sup.watch() == 1
    finally:
        sup.stop_all()
    assert not alive(first.pid)
    assert "second exited unexpectedly with code -9; stopping the rest" in stream.getvalue()


def test_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    stream = io.StringIO()
    sup = make_supervisor(tmp_path, stream, grace=0.5)
    process = sup.start("stubborn", [sys.executable, "-c", IGNORES_SIGTERM], {})
    wait_until(
        lambda: "stubborn" in stream.getvalue().split("started", 1)[1].split("\n", 1)[1],
        process=process,
        timeout=10,
        stopping=sup.stop,
    )
    started = time.monotonic()
    sup.stop_all()
    assert not alive(process.pid)
    assert time.monotonic() - started < 10


def test_exit_before_ready_is_a_startup_error(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path, io.StringIO())
    spec = ServiceSpec(name="broken", command=[sys.executable, "-c", "raise SystemExit(3)"], port=1)
    with pytest.raises(StartupError, match="broken exited with code 3 before it was ready"):
        sup.start_service(spec)
    sup.stop_all()


def test_not_ready_in_time_is_a_startup_error(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path, io.StringIO(), ready_timeout=0.5)
    spec = ServiceSpec(
        name="slow", command=[sys.executable, "-c", "import time; time.sleep(30)"], port=free_port()
    )
    try:
        with pytest.raises(StartupError, match=r"slow was not ready within 0\.5 s"):
            sup.start_service(spec)
    finally:
        sup.stop_all()


def test_a_signal_interrupts_the_wait(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path, io.StringIO())
    sup.stop.handler(signal.SIGINT, None)
    spec = ServiceSpec(
        name="slow", command=[sys.executable, "-c", "import time; time.sleep(30)"], port=free_port()
    )
    try:
        with pytest.raises(StartupError, match="interrupted while waiting for slow"):
            sup.start_service(spec)
    finally:
        sup.stop_all()
    assert sup.stop.signal_name == "SIGINT"


def test_a_failing_migration_stops_start_up_clearly(tmp_path: Path) -> None:
    (tmp_path / "services" / "users").mkdir(parents=True)
    (tmp_path / "services" / "users" / "alembic.ini").write_text("[alembic]\n")
    stream = io.StringIO()
    sup = make_supervisor(tmp_path, stream)
    with pytest.raises(StartupError, match=r"migrations of users failed \(exit \d+\)"):
        sup.migrate("users")
    assert "migrating users: alembic -c services/users/alembic.ini upgrade head" in (
        stream.getvalue()
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_starts_and_stops_its_own_redis(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path, io.StringIO())
    try:
        url = sup.start_redis(shutil.which("redis-server") or "")
        (process,) = sup.processes
        assert url.startswith("redis://127.0.0.1:")
        assert url.endswith("/0")
    finally:
        sup.stop_all()
    assert not alive(process.pid)


def test_run_refuses_ports_in_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "port_in_use", lambda host, port: port == 8000)
    args = dev.parse_args(["--data-dir", "d"], {})
    assert dev.run(args, Console(), dev.StopFlag()) == 1
    assert "ports already in use: gateway (8000)" in capsys.readouterr().out


def test_run_without_redis_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(dev, "discover_redis", lambda env: RedisChoice(RedisSource.MISSING))
    assert dev.run(dev.parse_args([], {}), Console(), dev.StopFlag()) == 1
    assert "install redis-server" in capsys.readouterr().out


@pytest.mark.parametrize(
    "choice",
    [
        RedisChoice(RedisSource.ENV, url="redis://127.0.0.1:6379/13"),
        RedisChoice(RedisSource.LOCAL, url="redis://127.0.0.1:6379/0"),
    ],
)
def test_run_reports_a_failed_start_up(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    choice: RedisChoice,
) -> None:
    def failing_migrate(self: dev.Supervisor, service: str) -> None:
        raise StartupError(f"migrations of {service} failed (exit 1)")

    monkeypatch.setattr(dev, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(dev, "discover_redis", lambda env: choice)
    monkeypatch.setattr(dev.Supervisor, "migrate", failing_migrate)
    args = dev.parse_args(["--data-dir", str(tmp_path / "data")], {})
    assert dev.run(args, Console(), dev.StopFlag()) == 1
    out = capsys.readouterr().out
    assert "start-up failed: migrations of users failed (exit 1)" in out
    assert choice.url is not None
    assert choice.url in out
    assert (tmp_path / "data").is_dir()


def test_options_from_the_command_line_and_the_environment() -> None:
    args = dev.parse_args([], {})
    assert args.data_dir == Path(".data")
    assert args.no_worker is False
    env = {"CHASSIS_DEV_DATA_DIR": "/x", "CHASSIS_DEV_NO_WORKER": "1"}
    args = dev.parse_args([], env)
    assert args.data_dir == Path("/x")
    assert args.no_worker is True
    args = dev.parse_args(["--no-worker", "--data-dir", "y", "--grace", "3"], {})
    assert (args.no_worker, args.data_dir, args.grace) == (True, Path("y"), 3.0)
    assert dev.parse_args([], {}).port_base == 8000
    assert dev.parse_args([], {"CHASSIS_DEV_PORT_BASE": "18810"}).port_base == 18810
    assert dev.parse_args(["--port-base", "18820"], {}).port_base == 18820


def test_run_checks_the_ports_of_the_port_base(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "port_in_use", lambda host, port: port == 18812)
    args = dev.parse_args(["--port-base", "18810"], {})
    assert dev.run(args, Console(), dev.StopFlag()) == 1
    assert "ports already in use: orders (18812)" in capsys.readouterr().out


def test_the_banner_names_the_console_and_says_when_it_is_not_built(tmp_path: Path) -> None:
    stream = io.StringIO()
    sup = make_supervisor(tmp_path, stream)
    sup.ports = {"gateway": 18810, "users": 18811, "orders": 18812, "worker": 18813}
    dev.banner(sup.console, [], "redis://r", sup)
    assert (
        "console  http://127.0.0.1:18810/console/   (not built: make console" in stream.getvalue()
    )
    assert "try it   uv run chassis-demo --gateway http://127.0.0.1:18810\n" in stream.getvalue()
    (tmp_path / "console" / "dist").mkdir(parents=True)
    (tmp_path / "console" / "dist" / "index.html").write_text("<!doctype html>")
    dev.banner(sup.console, [], "redis://r", sup)
    assert stream.getvalue().rstrip().count("/console/") == 2
    assert "console  http://127.0.0.1:18810/console/\n" in stream.getvalue()


def test_repo_root_is_the_workspace() -> None:
    assert (dev.repo_root() / "services" / "orders" / "alembic.ini").is_file()


def test_managed_process_output_is_prefixed(tmp_path: Path) -> None:
    stream = io.StringIO()
    process = ManagedProcess(
        "echo", [sys.executable, "-c", "print('hello')"], env=os.environ, console=Console(stream)
    )
    process.popen.wait(timeout=10)
    process.stop(grace=1)
    assert "echo    | hello" in stream.getvalue()
    assert process.exited() == 0
