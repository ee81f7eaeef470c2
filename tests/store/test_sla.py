"""Window maths, hour splitting, proration and percentiles: pure functions, no store."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from probe.store.sla import (
    BUCKETS_MS,
    WINDOWS,
    HourRollup,
    SLAFigures,
    bucket_index,
    edge_fraction,
    figures_from_rollups,
    parse_window,
    percentile_from_histogram,
    split_by_hour,
    window_bounds,
)

BERLIN = ZoneInfo("Europe/Berlin")
H = 3600.0


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_windows_listed() -> None:
    assert WINDOWS == ("24h", "7d", "30d", "90d", "all", "hour", "day", "week", "month")


@pytest.mark.parametrize("text", ["7d", " 7D ", "all", "Month"])
def test_parse_window_accepts(text: str) -> None:
    assert parse_window(text) == text.strip().lower()


def test_parse_window_lists_accepted_names() -> None:
    with pytest.raises(ValueError, match="24h, 7d, 30d, 90d, all, hour, day, week, month"):
        parse_window("fortnight")


@pytest.mark.parametrize(("window", "seconds"), [("24h", 86400), ("7d", 7 * 86400)])
def test_rolling_windows_end_now(window: str, seconds: int) -> None:
    now = datetime(2025, 6, 1, 12, 34, 56, tzinfo=UTC)
    assert window_bounds(window, now, BERLIN) == (now.timestamp() - seconds, now.timestamp())
    assert window_bounds("all", now, BERLIN) == (0.0, now.timestamp())


def test_window_needs_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_bounds("day", datetime(2025, 1, 1), BERLIN)


@pytest.mark.parametrize(
    ("now", "start", "end", "hours"),
    [
        # Spring forward, last Sunday of March: that day has 23 hours.
        (local(2025, 3, 31, 10), local(2025, 3, 30), local(2025, 3, 31), 23),
        # Fall back, last Sunday of October: 25 hours.
        (local(2025, 10, 27, 0, 30), local(2025, 10, 26), local(2025, 10, 27), 25),
        # An ordinary day; "now" exactly at midnight still means the day before.
        (local(2025, 6, 2), local(2025, 6, 1), local(2025, 6, 2), 24),
    ],
)
def test_last_complete_day_is_dst_correct(
    now: datetime, start: datetime, end: datetime, hours: int
) -> None:
    lo, hi = window_bounds("day", now, BERLIN)
    assert (lo, hi) == (start.timestamp(), end.timestamp())
    assert hi - lo == hours * H


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (datetime(2025, 6, 1, 10, 20, tzinfo=UTC), datetime(2025, 6, 1, 9, tzinfo=UTC)),
        # Fall back: the second 02:xx (CET, 01:xx UTC) ends the first 02:00-03:00 (CEST).
        (datetime(2025, 10, 26, 1, 30, tzinfo=UTC), datetime(2025, 10, 26, 0, tzinfo=UTC)),
        # Spring forward: 03:10 CEST (01:10 UTC) follows 01:00-02:00 CET directly.
        (datetime(2025, 3, 30, 1, 10, tzinfo=UTC), datetime(2025, 3, 30, 0, tzinfo=UTC)),
        # A zone offset by half an hour: its clock hours start at :30 UTC.
        (datetime(2025, 6, 1, 10, 20, tzinfo=UTC), datetime(2025, 6, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_last_complete_clock_hour(now: datetime, start: datetime) -> None:
    tz = ZoneInfo("Asia/Kolkata") if start.minute == 30 else BERLIN
    assert window_bounds("hour", now, tz) == (start.timestamp(), start.timestamp() + H)


def test_last_complete_day_uses_the_given_zone_not_utc() -> None:
    # 23:30 UTC on 1 June is already 2 June in Berlin, so the last complete day is 1 June.
    now = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)
    assert window_bounds("day", now, BERLIN) == (
        local(2025, 6, 1).timestamp(),
        local(2025, 6, 2).timestamp(),
    )
    assert (
        window_bounds("day", now, ZoneInfo("UTC"))[0]
        == datetime(2025, 5, 31, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize(
    ("now", "monday", "hours"),
    [
        (local(2025, 4, 2, 15), local(2025, 3, 24), 7 * 24 - 1),  # holds the spring change
        (local(2025, 3, 31, 0, 0), local(2025, 3, 24), 7 * 24 - 1),  # Monday 00:00 exactly
        (local(2025, 10, 29), local(2025, 10, 20), 7 * 24 + 1),
        (local(2025, 6, 8, 23, 59), local(2025, 5, 26), 7 * 24),  # a Sunday: not yet complete
    ],
)
def test_last_complete_week_starts_monday(now: datetime, monday: datetime, hours: int) -> None:
    lo, hi = window_bounds("week", now, BERLIN)
    assert lo == monday.timestamp()
    assert datetime.fromtimestamp(lo, BERLIN).weekday() == 0
    assert hi - lo == hours * H


@pytest.mark.parametrize(
    ("now", "first", "hours"),
    [
        (local(2025, 4, 15), local(2025, 3, 1), 31 * 24 - 1),
        (local(2025, 11, 1, 0, 0), local(2025, 10, 1), 31 * 24 + 1),
        (local(2026, 1, 10), local(2025, 12, 1), 31 * 24),  # across the year
        (local(2024, 3, 5), local(2024, 2, 1), 29 * 24),  # leap February
    ],
)
def test_last_complete_month(now: datetime, first: datetime, hours: int) -> None:
    lo, hi = window_bounds("month", now, BERLIN)
    assert lo == first.timestamp()
    assert hi - lo == hours * H


def test_split_by_hour() -> None:
    assert split_by_hour(3000, 4800) == [(0, 3000, 3600), (3600, 3600, 4800)]
    assert split_by_hour(3600, 7200) == [(3600, 3600, 7200)]
    assert split_by_hour(100, 100) == []
    parts = split_by_hour(1000.5, 3 * H + 10)
    assert [h for h, _, _ in parts] == [0, 3600, 7200, 10800]
    assert sum(b - a for _, a, b in parts) == pytest.approx(3 * H + 10 - 1000.5)


def test_bucket_bounds_are_inclusive_upper() -> None:
    assert bucket_index(0.0) == 0
    assert bucket_index(1.0) == 0
    assert bucket_index(1.0001) == 1
    assert bucket_index(10**9) == len(BUCKETS_MS) - 1


def hist_of(latencies_ms: list[float]) -> list[int]:
    counts = [0] * len(BUCKETS_MS)
    for ms in latencies_ms:
        counts[bucket_index(ms)] += 1
    return counts


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def bucket_width(ms: float) -> float:
    i = bucket_index(ms)
    return BUCKETS_MS[i] - (BUCKETS_MS[i - 1] if i else 0.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_percentile_within_a_bucket(seed: int, q: float) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(4.5, 0.8 + seed / 5) for _ in range(2000)]
    estimate = percentile_from_histogram(hist_of(values), q, lo=min(values), hi=max(values))
    truth = exact_quantile(values, q)
    assert estimate is not None
    assert abs(estimate - truth) <= bucket_width(truth)


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = hist_of([120.0] * 100)  # all in (100, 150]
    assert percentile_from_histogram(counts, 0.5) == pytest.approx(125.0)
    # The seen min/max clamp the estimate to what really happened.
    assert percentile_from_histogram(counts, 0.5, lo=120.0, hi=120.0) == 120.0


def test_percentile_of_the_open_last_bucket_uses_the_max_seen() -> None:
    counts = hist_of([40_000.0, 50_000.0])
    assert percentile_from_histogram(counts, 0.99) == 30_000.0
    value = percentile_from_histogram(counts, 0.99, hi=50_000.0)
    assert value is not None and 30_000.0 < value <= 50_000.0


def test_percentile_edge_cases() -> None:
    assert percentile_from_histogram([0] * len(BUCKETS_MS), 0.95) is None
    with pytest.raises(ValueError, match="quantile"):
        percentile_from_histogram(hist_of([1.0]), 95)
    with pytest.raises(ValueError, match="bucket counts"):
        percentile_from_histogram([1, 2, 3], 0.5)


def rollup(
    hour: int,
    up: float = 0.0,
    down: float = 0.0,
    checks: int = 0,
    measured: tuple[float, float] | None = None,
) -> HourRollup:
    """A rollup row; its time measured over the whole hour unless `measured` says otherwise."""
    measured = measured or (hour, hour + H)
    hist = [0] * len(BUCKETS_MS)
    hist[bucket_index(50.0)] = checks
    return HourRollup(
        hour=hour,
        checks_up=checks,
        checks_down=0,
        time_up=up,
        time_down=down,
        latency_sum=0.05 * checks,
        latency_count=checks,
        latency_min=0.05 if checks else None,
        latency_max=0.05 if checks else None,
        histogram=tuple(hist),
        measured_from=measured[0] if up or down else None,
        measured_to=measured[1] if up or down else None,
    )


def test_edge_hours_are_prorated_and_counted_only_when_they_start_inside() -> None:
    rows = [rollup(0, up=3600, checks=60), rollup(3600, up=1800, down=1800, checks=60)]
    figures = figures_from_rollups(rows, 1800, 5400, incidents=1)
    assert figures.up_s == pytest.approx(1800 + 900)
    assert figures.down_s == pytest.approx(900)
    assert figures.checks == 60  # only the hour starting at 3600 is inside the window
    assert figures.incidents == 1
    assert figures.sla == pytest.approx(75.0)
    assert figures.p95_ms == pytest.approx(50.0)


def test_the_hour_in_progress_counts_all_its_measured_time() -> None:
    # At 01:10 the current hour holds 10 minutes of measured time; a window ending now
    # must count all of it, not 10/60 of it.
    now = H + 600
    rows = [rollup(0, up=3600, checks=60), rollup(3600, down=600, checks=10, measured=(H, now))]
    figures = figures_from_rollups(rows, now - H, now)
    assert figures.down_s == pytest.approx(600)
    assert figures.up_s == pytest.approx(3000)  # the first hour, cut 10 minutes in
    assert figures.checks == 10
    assert edge_fraction(rows[1], now - H, now) == 1.0
    assert edge_fraction(rows[1], now - H, H + 300) == pytest.approx(0.5)
    assert edge_fraction(rollup(0), 0, 10) == 0.0  # nothing measured


def test_no_data_has_no_sla() -> None:
    assert SLAFigures().sla is None
    assert figures_from_rollups([], 0, 86400) == SLAFigures()
    assert SLAFigures(up_s=10, down_s=0).sla == 100.0


def test_checks_down_are_counted_apart():
    from probe.store.sla import HOUR, figures_from_rollups

    rows = [
        HourRollup(
            hour=0,
            checks_up=7,
            checks_down=3,
            time_up=3000.0,
            time_down=600.0,
            latency_sum=0.0,
            latency_count=0,
            latency_min=None,
            latency_max=None,
            histogram=tuple([0] * len(BUCKETS_MS)),
            measured_from=0.0,
            measured_to=3600.0,
        )
    ]
    figures = figures_from_rollups(rows, 0, HOUR)
    assert (figures.checks, figures.checks_down) == (10, 3)
