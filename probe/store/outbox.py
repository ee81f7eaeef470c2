"""The alert outbox in the store (schema step 2): its writes, queued like observations, and
its reads.

`adding`/`updating` turn what the alerting hands in into an `OutboxWrite`, which the store
puts on the writer's queue and wakes the writer for at once; its future resolves when the
transaction holding the rows has committed (or with the error of the commit that tried). The
alerting awaits that before it sends, so a notification is on disk before any chat API sees
it; and since the queue is in order, the tracker state that decided the alert is committed
with it or before it. Delivered, failed and dropped rows are kept `retention` seconds for
inspection (the writer prunes them); pending ones stay until the alerting settles them.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe.store.base import OUTBOX_STATES, OutboxItem, OutboxState
from probe.store.columns import valid_text

__all__ = [
    "COUNT_IN_STATE",
    "INSERT_OUTBOX",
    "UPDATE_OUTBOX",
    "OutboxWrite",
    "adding",
    "check_state",
    "pending_query",
    "updating",
]

INSERT_OUTBOX = (
    "INSERT OR IGNORE INTO outbox (id, notifier, notification, created, attempts,"
    " next_attempt, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')"
)
# ?1 is the id, so a row refused in careful mode is logged by it; NULL leaves a column as is.
UPDATE_OUTBOX = (
    "UPDATE outbox SET state = coalesce(?2, state), attempts = coalesce(?3, attempts),"
    " next_attempt = coalesce(?4, next_attempt), last_error = coalesce(?5, last_error),"
    " delivered_at = coalesce(?6, delivered_at) WHERE id = ?1"
)
COUNT_IN_STATE = "SELECT count(*) FROM outbox WHERE state = ?"
_SELECT_PENDING = (
    "SELECT id, notifier, notification, created, attempts, next_attempt, state,"
    " last_error, delivered_at FROM outbox WHERE state = 'pending'"
)


@dataclass(frozen=True, slots=True)
class OutboxWrite:
    """Outbox rows to add, or one row to update; `future` resolves once they are committed
    (or with the error of the commit that tried)."""

    future: concurrent.futures.Future[None]
    adds: tuple[tuple[Any, ...], ...] = ()
    update: tuple[Any, ...] | None = None


def check_state(state: OutboxState) -> None:
    """Raise ValueError for a state the outbox does not know."""
    if state not in OUTBOX_STATES:
        raise ValueError(f"unknown outbox state {state!r}")


def adding(rows: Sequence[OutboxItem]) -> OutboxWrite | None:
    """The write that adds `rows` as pending (INSERT_OUTBOX); None when there are none."""
    adds = tuple(
        (
            row.id,
            row.notifier,
            valid_text(row.notification),
            float(row.created),
            int(row.attempts),
            float(row.next_attempt),
        )
        for row in rows
    )
    return OutboxWrite(concurrent.futures.Future(), adds=adds) if adds else None


def updating(
    id: str,
    *,
    state: OutboxState | None,
    attempts: int | None,
    next_attempt: float | None,
    last_error: str | None,
    delivered_at: float | None,
) -> OutboxWrite:
    """The write that changes the given columns of one row (None: unchanged; UPDATE_OUTBOX)."""
    if state is not None:
        check_state(state)
    update = (
        id,
        state,
        attempts,
        next_attempt,
        None if last_error is None else valid_text(last_error),
        delivered_at,
    )
    return OutboxWrite(concurrent.futures.Future(), update=update)


def pending_query(now: float | None) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters reading the pending rows, oldest first (with `now`, only
    those due by then); each row read is an `OutboxRow(*row)`."""
    sql = _SELECT_PENDING
    params: tuple[Any, ...] = ()
    if now is not None:
        sql += " AND next_attempt <= ?"
        params = (now,)
    return sql + " ORDER BY created, id", params
