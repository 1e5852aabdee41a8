"""Check each package's line+branch coverage against its floor (run after `coverage combine`).

The chassis and the contracts are held to 90 %, each service and the devkit to 85 %.
A package with no data at all fails too: it means its tests did not run.
"""

from __future__ import annotations

import io
import sys

import coverage

FLOORS = {
    "libs/chassis/src": 90.0,
    "libs/contracts/src": 90.0,
    "services/users/src": 85.0,
    "services/orders/src": 85.0,
    "services/gateway/src": 85.0,
    "services/worker/src": 85.0,
    "libs/devkit/src": 85.0,
}


def main() -> int:
    data = coverage.Coverage()
    data.load()
    failed = False
    for path, floor in FLOORS.items():
        try:
            total = data.report(include=[f"{path}/*"], file=io.StringIO())
        except coverage.exceptions.NoDataError:
            total = 0.0
        verdict = "ok" if total >= floor else "BELOW FLOOR"
        print(f"coverage {path:24} {total:6.2f} %  (floor {floor:.0f} %)  {verdict}")
        failed |= total < floor
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
