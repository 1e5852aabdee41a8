"""Run an Arq worker in tests: burst mode until the queue is empty, then close it."""

from __future__ import annotations

import warnings

from arq.worker import Worker


async def close_worker(worker: Worker) -> None:
    # arq 0.28 closes its pool with redis' deprecated close(); not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        await worker.close()


async def run_burst(worker: Worker) -> Worker:
    """Run `worker` (built with ``burst=True``) until its queue is empty; always close it."""
    try:
        await worker.async_run()
    finally:
        await close_worker(worker)
    return worker
