"""Helpers for store tests: results at chosen times, fed through the real StatusTracker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from probe.core.result import Result, Status
from probe.core.tracker import Observation, Policy, StatusTracker

# A fixed "now" on an hour boundary (2026-03-01 00:00 UTC); stores get it as their clock so
# retention judges test data against it, not against the wall clock.
NOW = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


# What schema step 4 added. Tests make an older store by writing one with this code and taking
# away what the later steps add, so its data is what this code writes; this is step 4's part.
# SQL that takes a store back to the schema before a step (and every later one), to test that
# step on an old store: UNDO_STEP_5 gives version 4's tables, UNDO_STEP_4 version 3's.
UNDO_STEP_5 = "ALTER TABLE probe_state DROP COLUMN alert_state;"
UNDO_STEP_4 = UNDO_STEP_5 + (
    "ALTER TABLE results DROP COLUMN http_status; ALTER TABLE results DROP COLUMN cert_expiry;"
)


class Clock:
    """A settable clock for Store.open(clock=...)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_result(
    name: str,
    t: float,
    status: Status = Status.UP,
    *,
    latency: float | None = 0.05,
    message: str | None = None,
    details: dict[str, object] | None = None,
    http_status: int | None = None,
    cert_expiry: float | None = None,
) -> Result:
    return Result(
        name=name,
        kind="http",
        endpoint="http://127.0.0.1:8080/health",
        status=status,
        latency=latency,
        message=message if message is not None else f"{status.value} at {t:.0f}",
        time=datetime.fromtimestamp(t, UTC),
        details=details or {},
        http_status=http_status,
        cert_expiry=cert_expiry,
    )


class Feeder:
    """Turns (time, status) pairs into Observations with one real tracker."""

    def __init__(self, policy: Policy | None = None, tracker: StatusTracker | None = None):
        self.policy = policy or Policy(interval=60)
        self.tracker = tracker or StatusTracker()

    def observe(self, result: Result) -> Observation:
        return self.tracker.observe(result, self.policy)

    def series(
        self,
        name: str,
        times: Iterable[float],
        status_at: Callable[[float], Status] | None = None,
        latency: float | None = 0.05,
    ) -> list[Observation]:
        """One observation per time; `status_at(t)` picks the status (default: up)."""
        out = []
        for t in times:
            status = status_at(t) if status_at is not None else Status.UP
            out.append(self.observe(make_result(name, t, status, latency=latency)))
        return out


def every(start: float, end: float, step: float) -> list[float]:
    """start, start + step, ... up to and including end."""
    n = round((end - start) / step)
    return [start + i * step for i in range(n + 1)]
