"""What the writer has taken off its queue and not yet committed, in the form it is written.

`Batch.add` turns an Observation into its rows at once: the raw result, the transition if
any, the tracker's state (the latest per probe wins) and the rollup sums per (probe, hour).
A batch that fails to commit is kept whole for the next attempt; only its raw results are
bounded, so a long outage of the disk never loses SLA figures.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from probe.core.maintenance import outside
from probe.core.result import Status
from probe.core.tracker import Observation, ProbeState
from probe.store.columns import details_json, valid_text
from probe.store.outbox import OutboxWrite
from probe.store.rollups import RollupSums
from probe.store.sla import hour_start, split_by_hour

__all__ = ["MAX_PENDING_RESULTS", "Batch", "FlushMarker"]

# While writes fail (disk full, a read-only file system), raw results wait in memory up to
# this many; past it the oldest raw rows are dropped (logged). A raw row held costs about
# 370 bytes (measured with short messages and details), so the bound is about 75 MB: 3 hours
# of 1,000 probes checked every minute. Rollups, transitions and states are tiny and always
# kept, so SLA figures survive even a long outage of the disk.
MAX_PENDING_RESULTS = 200_000


def _finite(value: float | None) -> float | None:
    """`value` as a float, None when it is not a finite number: SQLite would keep an infinity
    that no reader expects, and read NaN back as NULL anyway."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class FlushMarker:
    """Queued after the observations it covers: resolved once they are committed (or not).
    With `stop`, the writer stops after that commit (the store's close)."""

    future: concurrent.futures.Future[None]
    stop: bool = False


class Batch:
    """Observations taken off the queue and not yet committed, in the form they are written."""

    __slots__ = (
        "count",
        "dropped",
        "outbox_adds",
        "outbox_updates",
        "results",
        "rollups",
        "states",
        "transitions",
    )

    def __init__(self) -> None:
        # Oldest first; a deque, so that dropping the oldest past the bound costs O(1).
        self.results: deque[tuple[Any, ...]] = deque(maxlen=MAX_PENDING_RESULTS)
        self.transitions: list[tuple[Any, ...]] = []
        self.states: dict[str, ProbeState] = {}
        self.rollups: dict[tuple[str, int], RollupSums] = {}
        self.count = 0
        self.dropped = 0
        # Written after the observations, adds before updates: an update is only ever queued
        # after the add of its row (the alerting awaits the add before it sends).
        self.outbox_adds: list[tuple[Any, ...]] = []
        self.outbox_updates: list[tuple[Any, ...]] = []

    def add_outbox(self, op: OutboxWrite) -> None:
        self.outbox_adds.extend(op.adds)
        if op.update is not None:
            self.outbox_updates.append(op.update)

    def _sums(self, probe: str, hour: int) -> RollupSums:
        sums = self.rollups.get((probe, hour))
        if sums is None:
            sums = self.rollups[(probe, hour)] = RollupSums()
        return sums

    def add(self, obs: Observation) -> None:
        r = obs.result
        t = r.time.timestamp()
        latency = _finite(r.latency)
        if latency is not None:
            latency = max(0.0, latency)
        row = (
            r.name,
            r.kind,
            r.endpoint,
            t,
            r.status.value,
            latency,
            valid_text(r.message),
            details_json(r.details),
            r.http_status,
            _finite(r.cert_expiry),
        )
        if len(self.results) == MAX_PENDING_RESULTS:
            self.dropped += 1  # the append pushes the oldest out
        self.results.append(row)
        sums = self._sums(r.name, hour_start(t))
        # Checks count by what the check said, not by the tracker's (threshold-delayed) status.
        if r.status is Status.UP:
            sums.checks_up += 1
        elif r.status is Status.DOWN:
            sums.checks_down += 1
        if latency is not None:
            sums.add_latency(latency)
        span = obs.span
        if span is not None and span.status is not Status.UNKNOWN:
            # Time inside a maintenance window counts as neither up nor down.
            for start, end in outside(span.start, span.end, obs.uncounted):
                for hour, part_start, part_end in split_by_hour(start, end):
                    self._sums(r.name, hour).add_time(span.status, part_start, part_end)
        tr = obs.transition
        if tr is not None:
            self.transitions.append(
                (tr.name, tr.time, tr.previous.value, tr.current.value, valid_text(tr.message))
            )
        self.states[obs.state.name] = obs.state
        self.count += 1

    def __bool__(self) -> bool:
        return self.count > 0 or bool(self.outbox_adds) or bool(self.outbox_updates)
