"""The platform's wire contracts: what crosses a process boundary, in one place.

users and orders serve these models; the gateway, the worker, the demo and the
load tests read them. Nothing here knows FastAPI, a database or a password hash:
the package imports pydantic only, so a client of the platform can depend on it
alone (``make lint`` enforces that with import-linter).

- `contracts.users`: sign-up, profile and user pages, with the password policy
  the sign-up body enforces.
- `contracts.auth`: login, refresh, logout, the client-credentials grant, tokens.
- `contracts.keys`: the JWKS document.
- `contracts.orders`: orders, their items, pages, `OrderStatus`, the worker's
  status change.
- `contracts.events`: event types per status and the envelope version.
- `contracts.jobs`: the names of the jobs one service enqueues for another.
"""
