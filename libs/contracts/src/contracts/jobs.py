"""Names of the jobs one service enqueues for another (the Arq function names).

Both ends import the name from here, so a rename cannot leave a queue of jobs
that no worker knows.
"""

from __future__ import annotations

#: Takes a new order through payment and stock; its one argument is the order id.
FULFIL_ORDER = "orders.fulfil"
