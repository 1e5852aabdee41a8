"""`helm package` of the chart through helm-python-sdk (Helm's Go engine; no helm binary here).

``python -m tests.deploy.package_chart DIR`` writes ``DIR/chassis-<version>.tgz`` after a
strict lint, and prints its path. With a helm binary, ``helm package deploy/helm/chassis``
makes the same archive.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "chassis"


def package_chart(destination: Path) -> Path:
    import helm_python

    helm_python.lint(str(CHART), strict=True)
    destination.mkdir(parents=True, exist_ok=True)
    return Path(helm_python.package(str(CHART), destination=str(destination)))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m tests.deploy.package_chart DIR\n")
        return 2
    sys.stdout.write(f"{package_chart(Path(argv[0]))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
