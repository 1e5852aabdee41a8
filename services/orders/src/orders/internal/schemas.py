"""Bodies and answers of the maintenance endpoints (called by the worker's crons)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.examples import Examples

#: Ten years: larger ages would overflow date arithmetic and mean nothing anyway.
MAX_AGE_SECONDS = 10 * 366 * 24 * 3600


class ExpirePending(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_seconds: float = Field(
        ge=0, le=MAX_AGE_SECONDS, description="Pending orders created longer ago than this fail."
    )


class ExpirePendingResult(BaseModel):
    expired: int = Field(ge=0, description="Orders moved to failed (reason `expired`).")


class Purge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_older_than_seconds: float = Field(
        ge=0, le=MAX_AGE_SECONDS, description="Delete idempotency keys stored longer ago."
    )
    outbox_sent_older_than_seconds: float = Field(
        ge=0, le=MAX_AGE_SECONDS, description="Delete outbox rows sent longer ago."
    )


class PurgeResult(BaseModel):
    idempotency_keys: int = Field(ge=0)
    outbox_rows: int = Field(ge=0)


#: OpenAPI examples of the maintenance bodies (the worker's crons send these shapes).
INTERNAL_EXAMPLES: dict[str, Examples] = {
    "ExpirePending": {
        "one_hour": {
            "summary": "Fail orders pending for over an hour",
            "value": {"older_than_seconds": 3600},
        },
    },
    "Purge": {
        "defaults": {
            "summary": "Idempotency keys after a day, sent outbox rows after a week",
            "value": {
                "idempotency_older_than_seconds": 86400,
                "outbox_sent_older_than_seconds": 604800,
            },
        },
    },
}
