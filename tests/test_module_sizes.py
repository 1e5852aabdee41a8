"""The module-size check in `make lint` (.ci/module_sizes.py), on a git tree of its own."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "module_sizes.py"


@pytest.fixture(scope="module")
def sizes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("module_sizes", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(tmp_path: Path, files: dict[str, int]) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name, lines in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n" * lines)
    return tmp_path


def test_the_repository_passes_its_own_check(sizes: ModuleType) -> None:
    assert sizes.problems(SCRIPT.parents[1]) == []


def test_a_new_source_module_over_400_lines_fails(sizes: ModuleType, tmp_path: Path) -> None:
    root = tree(tmp_path, {"pkg/small.py": 400, "pkg/big.py": 401})
    assert sizes.problems(root) == ["pkg/big.py: 401 lines, over the 400-line limit: split it"]


def test_a_test_module_may_reach_600_lines(sizes: ModuleType, tmp_path: Path) -> None:
    root = tree(tmp_path, {"pkg/tests/test_a.py": 600, "pkg/tests/test_b.py": 601})
    assert sizes.problems(root) == [
        "pkg/tests/test_b.py: 601 lines, over the 600-line limit: split it"
    ]


def test_no_module_is_exempt_any_more(sizes: ModuleType, tmp_path: Path) -> None:
    # Once listed as yet to split (issue 14): past the limit again, they fail like any other.
    root = tree(tmp_path, {"loadtests/hooks.py": 401, "tests/deploy/test_helm.py": 601})
    assert sizes.problems(root) == [
        "loadtests/hooks.py: 401 lines, over the 400-line limit: split it",
        "tests/deploy/test_helm.py: 601 lines, over the 600-line limit: split it",
    ]
