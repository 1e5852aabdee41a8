"""SIGTERM through `compose stop`: what was in flight finishes, nothing accepted is lost.

- The worker: an order's job is inside its (slow, SMOKE_PAYMENT_SECONDS) payment step when
  the worker container is stopped; the order must be fulfilled by the time `compose stop`
  returns (the drain finished the job), and stay so after the worker starts again.
- The gateway: clients keep POSTing orders, each on a new connection, while the gateway
  container is stopped. Requests that were sent before SIGTERM and answered after it were
  in flight; none may be dropped (reset, or a 5xx). Connections refused once the listener
  has closed were never accepted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from chassis.jobs import job_id_for
from contracts.jobs import FULFIL_ORDER
from tests.containers.engine import Compose, Say
from tests.support.accounts import ORDER, bearer, sign_up_and_log_in

CLIENTS = 6


@dataclass
class WorkerDrain:
    jobs_running_at_sigterm: int
    status_at_sigterm: str
    stop_seconds: float
    exit_code: int
    status_when_stopped: str
    status_after_restart: str


@dataclass
class GatewayDrain:
    sent: int = 0
    answered: dict[int, int] = field(default_factory=dict)
    in_flight_at_sigterm: int = 0
    refused: int = 0
    dropped: list[str] = field(default_factory=list)
    #: Dropped although sent before SIGTERM: the drain lost a request it had (a failure).
    dropped_in_flight: list[str] = field(default_factory=list)
    stop_seconds: float = 0.0
    exit_code: int | None = None


async def order_status(client: httpx.AsyncClient, auth: dict[str, str], order_id: str) -> str:
    response = await client.get(f"/api/v1/orders/{order_id}", headers=auth)
    response.raise_for_status()
    status: str = response.json()["status"]
    return status


async def drain_worker(stack: Compose, gateway: str, say: Say) -> WorkerDrain:
    async with httpx.AsyncClient(base_url=gateway, timeout=20) as client:
        account = await sign_up_and_log_in(client, "smoke-drain")
        auth = bearer(account)
        created = await client.post("/api/v1/orders", json=ORDER, headers=auth)
        created.raise_for_status()
        order_id = created.json()["id"]
        running = await _jobs_running(stack, order_id, within=20)
        status_at_sigterm = await order_status(client, auth, order_id)
        started = time.monotonic()
        stopped = await asyncio.to_thread(stack.run, "stop", "--timeout", "30", "worker")
        stop_seconds = round(time.monotonic() - started, 2)
        if stopped.returncode != 0:
            raise RuntimeError(f"compose stop worker failed: {stopped.stderr[-2000:]}")
        state = stack.engine.inspect(stack.container_of("worker"))["State"]
        when_stopped = await order_status(client, auth, order_id)
        if when_stopped != "fulfilled":
            # Not drained (the job runs again after the restart): its log says why.
            tail = ("logs", "--no-color", "--tail", "25", "worker")
            logs = await asyncio.to_thread(stack.run, *tail)
            for line in logs.stdout.splitlines():
                say(f"  worker log | {line[-300:]}")
        await asyncio.to_thread(stack.run, "start", "worker")
        after = await _final_status(client, auth, order_id, within=60)
    drain = WorkerDrain(
        jobs_running_at_sigterm=running,
        status_at_sigterm=status_at_sigterm,
        stop_seconds=stop_seconds,
        exit_code=int(state["ExitCode"]),
        status_when_stopped=when_stopped,
        status_after_restart=after,
    )
    say(
        f"worker SIGTERM with {running} job(s) in the payment step (order {status_at_sigterm}): "
        f"compose stop took {stop_seconds} s, exit {drain.exit_code}; order {when_stopped} "
        f"when stopped, {after} after restart"
    )
    return drain


async def _jobs_running(stack: Compose, order_id: str, *, within: float) -> int:
    """1 once the order's fulfilment job is in progress in the stack's Redis (0: not yet).

    That order's job only: any in-progress key (a cron job's, ``cron:orders.purge:...``)
    once ended the wait, the SIGTERM then came before the order's job was picked up, and it
    ran after the restart ("not drained by compose stop", though nothing was cut short).
    """
    redis = stack.container_of("redis")
    key = f"arq:in-progress:{job_id_for(FULFIL_ORDER, order_id)}"
    deadline = time.monotonic() + within
    while True:
        out = await asyncio.to_thread(
            stack.engine.podman, "exec", redis, "redis-cli", "exists", key
        )
        running = int(out.strip() or 0)
        if running or time.monotonic() > deadline:
            return running
        await asyncio.sleep(0.1)


async def _final_status(
    client: httpx.AsyncClient, auth: dict[str, str], order_id: str, *, within: float
) -> str:
    deadline = time.monotonic() + within
    while True:
        try:
            status = await order_status(client, auth, order_id)
        except httpx.HTTPError:
            status = "unknown"
        if status in {"fulfilled", "failed", "cancelled"} or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def drain_gateway(stack: Compose, gateway: str, say: Say) -> GatewayDrain:
    async with httpx.AsyncClient(base_url=gateway, timeout=20) as client:
        auth = bearer(await sign_up_and_log_in(client, "smoke-gateway-drain"))
    result = GatewayDrain()
    sigterm_at: list[float] = []
    done = asyncio.Event()

    async def client_loop() -> None:
        # A new connection per request: a refused connect then means "not accepted".
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway, timeout=30, limits=limits) as one:
            while not done.is_set():
                sent_at = time.monotonic()
                result.sent += 1
                try:
                    response = await one.post("/api/v1/orders", json=ORDER, headers=auth)
                except httpx.ConnectError:
                    result.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                except httpx.HTTPError as exc:
                    result.dropped.append(repr(exc))
                    if not sigterm_at or sent_at < sigterm_at[0]:
                        result.dropped_in_flight.append(repr(exc))
                    continue
                status = response.status_code
                result.answered[status] = result.answered.get(status, 0) + 1
                if sigterm_at and sent_at < sigterm_at[0]:
                    result.in_flight_at_sigterm += 1
                if status >= 500:
                    result.dropped.append(f"{status}: {response.text[:200]}")
                    if not sigterm_at or sent_at < sigterm_at[0]:
                        result.dropped_in_flight.append(f"{status}: {response.text[:200]}")

    clients = [asyncio.create_task(client_loop()) for _ in range(CLIENTS)]
    await asyncio.sleep(2)
    sigterm_at.append(time.monotonic())
    stopped = await asyncio.to_thread(stack.run, "stop", "--timeout", "30", "gateway")
    result.stop_seconds = round(time.monotonic() - sigterm_at[0], 2)
    await asyncio.sleep(0.5)
    done.set()
    await asyncio.gather(*clients)
    if stopped.returncode != 0:
        raise RuntimeError(f"compose stop gateway failed: {stopped.stderr[-2000:]}")
    result.exit_code = int(stack.engine.inspect(stack.container_of("gateway"))["State"]["ExitCode"])
    say(
        f"gateway SIGTERM under {CLIENTS} clients: {result.sent} sent, answered {result.answered}, "
        f"{result.in_flight_at_sigterm} in flight at SIGTERM all answered, "
        f"{result.refused} refused after the listener closed, {len(result.dropped)} dropped "
        f"({len(result.dropped_in_flight)} of them sent before SIGTERM); "
        f"compose stop took {result.stop_seconds} s, exit {result.exit_code}"
    )
    # Sent after SIGTERM, so never accepted: reset when the listener closed with them still in
    # its accept queue (ReadError), or timed out once the container's network was gone and
    # podman's port forwarding led nowhere (ConnectTimeout). A client retries those.
    for kind in sorted(set(result.dropped)):
        when = "in flight" if kind in result.dropped_in_flight else "sent after SIGTERM"
        say(f"  dropped x{result.dropped.count(kind)} ({when}): {kind}")
    return result
