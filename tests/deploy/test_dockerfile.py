"""The service image recipe, checked offline: Dockerfile, .dockerignore, entrypoint, digest script.

No Docker engine here, so the Dockerfile is parsed (instructions, line continuations, stages)
and the entrypoint runs in its dry-run mode, which prints the command instead of exec'ing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BASE_LOCK = ROOT / "docker" / "base-image.lock"
REFRESH = ROOT / "scripts" / "refresh-base-digests.sh"
LOADTEST_DOCKERFILE = ROOT / "loadtests" / "Dockerfile"

PORTS = {"users": 8001, "orders": 8002, "gateway": 8000, "worker": 8003}
#: Containers listen on every interface of their own network namespace.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages: comments dropped, continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse(DOCKERFILE.read_text())
BY_NAME = {stage.name: stage for stage in STAGES if stage.name}


def chain(stage: Stage) -> list[Stage]:
    """The stage and those it is built FROM, root first."""
    stages = [stage]
    while stages[0].base in BY_NAME:
        stages.insert(0, BY_NAME[stages[0].base])
    return stages


def image_of(service: str) -> list[Instruction]:
    """Every instruction that makes up the image of `service` (the final FROM ${SERVICE})."""
    final = STAGES[-1]
    assert final.base == "${SERVICE}"
    return [ins for stage in [*chain(BY_NAME[service]), final] for ins in stage.instructions]


def last(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert found, f"no {keyword}"
    return found[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    assert all(isinstance(item, str) for item in value)
    return value


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", ins.args))
    return env


# --- Dockerfile ---------------------------------------------------------------------------


def test_parser_joins_continuations_and_drops_comments() -> None:
    args, stages = parse("ARG A=1\n# c\nFROM x AS b\nRUN a \\\n  # inner\n  b \\\n  c\n")
    assert args == {"A": "1"}
    assert stages[0].name == "b"
    assert [i.args for i in stages[0].instructions] == ["a b c"]


def test_multi_stage_with_a_stage_per_service() -> None:
    assert len(STAGES) >= 2
    assert {"builder", "runtime", *PORTS} <= set(BY_NAME)
    assert STAGES[-1].base == "${SERVICE}", "the image is the stage named by SERVICE"
    assert "SERVICE" in GLOBAL_ARGS


def test_every_stage_starts_from_the_base_argument() -> None:
    for stage in STAGES[:-1]:
        base = "${NODE_BASE}" if stage.name == "console" else "${PYTHON_BASE}"
        assert chain(stage)[0].base == base, stage.name
    assert GLOBAL_ARGS["PYTHON_BASE"].startswith("python:3.11-slim-bookworm")
    assert GLOBAL_ARGS["NODE_BASE"].startswith("node:20-bookworm-slim")


def test_the_console_is_built_from_its_lockfile_and_ships_in_the_gateway_image_only() -> None:
    console = BY_NAME["console"].instructions
    copies = [i.args for i in console if i.keyword == "COPY"]
    assert copies[0] == "console/package.json console/package-lock.json ./"
    runs = [i.args for i in console if i.keyword == "RUN"]
    assert "npm ci" in runs[0], "the lockfile, before the sources"
    assert runs[-1] == "npm run build"
    shipped = "--from=console --chown=10001:10001 /console/dist /app/console/dist"
    for service in PORTS:
        copied = [i.args for i in image_of(service) if i.keyword == "COPY"]
        assert (shipped in copied) == (service == "gateway"), service


def test_base_argument_matches_the_lock_file() -> None:
    lines = [
        line.strip()
        for line in BASE_LOCK.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == [GLOBAL_ARGS["PYTHON_BASE"], GLOBAL_ARGS["NODE_BASE"]]


@pytest.mark.xfail(
    strict=True,
    reason="digest must be set by scripts/refresh-base-digests.sh on a machine that reaches "
    "the registry (none reachable where the Dockerfile was written)",
)
def test_base_image_is_pinned_by_digest() -> None:
    assert DIGEST.search(GLOBAL_ARGS["PYTHON_BASE"])
    assert DIGEST.search(GLOBAL_ARGS["NODE_BASE"])


def test_builder_installs_the_locked_service_without_dev_tools() -> None:
    runs = " && ".join(i.args for i in BY_NAME["builder"].instructions if i.keyword == "RUN")
    assert re.search(r'pip install [^&]*"uv==\$\{UV_VERSION\}"', runs)
    assert re.search(
        r"ARG UV_VERSION=\d+\.\d+\.\d+$",
        "\n".join(f"ARG {i.args}" for i in BY_NAME["builder"].instructions if i.keyword == "ARG"),
        re.M,
    )
    syncs = re.findall(r"uv sync [^&;]*", runs)
    assert len(syncs) == 2, "dependencies first (cached layer), then the sources"
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert '--package "${SERVICE}"' in sync
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]


def test_the_server_is_a_locked_runtime_dependency() -> None:
    # `uv sync --no-dev` installs only runtime dependencies: uvicorn must be one of them.
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    chassis = next(package for package in lock["package"] if package["name"] == "chassis")
    assert "uvicorn" in {dependency["name"] for dependency in chassis["dependencies"]}


def test_lock_files_are_copied_before_the_sources() -> None:
    copies = [i.args for i in BY_NAME["builder"].instructions if i.keyword in {"COPY", "RUN"}]
    first_sync = next(n for n, args in enumerate(copies) if "uv sync" in args)
    before = " ".join(copies[:first_sync])
    assert "uv.lock" in before
    assert "services/ services/" not in before
    assert "libs/ libs/" not in before


def test_no_remote_add_no_env_file_no_secrets() -> None:
    for stage in STAGES:
        for ins in stage.instructions:
            if ins.keyword == "ADD":
                assert "://" not in ins.args, ins.args
            if ins.keyword in {"COPY", "ADD"}:
                assert ".env" not in ins.args.split(), ins.args
            if ins.keyword in {"ENV", "ARG"}:
                assert not re.search(r"(SECRET|PASSWORD|TOKEN|PRIVATE_KEY)\w*=", ins.args)


@pytest.mark.parametrize("service", sorted(PORTS))
def test_service_image(service: str) -> None:
    image = image_of(service)
    assert last(image, "USER").args.split(":")[0] == "10001", "non-root uid 10001"
    assert exec_form(last(image, "ENTRYPOINT").args) == ["/usr/bin/tini", "--"]
    assert exec_form(last(image, "CMD").args) == ["/usr/local/bin/docker-entrypoint"]
    env = env_of(image)
    assert env["PORT"] == str(PORTS[service])
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert last(image, "EXPOSE").args == str(PORTS[service])


def test_runtime_stage_tini_user_and_copy() -> None:
    runtime = BY_NAME["runtime"].instructions
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "apt-get install -y --no-install-recommends tini" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert "--uid 10001" in runs
    assert "--gid 10001" in runs
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert "--from=builder --chown=10001:10001 /app /app" in copies
    assert not any("uv" in i.args.split() for i in runtime if i.keyword == "RUN")


def test_healthcheck_uses_python_not_curl() -> None:
    health = last(BY_NAME["runtime"].instructions, "HEALTHCHECK").args
    command = health[health.index("CMD ") + 4 :]
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "/health/live" in argv[2]
    assert "os.environ['PORT']" in argv[2]
    assert "curl" not in health
    assert "wget" not in health
    compile(argv[2], "<healthcheck>", "exec")


# --- .dockerignore ------------------------------------------------------------------------


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", ".git", ".env", "**/.env", ".data", "reports", "tests", "**/tests"):
        assert needed in patterns, needed
    assert not any(p.startswith("docker") and "compose" not in p for p in patterns), (
        "docker/ holds the entrypoint"
    )


# --- entrypoint ---------------------------------------------------------------------------


def test_entrypoint_is_posix_sh_and_ends_in_exec() -> None:
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
    if shutil.which("dash"):
        subprocess.run(["dash", "-n", str(ENTRYPOINT)], check=True)
    code = [
        line.strip()
        for line in ENTRYPOINT.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert code[-1] == 'exec "$@"'


SHELL_SCRIPTS = [
    ENTRYPOINT,
    *sorted((ROOT / "scripts").glob("*.sh")),
    ROOT / ".ci" / "run",
    *sorted((ROOT / ".ci").glob("*.sh")),
]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_entrypoint_passes_shellcheck_as_posix_sh() -> None:
    # The image runs it with /bin/sh (dash): nothing bash-only may slip in.
    subprocess.run(["shellcheck", "--shell=sh", str(ENTRYPOINT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_every_shell_script_passes_shellcheck(script: Path) -> None:
    # Each in the dialect of its shebang; style notes (severity info) do not fail it.
    subprocess.run(["shellcheck", "--severity=warning", str(script)], check=True)


def dry_run(tmp_path: Path, *args: str, **env: str) -> tuple[dict[str, str], list[str]]:
    shell = shutil.which("dash") or "sh"
    result = subprocess.run(
        [shell, str(ENTRYPOINT), *args],
        env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), "ENTRYPOINT_DRY_RUN": "1", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    printed: dict[str, str] = {}
    argv: list[str] = []
    for line in result.stdout.splitlines():
        kind, _, value = line.partition(":")
        if kind == "env":
            name, _, setting = value.partition("=")
            printed[name] = setting
        else:
            assert kind == "argv", line
            argv.append(value)
    return printed, argv


@pytest.mark.parametrize("service", ["users", "orders", "gateway"])
def test_entrypoint_runs_uvicorn_with_the_defaults(tmp_path: Path, service: str) -> None:
    env, argv = dry_run(tmp_path, SERVICE=service)
    port = str(PORTS[service])
    assert argv == [
        "uvicorn", "--factory", f"{service}.main:create_app",
        "--host", ALL_INTERFACES, "--port", port,
        "--workers", "1",
        "--timeout-graceful-shutdown", "20",
        "--timeout-keep-alive", "5",
        "--no-proxy-headers", "--no-server-header",
    ]  # fmt: skip
    prefix = service.upper() + "_"
    assert env == {
        f"{prefix}DATA_DIR": str(tmp_path / "data"),
        f"{prefix}SERVER__PORT": port,
        f"{prefix}SERVER__GRACEFUL_TIMEOUT_SECONDS": "20",
        f"{prefix}SERVER__WORKERS": "1",
    }
    assert (tmp_path / "data").is_dir()
    assert not (tmp_path / "metrics").exists(), "one worker: no multiprocess metrics"


def test_entrypoint_flags_come_from_the_environment(tmp_path: Path) -> None:
    stale = tmp_path / "metrics" / "stale.db"
    stale.parent.mkdir()
    stale.write_text("from a previous start")
    env, argv = dry_run(
        tmp_path,
        SERVICE="gateway",
        PORT="9000",
        HOST="127.0.0.1",
        WEB_CONCURRENCY="4",
        GRACEFUL_TIMEOUT="25",
        KEEP_ALIVE="75",
        MAX_REQUESTS="10000",
        MAX_REQUESTS_JITTER="1000",
        GATEWAY_SERVER__GRACEFUL_TIMEOUT_SECONDS="30",
    )
    assert argv == [
        "uvicorn", "--factory", "gateway.main:create_app",
        "--host", "127.0.0.1", "--port", "9000",
        "--workers", "4",
        "--timeout-graceful-shutdown", "25",
        "--timeout-keep-alive", "75",
        "--no-proxy-headers", "--no-server-header",
        "--limit-max-requests", "10000", "--limit-max-requests-jitter", "1000",
    ]  # fmt: skip
    assert env["GATEWAY_SERVER__WORKERS"] == "4"
    assert env["GATEWAY_SERVER__PORT"] == "9000"
    assert env["GATEWAY_SERVER__GRACEFUL_TIMEOUT_SECONDS"] == "30", "explicit settings win"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert list((tmp_path / "metrics").iterdir()) == [], "emptied at every start"


def test_entrypoint_empties_the_metrics_directory_in_place(tmp_path: Path) -> None:
    # Under compose the directory is a tmpfs mount point on a read-only root filesystem: it
    # can be emptied but never removed and made again (that ended the containers on podman).
    metrics = tmp_path / "metrics"
    (metrics / "old-worker").mkdir(parents=True)
    (metrics / "old-worker" / "counter.db").write_text("stale")
    (metrics / "gauge.db").write_text("stale")
    metrics.chmod(0o1777)  # a tmpfs mount's mode, which a directory made again would not have
    before = metrics.stat()
    dry_run(tmp_path, SERVICE="users", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics))
    after = metrics.stat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode), "the same directory"
    assert list(metrics.iterdir()) == []


def test_entrypoint_runs_the_arq_worker(tmp_path: Path) -> None:
    env, argv = dry_run(tmp_path, SERVICE="worker", WEB_CONCURRENCY="3", GRACEFUL_TIMEOUT="40")
    assert argv == ["arq", "worker.main.WorkerSettings"]
    assert env == {
        "WORKER_DATA_DIR": str(tmp_path / "data"),
        "WORKER_SERVER__PORT": "8003",
        "WORKER_SERVER__GRACEFUL_TIMEOUT_SECONDS": "40",
        "WORKER_SERVER__HOST": ALL_INTERFACES,
    }


def test_entrypoint_passes_a_one_off_command_through(tmp_path: Path) -> None:
    cmd = ["alembic", "-c", "/app/services/users/alembic.ini", "upgrade", "head"]
    env, argv = dry_run(tmp_path, *cmd, SERVICE="users")
    assert argv == cmd
    assert env["USERS_DATA_DIR"] == str(tmp_path / "data")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SERVICE must be one of"),
        ({"SERVICE": "billing"}, "SERVICE must be one of"),
        ({"SERVICE": "users", "PORT": "80a"}, "PORT must be a non-negative integer"),
        ({"SERVICE": "users", "WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1"),
    ],
)
def test_entrypoint_refuses_bad_configuration(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)],
        env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 64
    assert message in result.stderr


def test_every_uvicorn_flag_exists_in_the_locked_uvicorn(tmp_path: Path) -> None:
    _, argv = dry_run(tmp_path, SERVICE="users", MAX_REQUESTS="5", MAX_REQUESTS_JITTER="2")
    help_text = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (arg for arg in argv if arg.startswith("--")):
        assert re.search(rf"(^|[\s/]){re.escape(flag)}\b", help_text, re.M), flag


# --- refresh-base-digests.sh --------------------------------------------------------------


def test_refresh_script_pins_lock_and_both_dockerfiles_together(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "docker").mkdir()
    (tmp_path / "loadtests").mkdir()
    shutil.copy(REFRESH, tmp_path / "scripts" / REFRESH.name)
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    shutil.copy(LOADTEST_DOCKERFILE, tmp_path / "loadtests" / "Dockerfile")
    shutil.copy(BASE_LOCK, tmp_path / "docker" / "base-image.lock")
    digest = "sha256:" + "ab12" * 16
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    crane.write_text(f'#!/bin/sh\n[ "$1" = digest ] && echo {digest}\n')
    crane.chmod(0o755)
    result = subprocess.run(
        ["sh", str(tmp_path / "scripts" / REFRESH.name)],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=True,
    )
    pinned = f"python:3.11-slim-bookworm@{digest}"
    node = f"node:20-bookworm-slim@{digest}"
    assert pinned in result.stdout
    assert node in result.stdout
    args, _ = parse((tmp_path / "Dockerfile").read_text())
    assert (args["PYTHON_BASE"], args["NODE_BASE"]) == (pinned, node)
    loadtest_args, _ = parse((tmp_path / "loadtests" / "Dockerfile").read_text())
    assert loadtest_args["PYTHON_BASE"] == pinned
    lock = [
        line
        for line in (tmp_path / "docker" / "base-image.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lock == [pinned, node]
    # Everything but the two ARG lines is untouched.
    before = DOCKERFILE.read_text().splitlines()
    after = (tmp_path / "Dockerfile").read_text().splitlines()
    assert [a for a, b in zip(before, after, strict=True) if a != b] == [
        f"ARG PYTHON_BASE={GLOBAL_ARGS['PYTHON_BASE']}",
        f"ARG NODE_BASE={GLOBAL_ARGS['NODE_BASE']}",
    ]


def test_refresh_script_refuses_what_is_not_a_digest(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "docker").mkdir()
    shutil.copy(REFRESH, tmp_path / "scripts" / REFRESH.name)
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    shutil.copy(BASE_LOCK, tmp_path / "docker" / "base-image.lock")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    crane.write_text("#!/bin/sh\necho latest\n")
    crane.chmod(0o755)
    result = subprocess.run(
        ["sh", str(tmp_path / "scripts" / REFRESH.name)],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "did not resolve to a digest" in result.stderr
    assert (tmp_path / "Dockerfile").read_text() == DOCKERFILE.read_text()
