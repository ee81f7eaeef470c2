"""Rollup rows in the making: what a batch adds to a (probe, hour) or (probe, UTC day) row.

The writer sums a batch's observations per hour in memory (`RollupSums`), adds those sums to
the stored row (`merged_row`) and writes it back whole: at most one read and one replace per
(probe, hour) and per (probe, day), however many results the batch holds. The daily rows are
the sums of the hourly ones (`sum_by_day`); the statements here read and replace both tables.

The read is skipped when the writer still holds the row it last committed (`LatestRows`, one
per table): at a steady rate every batch adds to the same hour and day of every probe, so
reading back what it had just written (and parsing its histogram again) was much of its work.
"""

from __future__ import annotations

import json
import operator
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
    "LatestRows",
    "RollupRow",
    "RollupSums",
    "stored_row",
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


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One rollup row as written: `columns` in the order of REPLACE_HOURLY / REPLACE_DAILY (the
    key first), and the histogram once more as counts, so merging into it needs no JSON parse.
    """

    columns: tuple[Any, ...]
    histogram: list[int]  # [] when the stored text could not be read as a histogram


def stored_row(probe: str, start: int, fetched: tuple[Any, ...] | None) -> RollupRow | None:
    """The row SELECT_HOURLY or SELECT_DAILY fetched for (probe, start); None if there is none."""
    if fetched is None:
        return None
    try:
        histogram = json.loads(fetched[8])
    except (TypeError, ValueError):
        histogram = None
    if not isinstance(histogram, list):
        histogram = []  # an unreadable histogram must not block every later write
    return RollupRow((probe, start, *fetched), histogram)


class LatestRows:
    """The row the writer last committed per probe, in one rollup table, for the newest hour
    (or day) it wrote for that probe: about one entry per probe, however long it runs.

    Only what was committed may be kept, and nothing that may since have changed in the file:
    the writer stages its rows and keeps them after COMMIT, and forgets everything when a
    transaction fails, when it prunes, and when another connection has written the file.
    """

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[str, RollupRow] = {}

    def get(self, probe: str, start: int) -> RollupRow | None:
        row = self._rows.get(probe)
        if row is None or row.columns[1] != start:
            return None
        return row

    def keep(self, rows: list[RollupRow]) -> None:
        """Remember committed `rows`, each unless a newer hour (or day) of its probe is held:
        late results for an older hour are rare, and the newest one is where the next come."""
        held = self._rows
        for row in rows:
            # columns[0:2] is the key (probe, start).
            probe = row.columns[0]
            current = held.get(probe)
            if current is None or current.columns[1] <= row.columns[1]:
                held[probe] = row

    def clear(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


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

    def merged_row(self, probe: str, start: int, old: RollupRow | None) -> RollupRow:
        """The full row to write: this contribution plus what is stored (`old`), if any."""
        if old is None:
            hist = list(self.histogram)
            columns = (
                probe,
                start,
                self.checks_up,
                self.checks_down,
                self.time_up,
                self.time_down,
                self.latency_sum,
                self.latency_count,
                self.latency_min,
                self.latency_max,
                histogram_text(hist),
                self.measured_from,
                self.measured_to,
            )
            return RollupRow(columns, hist)
        # Written out rather than zipped: this runs twice per probe and batch.
        stored = old.columns
        hist = self.histogram
        if len(old.histogram) == len(hist):
            hist = list(map(operator.add, hist, old.histogram))
        else:
            hist = list(hist)
        columns = (
            probe,
            start,
            self.checks_up + stored[2],
            self.checks_down + stored[3],
            self.time_up + stored[4],
            self.time_down + stored[5],
            self.latency_sum + stored[6],
            self.latency_count + stored[7],
            _least(self.latency_min, stored[8]),
            _greatest(self.latency_max, stored[9]),
            histogram_text(hist),
            _least(self.measured_from, stored[11]),
            _greatest(self.measured_to, stored[12]),
        )
        return RollupRow(columns, hist)


def sum_by_day(hours: Mapping[tuple[str, int], RollupSums]) -> dict[tuple[str, int], RollupSums]:
    """The (probe, hour) sums of a batch added up per (probe, UTC day), in first-seen order.

    A day with a single hour in the batch (nearly all of them) gets that hour's own sums, not
    a copy: the caller only reads them, and a batch that fails is summed again from its hours.
    """
    by_day: dict[tuple[str, int], list[RollupSums]] = {}
    for (probe, hour), sums in hours.items():
        key = (probe, day_start(hour))
        same_day = by_day.get(key)
        if same_day is None:
            by_day[key] = [sums]
        else:
            same_day.append(sums)
    return {key: parts[0] if len(parts) == 1 else _total(parts) for key, parts in by_day.items()}


def _total(parts: list[RollupSums]) -> RollupSums:
    total = RollupSums()
    for sums in parts:
        total.merge(sums)
    return total


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
