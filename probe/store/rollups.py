"""Rollup rows in the making: what a batch adds to a (probe, hour) or (probe, UTC day) row.

The writer sums a batch's observations per hour in memory (`RollupSums`), adds those sums to
the stored row (`merged_row`) and writes it back whole: one read and one replace per (probe,
hour) and per (probe, day), however many results the batch holds. The daily rows are the sums
of the hourly ones (`sum_by_day`); the statements here read and replace both tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probe.core.result import Status
from probe.store.columns import histogram_text
from probe.store.sla import BUCKETS_MS, bucket_index, day_start

__all__ = [
    "REPLACE_DAILY",
    "REPLACE_HOURLY",
    "SELECT_DAILY",
    "SELECT_HOURLY",
    "RollupSums",
    "sum_by_day",
]

# The columns after the key, in the order of `RollupSums.merged_row` (a stored row's [0:11]).
_COLUMNS = (
    "checks_up, checks_down, time_up, time_down, latency_sum, latency_count,"
    " latency_min, latency_max, histogram, measured_from, measured_to"
)
SELECT_HOURLY = f"SELECT {_COLUMNS} FROM rollups_hourly WHERE probe = ? AND hour = ?"
REPLACE_HOURLY = (
    f"INSERT OR REPLACE INTO rollups_hourly (probe, hour, {_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_DAILY = f"SELECT {_COLUMNS} FROM rollups_daily WHERE probe = ? AND day = ?"
REPLACE_DAILY = (
    f"INSERT OR REPLACE INTO rollups_daily (probe, day, {_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class RollupSums:
    """One (probe, hour) rollup contribution of a batch, merged into the row on write."""

    checks_up: int = 0
    checks_down: int = 0
    time_up: float = 0.0
    time_down: float = 0.0
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_min: float | None = None
    latency_max: float | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_MS))
    measured_from: float | None = None
    measured_to: float | None = None

    def add_time(self, status: Status, start: float, end: float) -> None:
        if status is Status.UP:
            self.time_up += end - start
        else:
            self.time_down += end - start
        self.measured_from = _least(self.measured_from, start)
        self.measured_to = _greatest(self.measured_to, end)

    def add_latency(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        self.latency_min = _least(self.latency_min, seconds)
        self.latency_max = _greatest(self.latency_max, seconds)
        self.histogram[bucket_index(seconds * 1000.0)] += 1

    def merge(self, other: RollupSums) -> None:
        """Add `other` (another hour of the same day, or the same hour) into this one."""
        self.checks_up += other.checks_up
        self.checks_down += other.checks_down
        self.time_up += other.time_up
        self.time_down += other.time_down
        self.latency_sum += other.latency_sum
        self.latency_count += other.latency_count
        self.latency_min = _least(self.latency_min, other.latency_min)
        self.latency_max = _greatest(self.latency_max, other.latency_max)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.measured_from = _least(self.measured_from, other.measured_from)
        self.measured_to = _greatest(self.measured_to, other.measured_to)

    def merged_row(self, probe: str, hour: int, old: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """The full row to write: this contribution plus what is stored (`old`), if any."""
        hist = list(self.histogram)
        lo, hi = self.latency_min, self.latency_max
        first, last = self.measured_from, self.measured_to
        values = [
            self.checks_up,
            self.checks_down,
            self.time_up,
            self.time_down,
            self.latency_sum,
            self.latency_count,
        ]
        if old is not None:
            values = [a + b for a, b in zip(values, old[:6], strict=True)]
            lo, hi = _least(lo, old[6]), _greatest(hi, old[7])
            first, last = _least(first, old[9]), _greatest(last, old[10])
            try:
                old_hist = json.loads(old[8])
            except (TypeError, ValueError):
                old_hist = []  # an unreadable histogram must not block every later write
            if len(old_hist) == len(hist):
                hist = [a + b for a, b in zip(hist, old_hist, strict=True)]
        return (probe, hour, *values, lo, hi, histogram_text(hist), first, last)


def sum_by_day(hours: Mapping[tuple[str, int], RollupSums]) -> dict[tuple[str, int], RollupSums]:
    """The (probe, hour) sums of a batch added up per (probe, UTC day), in first-seen order."""
    days: dict[tuple[str, int], RollupSums] = {}
    for (probe, hour), sums in hours.items():
        day = days.get((probe, day_start(hour)))
        if day is None:
            day = days[(probe, day_start(hour))] = RollupSums()
        day.merge(sums)
    return days


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
