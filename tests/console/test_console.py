"""The web console's own suites, run from the README's test command.

`npm ci` from the committed lockfile, the type check, the Vitest unit tests and
the production build; the end-to-end test drives Debian's chromium through
Playwright against the platform `make dev` starts (console/e2e). Skipped only
when Node is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

CONSOLE = Path(__file__).resolve().parents[2] / "console"
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or NPM is None, reason="Node.js and npm are not installed"
)


def npm(*args: str, timeout: float, env: dict[str, str] | None = None) -> None:
    """Run npm in console/; on failure show its output (the test's only evidence)."""
    assert NPM is not None
    result = subprocess.run(
        [NPM, *args],
        cwd=CONSOLE,
        env={**os.environ, "CI": "1", "NO_COLOR": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"npm {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )


@pytest.fixture(scope="module")
def installed() -> None:
    npm("ci", "--no-audit", "--no-fund", timeout=480)


@pytest.mark.timeout(600)
def test_console_type_checks_passes_its_unit_tests_and_builds(installed: None) -> None:
    npm("run", "typecheck", timeout=120)
    npm("test", timeout=180)
    npm("run", "build", timeout=120)

    index = (CONSOLE / "dist" / "index.html").read_text()
    assert 'src="/console/assets/' in index
    # Nothing inline (scripts without src, style attributes): the gateway's CSP refuses them.
    assert not re.search(r"<script(?![^>]*\bsrc=)", index)
    assert "style=" not in index


E2E_REDIS_URL = os.environ.get("CHASSIS_DEV_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is missing")
def test_console_in_chromium_against_the_platform(installed: None) -> None:
    """Sign-up, an order fulfilled live, its replay and a 429; the docs offline; two PNGs kept."""
    client = redis.Redis.from_url(E2E_REDIS_URL)
    try:
        client.flushdb()  # no rate-limit window or queue left by an earlier run
    finally:
        client.close()
    screenshot = CONSOLE.parent / "reports" / "console.png"
    screenshot.unlink(missing_ok=True)
    # The same run renders every service's /docs and /redoc offline and keeps the gateway's.
    docs_screenshot = CONSOLE.parent / "reports" / "docs.png"
    docs_screenshot.unlink(missing_ok=True)

    npm("run", "build", timeout=120)
    npm("run", "e2e", timeout=540, env={"CONSOLE_E2E_REDIS_URL": E2E_REDIS_URL})

    assert screenshot.stat().st_size > 10_000
    assert docs_screenshot.stat().st_size > 10_000
