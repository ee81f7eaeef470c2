"""Daily rollups (schema step 3): kept by the writer, backfilled by the migration, and read by
sla_many / daily_uptime with the same results as the hourly rows alone."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import SCHEMA_VERSION, Store, figures_from_rollups, queries
from tests.store.helpers import NOW, UNDO_STEP_4, Clock, Feeder, every, make_result

DAY = 86400.0
# The sums of rollups_hourly per (probe, UTC day), as rollups_daily must hold them.
_HOURLY_BY_DAY = """
SELECT probe, hour - hour % 86400 AS day, sum(checks_up), sum(checks_down), sum(time_up),
       sum(time_down), sum(latency_sum), sum(latency_count), min(latency_min), max(latency_max),
       min(measured_from), max(measured_to)
FROM rollups_hourly GROUP BY probe, day ORDER BY probe, day
"""
_DAILY = """
SELECT probe, day, checks_up, checks_down, time_up, time_down, latency_sum, latency_count,
       latency_min, latency_max, measured_from, measured_to
FROM rollups_daily ORDER BY probe, day
"""


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def same_rows(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y)


Hists = dict[tuple[str, int], list[int]]


def histograms_by_day(path: Path) -> tuple[Hists, Hists]:
    hourly: Hists = {}
    for probe, hour, hist in raw(path, "SELECT probe, hour, histogram FROM rollups_hourly"):
        counts = [int(c) for c in str(hist).strip("[]").split(",")]
        key = (str(probe), int(hour) // 86400 * 86400)
        old = hourly.setdefault(key, [0] * len(counts))
        hourly[key] = [a + b for a, b in zip(old, counts, strict=True)]
    daily = {
        (str(p), int(d)): [int(c) for c in str(h).strip("[]").split(",")]
        for p, d, h in raw(path, "SELECT probe, day, histogram FROM rollups_daily")
    }
    return hourly, daily


async def fill(path: Path, days: int = 5, seed: int = 1) -> None:
    """`days` days of checks every 5 min for three probes, with random outages, gaps and
    latencies, written through the real writer in several batches."""
    rng = random.Random(seed)
    feeder = Feeder(Policy(interval=300))
    times = every(NOW - days * DAY + 1234.5, NOW - 60, 300)
    async with Store.open(path, clock=Clock()) as store:
        for i, t in enumerate(times):
            for name in ("a", "b", "c"):
                if name == "c" and (NOW - 3 * DAY) < t < (NOW - 2 * DAY + 7000):
                    continue  # a gap of more than a day
                status = Status.DOWN if rng.random() < 0.1 else Status.UP
                latency = rng.choice([None, rng.uniform(0.001, 3.0)])
                store.submit(feeder.observe(make_result(name, t, status, latency=latency)))
            if i % 97 == 0:
                await store.flush()  # days built over several transactions


async def test_writer_keeps_daily_rows_equal_to_the_hourly_sums(db_path: Path) -> None:
    await fill(db_path)
    same_rows(raw(db_path, _DAILY), raw(db_path, _HOURLY_BY_DAY))
    hourly, daily = histograms_by_day(db_path)
    assert daily == hourly


async def test_migration_3_backfills_daily_rows(db_path: Path) -> None:
    await fill(db_path)
    written = raw(db_path, _DAILY)
    conn = sqlite3.connect(db_path)
    conn.executescript(f"{UNDO_STEP_4} DROP TABLE rollups_daily; PRAGMA user_version = 2;")
    conn.close()
    Store.open(db_path, clock=Clock()).close_sync()
    assert raw(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    same_rows(raw(db_path, _DAILY), written)
    hourly, daily = histograms_by_day(db_path)
    assert daily == hourly


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("daily") / "probe.db"
    asyncio.run(fill(path, days=6, seed=7))
    return path


def _hourly_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store read every hour from rollups_hourly, as before the daily rollups."""
    real = queries.window_params

    def hourly(names: list[str], start: float, end: float) -> dict[str, object]:
        params = real(names, start, end)
        params["day_from"] = params["day_to"] = end
        return params

    monkeypatch.setattr(queries, "window_params", hourly)


def random_windows(seed: int, n: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.uniform(NOW - 7 * DAY, NOW + 3600)
        b = rng.uniform(a - 3600, NOW + 2 * 3600)
        if rng.random() < 0.3:
            a = round(a / DAY) * DAY  # windows starting or ending on midnight
        if rng.random() < 0.3:
            b = round(b / 3600) * 3600
        out.append((a, b))
    out += [(0.0, NOW), (NOW - 3 * DAY, NOW - DAY), (NOW - 2 * DAY - 1, NOW - DAY + 1)]
    return out


@pytest.mark.slow
def test_daily_plus_hourly_equals_hourly_only(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows = random_windows(11, 150)
    names = ["a", "b", "c", "none"]
    store = Store.open(filled, clock=Clock())
    try:
        mixed = [store.sla_many(names, a, b) for a, b in windows]
        with monkeypatch.context() as m:
            _hourly_only(m)
            hourly = [store.sla_many(names, a, b) for a, b in windows]
        references = [
            {n: figures_from_rollups(store.rollups(n, a, b), a, b) for n in names}
            for a, b in windows
        ]
    finally:
        store.close_sync()
    for (a, b), sla, sla_h, ref in zip(windows, mixed, hourly, references, strict=True):
        for n in names:
            got, want, r = sla[n], sla_h[n], ref[n]
            where = f"{n} [{a}, {b})"
            assert got.up_s == pytest.approx(want.up_s, abs=1e-6), where
            assert got.down_s == pytest.approx(want.down_s, abs=1e-6), where
            assert (got.checks, got.checks_down) == (want.checks, want.checks_down), where
            assert got.incidents == want.incidents, where
            assert got.p95_ms == pytest.approx(want.p95_ms), where
            assert got.p99_ms == pytest.approx(want.p99_ms), where
            assert got.up_s == pytest.approx(r.up_s, abs=1e-6), where
            assert got.down_s == pytest.approx(r.down_s, abs=1e-6), where
            assert (got.checks, got.checks_down) == (r.checks, r.checks_down), where
            assert got.p95_ms == pytest.approx(r.p95_ms), where


def test_daily_uptime(filled: Path) -> None:
    store = Store.open(filled, clock=Clock())
    try:
        first = NOW - 8 * DAY + 5000  # inside a day: counted from that day's start
        bars = store.daily_uptime(["a", "c", "none", "a"], first, 8)
        whole = {n: store.sla_many([n], d, d + DAY)[n] for n in ("a", "c") for d in [NOW - DAY]}
        assert store.daily_uptime(["a"], NOW, 0) == {"a": []}
        assert store.daily_uptime([], NOW, 3) == {}
    finally:
        store.close_sync()
    assert list(bars) == ["a", "c", "none"]
    assert all(len(v) == 8 for v in bars.values())
    assert bars["none"] == [None] * 8
    assert bars["a"][:2] == [None, None]  # before the data starts
    assert all(v is not None and 0.0 <= v <= 100.0 for v in bars["a"][2:])
    assert bars["a"][7] == pytest.approx(whole["a"].sla)
    assert bars["c"][7] == pytest.approx(whole["c"].sla)
    assert bars["c"][5] is None  # the gap of more than a day holds a whole day


async def test_retention_prunes_daily_rows(db_path: Path) -> None:
    await fill(db_path, days=3)
    before = {int(d) for (d,) in raw(db_path, "SELECT day FROM rollups_daily")}
    late = Clock(NOW + 400 * DAY - 1.5 * DAY)  # the first day and a half are past retention
    store = Store.open(db_path, clock=late)
    await store.start()
    await store.close()
    days = sorted({int(d) for (d,) in raw(db_path, "SELECT day FROM rollups_daily")})
    hours = raw(db_path, "SELECT min(hour) FROM rollups_hourly")[0][0]
    # A day goes once all its hours have gone; the hours go one by one.
    assert int(NOW - 3 * DAY) in before
    assert int(NOW - 3 * DAY) not in days
    assert days[0] == int(NOW - 2 * DAY)
    assert hours is not None and int(hours) >= NOW - 1.5 * DAY


def test_batch_reads_equal_the_per_probe_reads(filled: Path) -> None:
    store = Store.open(filled, clock=Clock())
    try:
        start, end = NOW - 2 * DAY + 1234, NOW  # starts inside an hour: that hour counts
        names = ["a", "c", "none", "a"]
        latency = store.hourly_latency(names, start, end)
        changes = store.transitions_many(names, NOW - 8 * DAY, NOW)
        per_probe = {
            n: (store.rollups(n, start, end), store.transitions(n, NOW - 8 * DAY, NOW))
            for n in ("a", "c", "none")
        }
        assert store.hourly_latency([], start, end) == {}
        assert store.hourly_latency(["a"], end, start) == {"a": []}
        assert store.transitions_many([], 0, NOW) == {}
    finally:
        store.close_sync()
    assert list(latency) == list(changes) == ["a", "c", "none"]
    assert latency["none"] == [] and changes["none"] == []
    for n, (rollups, transitions) in per_probe.items():
        want = [(r.hour, r.latency_sum / r.latency_count) for r in rollups if r.latency_count]
        assert [h for h, _ in latency[n]] == [h for h, _ in want]
        assert [m for _, m in latency[n]] == pytest.approx([m for _, m in want])
        assert changes[n] == transitions
    assert latency["a"] and any(changes.values())  # the fixture has data to compare
