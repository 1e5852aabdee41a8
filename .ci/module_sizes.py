"""Fail on a Python module that outgrew its limit: 400 lines in source, 600 in tests.

Small modules are the house style (STYLE.md): past these sizes a module holds more
than one idea and should be split along the seams it already has. The modules that
were over the limit when this check came in are listed in `NOT_YET_SPLIT`; the
list may only shrink: a listed module that is back under its limit fails the check
too, so that it comes off the list and stays small.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOURCE_LIMIT = 400
TEST_LIMIT = 600

#: Over the limit when the check was added (issue 14); split each, then delete its line.
NOT_YET_SPLIT = frozenset(
    {
        "tests/deploy/test_helm.py",
    }
)


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


def problems(root: Path, not_yet_split: frozenset[str] = NOT_YET_SPLIT) -> list[str]:
    found: list[str] = []
    for path in tracked_python_files(root):
        lines = len((root / path).read_text(encoding="utf-8").splitlines())
        limit = limit_for(path)
        if lines > limit and path not in not_yet_split:
            found.append(f"{path}: {lines} lines, over the {limit}-line limit: split it")
        elif lines <= limit and path in not_yet_split:
            found.append(f"{path}: {lines} lines, now within {limit}: take it off NOT_YET_SPLIT")
    found.extend(
        f"{path}: listed in NOT_YET_SPLIT but gone: take it off"
        for path in sorted(not_yet_split)
        if not (root / path).is_file()
    )
    return found


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    found = problems(root)
    for line in found:
        print(line)
    if not found:
        print(f"module sizes: every module within its limit ({len(NOT_YET_SPLIT)} yet to split)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
