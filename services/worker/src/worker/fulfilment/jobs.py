"""The ``orders.fulfil`` job: take payment, then report the outcome to orders in one call.

orders owns the order's life (ADR 0019): the report moves a pending order
through confirmed to fulfilled (or failed) in one transaction, with its events.
Safe to run twice, even at the same time: the same report again is a no-op in
orders (200, no event), and a refused report (409) means a cancel, the expiry
cron or a run with the other outcome got there first, which counts as done
(the charge is voided). Upstream trouble (5xx, timeouts, an open breaker, no
token) is retried by arq with an exponential, jittered backoff until
``fulfil.max_tries``; an order that no longer exists (404) is done.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any

import structlog
from arq.worker import Function, Retry

from chassis.http import CircuitOpenError, UpstreamBadGateway, UpstreamTimeout, UpstreamUnavailable
from chassis.jobs import job
from contracts.jobs import FULFIL_ORDER
from contracts.orders import OrderStatus, PaymentOutcome
from worker.orders import OrderGone, TransientOrdersError, TransitionRefused
from worker.resources import Resources, get_resources
from worker.settings import WorkerSettings
from worker.tokens import TokenUnavailable

logger = structlog.get_logger("worker.fulfilment")

#: Failures that may be gone on a later attempt.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    UpstreamUnavailable,  # connection refused, or the breaker is open
    UpstreamTimeout,
    UpstreamBadGateway,
    TransientOrdersError,
    TokenUnavailable,
)


class FulfilGaveUp(Exception):
    """The last attempt failed like the others; the job ends failed (arq keeps this as its result).

    Plain arguments only, so that arq can pickle it and anyone can read the result back.
    """

    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__(attempts, reason)
        self.attempts = attempts
        self.reason = reason

    def __str__(self) -> str:
        return f"gave up after {self.attempts} attempts: {self.reason}"


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class FulfilOutcome(StrEnum):
    """How a run ended (the job's result)."""

    fulfilled = "fulfilled"
    failed = "failed"
    already_done = "already_done"
    gone = "gone"


def retry_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, capped, with equal jitter.

    The jitter keeps jobs that failed together (an upstream outage) from all
    coming back in the same instant.
    """
    bound = min(maximum, initial * 2.0 ** (attempt - 1))
    return bound / 2 + rng.uniform(0.0, bound / 2)


async def fulfil_order(ctx: dict[str, Any], order_id: str) -> str:
    """Run the fulfilment of `order_id`; return a `FulfilOutcome` value, or raise `Retry`."""
    resources = get_resources(ctx)
    attempt = int(ctx.get("job_try") or 1)
    with structlog.contextvars.bound_contextvars(order_id=order_id):
        try:
            outcome = await _fulfil(resources, order_id)
        except TRANSIENT_ERRORS as exc:
            delay = _next_delay(resources, attempt, exc)
            if delay is None:
                raise FulfilGaveUp(attempt, _describe(exc)) from exc
            raise Retry(defer=delay) from exc
        return outcome.value


def _next_delay(resources: Resources, attempt: int, exc: Exception) -> float | None:
    """When to try again after `exc`, or None when this was the last attempt."""
    settings = resources.settings.fulfil
    reason = type(exc).__name__
    if attempt >= settings.max_tries:
        logger.error("order_fulfil_gave_up", attempt=attempt, reason=reason, error=str(exc))
        return None
    delay = retry_delay(
        attempt,
        initial=settings.retry_backoff_initial_seconds,
        maximum=settings.retry_backoff_max_seconds,
        rng=resources.rng,
    )
    if isinstance(exc, CircuitOpenError):
        # Coming back before the breaker lets a probe through would only fail again.
        delay = max(delay, exc.retry_in)
    logger.warning(
        "order_fulfil_retry", attempt=attempt, reason=reason, defer_seconds=round(delay, 3)
    )
    return delay


async def _fulfil(resources: Resources, order_id: str) -> FulfilOutcome:
    paid = await resources.payment.charge(order_id)
    payment = PaymentOutcome.paid if paid else PaymentOutcome.declined
    try:
        order = await resources.orders_api.report_fulfilment(order_id, payment)
    except OrderGone:
        logger.info("order_gone")
        outcome = FulfilOutcome.gone
    except TransitionRefused as exc:
        logger.info("order_already_done", detail=exc.detail)
        outcome = FulfilOutcome.already_done
    else:
        # orders answers with the final state its table reached for this report.
        if order.status is OrderStatus.fulfilled:
            logger.info("order_fulfilled")
            return FulfilOutcome.fulfilled
        logger.info("order_failed", status=order.status.value, reason=order.status_reason)
        return FulfilOutcome.failed
    if paid:
        await resources.payment.void(order_id)
    return outcome


def fulfil_job(settings: WorkerSettings) -> Function:
    """The job as arq runs it, with the attempt limit and timeout from `settings`."""
    return job(
        FULFIL_ORDER,
        timeout=settings.fulfil.timeout_seconds,
        max_tries=settings.fulfil.max_tries,
    )(fulfil_order)
