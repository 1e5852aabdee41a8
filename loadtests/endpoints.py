"""The requests the suites make, each named once and placed in one SLO group.

Locust keys its statistics by (request type, name); the SLO gate and the capacity
report add those entries up per group, so every name a suite uses is listed here.
Names are path templates, so ``/api/v1/orders/{id}`` is one entry whatever the id.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTH = "auth"
PROFILE = "profile"
ORDERS_READ = "orders-read"
ORDERS_WRITE = "orders-write"
EVENTS = "events"

#: Every SLO group, in the order reports list them.
GROUPS = (AUTH, PROFILE, ORDERS_READ, ORDERS_WRITE, EVENTS)

#: Request type of the synthetic entry that times an event's delivery over SSE.
SSE = "SSE"


@dataclass(frozen=True)
class Endpoint:
    method: str
    name: str
    group: str


SIGNUP = Endpoint("POST", "/api/v1/auth/signup", AUTH)
LOGIN = Endpoint("POST", "/api/v1/auth/login", AUTH)
REFRESH = Endpoint("POST", "/api/v1/auth/refresh", AUTH)
JWKS = Endpoint("GET", "/.well-known/jwks.json", AUTH)
ME = Endpoint("GET", "/api/v1/users/me", PROFILE)
OVERVIEW = Endpoint("GET", "/api/v1/me/overview", PROFILE)
LIST_ORDERS = Endpoint("GET", "/api/v1/orders", ORDERS_READ)
GET_ORDER = Endpoint("GET", "/api/v1/orders/{id}", ORDERS_READ)
CREATE_ORDER = Endpoint("POST", "/api/v1/orders", ORDERS_WRITE)
#: The same key and body again: the first answer must come back, marked as a replay.
REPLAY_ORDER = Endpoint("POST", "/api/v1/orders (idempotent replay)", ORDERS_WRITE)
OPEN_EVENTS = Endpoint("GET", "/api/v1/events", EVENTS)
#: From the POST that creates an order to its ``order.created`` event on the open stream.
EVENT_DELIVERY = Endpoint(SSE, "order.created delivery", EVENTS)

ALL = (
    SIGNUP,
    LOGIN,
    REFRESH,
    JWKS,
    ME,
    OVERVIEW,
    LIST_ORDERS,
    GET_ORDER,
    CREATE_ORDER,
    REPLAY_ORDER,
    OPEN_EVENTS,
    EVENT_DELIVERY,
)
_GROUP_OF = {(endpoint.method, endpoint.name): endpoint.group for endpoint in ALL}


def group_of(method: str, name: str) -> str | None:
    """The SLO group of a Locust stats entry, or None for a request no suite declares."""
    return _GROUP_OF.get((method, name))
