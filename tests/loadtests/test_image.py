"""The Locust image recipe, checked offline, and what the suites may import inside it.

The image installs only uv.lock's `loadtest` group, so the suites must import nothing
else (no chassis, no service code). The Helm chart and the compose profile run it with
WORKDIR /app, the locustfile at /app/loadtests/locustfile.py and `locust` as entrypoint.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
import tomllib
from pathlib import Path

from tests.deploy.test_dockerfile import parse

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "loadtests"
DOCKERFILE = PACKAGE / "Dockerfile"
IMAGE_MODULES = {"locust", "gevent", "httpx", "matplotlib", "loadtests"}


def instructions(stage_index: int, keyword: str) -> list[str]:
    _, stages = parse(DOCKERFILE.read_text())
    return [i.args for i in stages[stage_index].instructions if i.keyword == keyword]


def test_the_image_runs_locust_with_the_locustfile_under_app() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    runtime = stages[-1]
    assert runtime.base == "${PYTHON_BASE}"
    assert instructions(-1, "WORKDIR") == ["/app"]
    assert instructions(-1, "ENTRYPOINT") == ['["locust"]']
    (env,) = instructions(-1, "ENV")
    assert "LOCUST_LOCUSTFILE=/app/loadtests/locustfile.py" in env
    assert "PYTHONPATH=/app" in env
    assert "COPY --chown=10001:10001 loadtests/ /app/loadtests/" in [
        f"COPY {args}" for args in instructions(-1, "COPY")
    ]
    assert instructions(-1, "USER") == ["10001:10001"]
    assert set(instructions(-1, "EXPOSE")[0].split()) == {"8089", "5557"}
    assert (PACKAGE / "locustfile.py").is_file()


def test_the_image_installs_only_the_locked_loadtest_group() -> None:
    (sync,) = [args for args in instructions(0, "RUN") if "uv sync" in args]
    assert "--frozen" in sync
    assert "--only-group loadtest" in sync
    assert "--no-install-workspace" in sync
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert any(req.startswith("locust") for req in groups["loadtest"])
    assert {"include-group": "loadtest"} in groups["dev"]


def test_the_base_image_is_the_services_one() -> None:
    # scripts/refresh-base-digests.sh pins ./Dockerfile: this one must follow it.
    service_args, _ = parse((ROOT / "Dockerfile").read_text())
    loadtest_args, _ = parse(DOCKERFILE.read_text())
    assert loadtest_args["PYTHON_BASE"] == service_args["PYTHON_BASE"]


def test_the_build_context_holds_what_the_recipe_copies() -> None:
    patterns = [
        line
        for line in (PACKAGE / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
                keep = negated
        return keep

    copied = [
        source
        for stage in (0, -1)
        for args in instructions(stage, "COPY")
        if "--from" not in args
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    assert copied
    for source in copied:
        assert included(source.rstrip("/")), source
        assert (ROOT / source).exists(), source
    assert included("loadtests/journey.py")
    assert not included("services/users/src/users/main.py")
    assert not included(".env")


def test_the_suites_import_only_what_the_image_installs() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in IMAGE_MODULES, f"{path.name} imports {name}"
