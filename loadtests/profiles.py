"""Traffic mixes of the gateway journey: how often a simulated user does each action.

Weights are relative. ``journey`` is the default mix of a signed-in user browsing
mostly and ordering now and then; ``read-heavy`` and ``write-heavy`` move the
balance for the read and write paths (cache, database reads vs. inserts, outbox,
worker). ``--mix`` / ``LOADTEST_MIX`` picks one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

LIST_ORDERS = "list_orders"
READ_ORDER = "read_order"
CREATE_ORDER = "create_order"
OVERVIEW = "overview"
PROFILE = "profile"
REFRESH = "refresh"
WATCH_EVENTS = "watch_events"

ACTIONS = (LIST_ORDERS, READ_ORDER, CREATE_ORDER, OVERVIEW, PROFILE, REFRESH, WATCH_EVENTS)

PROFILES: dict[str, dict[str, int]] = {
    "journey": {
        LIST_ORDERS: 25,
        READ_ORDER: 25,
        CREATE_ORDER: 15,
        OVERVIEW: 15,
        PROFILE: 10,
        REFRESH: 5,
        WATCH_EVENTS: 5,
    },
    "read-heavy": {
        LIST_ORDERS: 35,
        READ_ORDER: 40,
        CREATE_ORDER: 3,
        OVERVIEW: 12,
        PROFILE: 7,
        REFRESH: 2,
        WATCH_EVENTS: 1,
    },
    "write-heavy": {
        LIST_ORDERS: 10,
        READ_ORDER: 15,
        CREATE_ORDER: 60,
        OVERVIEW: 5,
        PROFILE: 2,
        REFRESH: 3,
        WATCH_EVENTS: 5,
    },
}


def pick(weights: Mapping[str, int], rng: random.Random) -> str:
    """One action, drawn with the profile's weights."""
    actions = list(weights)
    return rng.choices(actions, weights=[weights[action] for action in actions])[0]


def share(weights: Mapping[str, int], action: str) -> float:
    """The fraction of a user's actions that are ``action``."""
    return weights.get(action, 0) / sum(weights.values())
