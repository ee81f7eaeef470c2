"""SLA maths: windows, hourly rollups and latency percentiles. Pure functions, no I/O.

The store keeps one rollup row per probe and hour (`HourRollup`); everything here turns those
rows into the figures users see (`SLAFigures`) for a window of time. Times are Unix seconds;
latencies in the store are seconds, latencies reported here are milliseconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "BUCKETS_MS",
    "DAY",
    "HOUR",
    "WINDOWS",
    "HourRollup",
    "SLAFigures",
    "bucket_index",
    "day_start",
    "edge_fraction",
    "figures_from_rollups",
    "hour_start",
    "parse_window",
    "percentile_from_histogram",
    "split_by_hour",
    "window_bounds",
]

HOUR = 3600
DAY = 24 * HOUR

# Upper bounds (inclusive) of the latency histogram buckets, in milliseconds. Dense where
# typical answers fall (1 ms to 2 s), so p95/p99 interpolated inside a bucket stay close;
# changing this tuple changes the meaning of stored histograms and needs a migration.
BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10000,
    30000,
    math.inf,
)

_ROLLING: dict[str, float] = {
    "24h": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
    "90d": 90 * 86400.0,
}
WINDOWS: tuple[str, ...] = (*_ROLLING, "all", "hour", "day", "week", "month")


@dataclass(frozen=True, slots=True)
class SLAFigures:
    """What one probe did over one window. `incidents` counts transitions to down."""

    up_s: float = 0.0
    down_s: float = 0.0
    checks: int = 0
    incidents: int = 0
    p95_ms: float | None = None
    p99_ms: float | None = None
    checks_down: int = 0  # of `checks`, those whose result was down (EaseProbe's probe_summary)

    @property
    def sla(self) -> float | None:
        """Percent of measured time spent up; None when no time was measured."""
        measured = self.up_s + self.down_s
        if measured <= 0:
            return None
        # Clamped: float sums of prorated hours can land a hair outside [0, 100].
        return min(100.0, max(0.0, 100.0 * self.up_s / measured))

    def to_json(self) -> dict[str, Any]:
        """The figures as `probe sla --format json` prints them (README.md, `probe sla`)."""
        return {
            "sla": self.sla,
            "up_s": self.up_s,
            "down_s": self.down_s,
            "checks": self.checks,
            "incidents": self.incidents,
            "p95_ms": self.p95_ms,
        }


@dataclass(frozen=True, slots=True)
class HourRollup:
    """One row of `rollups_hourly`: the hour starting at `hour` (Unix seconds)."""

    hour: int
    checks_up: int
    checks_down: int
    time_up: float
    time_down: float
    latency_sum: float
    latency_count: int
    latency_min: float | None  # seconds
    latency_max: float | None  # seconds
    histogram: tuple[int, ...]
    # The stretch of the hour that holds its measured time (earliest span start, latest span
    # end, both inside the hour); None when no time was measured in it.
    measured_from: float | None = None
    measured_to: float | None = None


def parse_window(s: str) -> str:
    """Validate a window name; the ValueError lists the accepted ones."""
    name = s.strip().lower()
    if name not in WINDOWS:
        raise ValueError(f"unknown SLA window {s!r}; expected one of: {', '.join(WINDOWS)}")
    return name


def _local_midnight(day: date, tz: tzinfo) -> float:
    # Building the local wall time and letting the zone resolve it is what makes a day 23 or
    # 25 hours long across a DST change; adding timedelta(days=1) to an aware datetime would not.
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def window_bounds(window: str, now: datetime, tz: tzinfo) -> tuple[float, float]:
    """[start, end) of `window` in Unix seconds, as of `now`.

    Rolling windows ("24h", "7d", "30d", "90d") end at `now`; "all" starts at 0. "day", "week"
    and "month" are the last *complete* calendar day, week (Monday to Monday) or month in `tz`,
    so they end at the most recent local midnight that starts a day, week or month. "hour" is
    the last complete clock hour in `tz` (it ends at the most recent local HH:00; in a zone
    offset by a fraction of an hour that is not a UTC hour boundary).
    """
    name = parse_window(window)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = now.timestamp()
    if name in _ROLLING:
        return t - _ROLLING[name], t
    if name == "all":
        return 0.0, t
    if name == "hour":
        # astimezone sets `fold`, so the hour that repeats when clocks go back resolves to the
        # right instant; the hour before is always 3600 s earlier (no zone shifts mid-hour).
        end_hour = now.astimezone(tz).replace(minute=0, second=0, microsecond=0).timestamp()
        return end_hour - HOUR, end_hour
    today = now.astimezone(tz).date()
    if name == "day":
        end = today
        start = end - timedelta(days=1)
    elif name == "week":
        end = today - timedelta(days=today.weekday())
        start = end - timedelta(days=7)
    else:
        end = today.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
    return _local_midnight(start, tz), _local_midnight(end, tz)


def hour_start(t: float) -> int:
    """The start of the UTC hour holding `t` (Unix hours never depend on the time zone)."""
    return int(t // HOUR) * HOUR


def day_start(t: float) -> int:
    """The start of the UTC day holding `t`."""
    return int(t // DAY) * DAY


def split_by_hour(start: float, end: float) -> list[tuple[int, float, float]]:
    """Cut [start, end) at hour boundaries: (hour start, part start, part end) triples."""
    parts: list[tuple[int, float, float]] = []
    t = start
    while t < end:
        hour = hour_start(t)
        stop = min(end, hour + HOUR)
        parts.append((hour, t, stop))
        t = stop
    return parts


def edge_fraction(row: HourRollup, start: float, end: float) -> float:
    """The share of an hour's measured time that falls inside [start, end).

    1 for an hour wholly inside the window. For an hour the window edge cuts, the measured
    time is taken as spread evenly over the stretch of the hour that holds it
    ([measured_from, measured_to]), and the share is the part of that stretch inside the
    window. That stretch, not the whole hour, matters for the hour in progress: a window
    ending now must count all of the current hour's time measured so far, not the fraction
    of the hour that has elapsed.
    """
    if start <= row.hour and row.hour + HOUR <= end:
        return 1.0
    lo, hi = row.measured_from, row.measured_to
    if lo is None or hi is None:
        return 0.0
    if hi <= lo:
        return 1.0 if start <= lo < end else 0.0
    return max(0.0, min(end, hi) - max(start, lo)) / (hi - lo)


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket for a latency: the first whose upper bound is >= it."""
    return bisect_left(BUCKETS_MS, latency_ms)


def percentile_from_histogram(
    buckets: Sequence[int],
    q: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> float | None:
    """The q-quantile (q in [0, 1], e.g. 0.95) in ms of the counts in `buckets` (per BUCKETS_MS).

    The value is interpolated linearly inside the bucket where the rank falls, so it is exact
    to within that bucket's width. `lo` / `hi` (ms), the smallest and largest latency actually
    seen, tighten the result: they clamp it, and `hi` gives the open last bucket an upper bound.
    None when the histogram is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    if len(buckets) != len(BUCKETS_MS):
        raise ValueError(f"expected {len(BUCKETS_MS)} bucket counts, got {len(buckets)}")
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    value = BUCKETS_MS[-2]
    for i, count in enumerate(buckets):
        if count <= 0:
            continue
        if seen + count >= rank:
            lower = BUCKETS_MS[i - 1] if i > 0 else 0.0
            upper = BUCKETS_MS[i]
            if math.isinf(upper):
                upper = hi if hi is not None and hi > lower else lower
            value = lower + (upper - lower) * max(0.0, rank - seen) / count
            break
        seen += count
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    return value


def figures_from_rollups(
    rows: Iterable[HourRollup], start: float, end: float, incidents: int = 0
) -> SLAFigures:
    """Sum hourly rollups over the window [start, end).

    Rollups cover whole hours, but window edges rarely do. For an hour only partly inside the
    window, its time_up and time_down are prorated by the fraction of its measured stretch
    that overlaps the window (`edge_fraction`: the time is assumed spread evenly over that
    stretch; for a fully measured hour this is the overlap fraction of the hour), so
    up_s + down_s never exceeds end - start. Counts cannot be split that way: an hour's checks
    and latencies count only if the hour *starts* inside the window, so every check is counted
    in exactly one of two adjacent windows.
    """
    up = down = 0.0
    checks = checks_down = 0
    if not end > start:
        return SLAFigures(incidents=incidents)
    hist = [0] * len(BUCKETS_MS)
    lo: float | None = None
    hi: float | None = None
    for row in rows:
        if min(end, row.hour + HOUR) <= max(start, row.hour):
            continue
        fraction = edge_fraction(row, start, end)
        up += row.time_up * fraction
        down += row.time_down * fraction
        if not start <= row.hour < end:
            continue
        checks += row.checks_up + row.checks_down
        checks_down += row.checks_down
        for i, count in enumerate(row.histogram):
            hist[i] += count
        if row.latency_min is not None:
            lo = row.latency_min if lo is None else min(lo, row.latency_min)
        if row.latency_max is not None:
            hi = row.latency_max if hi is None else max(hi, row.latency_max)
    lo_ms = None if lo is None else lo * 1000.0
    hi_ms = None if hi is None else hi * 1000.0
    return SLAFigures(
        up_s=up,
        down_s=down,
        checks=checks,
        checks_down=checks_down,
        incidents=incidents,
        p95_ms=percentile_from_histogram(hist, 0.95, lo=lo_ms, hi=hi_ms),
        p99_ms=percentile_from_histogram(hist, 0.99, lo=lo_ms, hi=hi_ms),
    )
