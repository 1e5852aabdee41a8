"""Fail on a Python module that outgrew its limit: 400 lines in source, 600 in tests.

Small modules are the house style (STYLE.md): past these sizes a module holds more
than one idea and should be split along the seams it already has. There are no
exceptions: the modules that were over the limit when this check came in have been
split (issue 14), and any module that outgrows its limit fails `make lint`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOURCE_LIMIT = 400
TEST_LIMIT = 600


def is_test(path: str) -> bool:
    parts = Path(path).parts
    return "tests" in parts or Path(path).name.startswith("test_")


def limit_for(path: str) -> int:
    return TEST_LIMIT if is_test(path) else SOURCE_LIMIT


def tracked_python_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],  # noqa: S607
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return sorted(line for line in listed.stdout.splitlines() if (root / line).is_file())


def problems(root: Path) -> list[str]:
    found: list[str] = []
    for path in tracked_python_files(root):
        lines = len((root / path).read_text(encoding="utf-8").splitlines())
        limit = limit_for(path)
        if lines > limit:
            found.append(f"{path}: {lines} lines, over the {limit}-line limit: split it")
    return found


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    found = problems(root)
    for line in found:
        print(line)
    if not found:
        print("module sizes: every module within its limit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
