"""Locust entry point of the gateway suites: the user journey and its read/write profiles.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -r 5 -t 2m
    LOADTEST_SHAPE=step locust -f loadtests/locustfile.py --host ... --headless --step-users 10

``make loadtest`` / ``python -m loadtests.run`` wrap this with a reports directory.
Options: see the README (Locust's --help does not show a locustfile's own); each also reads
``LOADTEST_*``.
The per-service suites (users and orders without the gateway) are in ``direct.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Locust imports a locustfile by path with only its folder on sys.path; the suites are
# the `loadtests` package, so its parent (the repository, or /app in the image) goes first.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from loadtests import hooks  # noqa: E402  (options, SLO gate and timeline register on import)
from loadtests.journey import JourneyUser  # noqa: E402

__all__ = ["JourneyUser"]

# Locust runs the one LoadTestShape it finds in this module, if any.
_shape = hooks.selected_shape()
if _shape is not None:
    SelectedShape = _shape
