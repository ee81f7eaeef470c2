"""The writer's rollup rows stay the sums of what was committed, whatever happened between
batches: the writer keeps the rows it last committed in memory and adds the next batch to them
without reading them back, so every way those rows can go stale is tried here (a failed or
retried transaction, a row skipped by the careful retry, an hour or a day moving on, a late
result for an older hour, pruning, another connection writing the file).

Each test compares the rollup tables with sums worked out from scratch: checks and latencies
from the stored raw results, measured time from the spans the tracker reported. Latencies are
multiples of 1/1024 s and times whole seconds, so every float sum is exact in any order and the
rows must be equal, not merely close.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import random
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from probe.core.result import Status
from probe.core.tracker import Observation, Policy, Span
from probe.errors import StoreError
from probe.store import DEFAULT_RETENTION, Store
from probe.store.rollups import LatestRows, RollupSums, sum_by_day
from probe.store.schema import open_connections
from probe.store.sla import (
    BUCKETS_MS,
    DAY,
    HOUR,
    bucket_index,
    day_start,
    hour_start,
    split_by_hour,
)
from tests.store.helpers import NOW, Clock, Feeder, make_result

Key = tuple[str, int]


class FlakyConnection:
    """The writer's connection, whose next `failing_commits` COMMITs fail the way a full disk
    fails them (a plain OperationalError: not the row's fault, so the writer retries later)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failing_commits = 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.failing_commits:
            self.failing_commits -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        self.conn.close()


def flaky_store(path: Path, clock: Clock) -> tuple[Store, FlakyConnection]:
    writer_conn, reader = open_connections(path)
    flaky = FlakyConnection(writer_conn)
    store = Store(
        path,
        cast(sqlite3.Connection, flaky),
        reader,
        retention=DEFAULT_RETENTION,
        clock=clock,
    )
    return store, flaky


async def flush_through_failing_commits(store: Store, flaky: FlakyConnection, count: int) -> None:
    """Make the next `count` commits fail, flush until they have, then flush for good."""
    flaky.failing_commits = count
    while flaky.failing_commits:
        # Usually each flush raises; a batch window that ran out first just means the writer
        # met the failure on its own and this flush retried (and failed) at once.
        with contextlib.suppress(StoreError):
            await store.flush()
    await store.flush()


def poisoned(obs: Observation) -> Observation:
    """`obs` with a tracker state SQLite cannot bind: its state row fails after the rollup rows
    of the batch were written, so the writer redoes the batch row by row (`careful`)."""
    state = dataclasses.replace(obs.state, next_alert=cast(int, object()))
    return dataclasses.replace(obs, state=state)


def latency_of(rng: random.Random) -> float | None:
    if rng.random() < 0.15:
        return None
    return rng.randrange(1, 4096) / 1024  # exact in binary: sums do not depend on the order


# --------------------------------------------------------------------------- the reference


def _fresh_row() -> dict[str, Any]:
    return {
        "checks_up": 0,
        "checks_down": 0,
        "time_up": 0.0,
        "time_down": 0.0,
        "latency_sum": 0.0,
        "latency_count": 0,
        "latency_min": None,
        "latency_max": None,
        "histogram": [0] * len(BUCKETS_MS),
        "measured_from": None,
        "measured_to": None,
    }


def _least(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _greatest(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def expected_hourly(path: Path, observations: list[Observation]) -> dict[Key, dict[str, Any]]:
    """Hourly rollups summed from scratch: checks and latencies from the stored raw results,
    time from the spans of `observations` (those the store was given)."""
    rows: defaultdict[Key, dict[str, Any]] = defaultdict(_fresh_row)
    conn = sqlite3.connect(path)
    try:
        results = conn.execute("SELECT probe, time, status, latency FROM results").fetchall()
    finally:
        conn.close()
    for probe, t, status, latency in results:
        row = rows[(probe, hour_start(t))]
        if status in ("up", "down"):
            row[f"checks_{status}"] += 1
        if latency is not None:
            row["latency_sum"] += latency
            row["latency_count"] += 1
            row["latency_min"] = _least(row["latency_min"], latency)
            row["latency_max"] = _greatest(row["latency_max"], latency)
            row["histogram"][bucket_index(latency * 1000)] += 1
    for obs in observations:
        span = obs.span
        if span is None or span.status is Status.UNKNOWN:
            continue
        for hour, start, end in split_by_hour(span.start, span.end):
            row = rows[(obs.result.name, hour)]
            row["time_up" if span.status is Status.UP else "time_down"] += end - start
            row["measured_from"] = _least(row["measured_from"], start)
            row["measured_to"] = _greatest(row["measured_to"], end)
    return dict(rows)


def by_day(hourly: dict[Key, dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    days: defaultdict[Key, dict[str, Any]] = defaultdict(_fresh_row)
    for (probe, hour), row in hourly.items():
        day = days[(probe, day_start(hour))]
        for name in ("checks_up", "checks_down", "time_up", "time_down"):
            day[name] += row[name]
        for name in ("latency_sum", "latency_count"):
            day[name] += row[name]
        for name, pick in (("latency_min", _least), ("measured_from", _least)):
            if row[name] is not None:
                day[name] = pick(day[name], row[name])
        for name, pick in (("latency_max", _greatest), ("measured_to", _greatest)):
            if row[name] is not None:
                day[name] = pick(day[name], row[name])
        day["histogram"] = [a + b for a, b in zip(day["histogram"], row["histogram"], strict=True)]
    return dict(days)


def stored(path: Path, table: str, key: str) -> dict[Key, dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()
    out = {}
    for row in rows:
        values = dict(row)
        values["histogram"] = json.loads(values["histogram"])
        out[(values.pop("probe"), values.pop(key))] = values
    return out


def assert_rollups_are_the_sums(path: Path, observations: list[Observation]) -> None:
    hourly = expected_hourly(path, observations)
    assert stored(path, "rollups_hourly", "hour") == hourly
    assert stored(path, "rollups_daily", "day") == by_day(hourly)


# --------------------------------------------------------------------------- the tests


async def test_rollups_are_the_sums_of_many_batches_with_failures_between(
    db_path: Path, clock: Clock
) -> None:
    # Twelve probes at different intervals over five hours that cross a UTC midnight, one
    # commit per round of results (each probe's row is added to from the writer's memory),
    # with commits that fail and are retried and rows the careful retry skips along the way.
    rng = random.Random(5)
    intervals = [60, 90, 120, 300, 600, 900] * 2
    next_time = {f"p{i:02d}": NOW - 3 * HOUR + 7 * i for i in range(len(intervals))}
    feeder = Feeder(Policy(interval=60))
    store, flaky = flaky_store(db_path, clock)
    submitted: list[Observation] = []
    await store.start()
    try:
        for round_ in range(60):
            for (name, t), interval in zip(list(next_time.items()), intervals, strict=True):
                status = Status.DOWN if rng.random() < 0.2 else Status.UP
                obs = feeder.observe(make_result(name, t, status, latency=latency_of(rng)))
                if round_ in (25, 40) and name == "p03":
                    obs = poisoned(obs)
                store.submit(obs)
                submitted.append(obs)
                gap = 3 * interval if rng.random() < 0.05 else interval  # now and then a gap
                next_time[name] = t + gap
            if round_ in (10, 11, 30):
                await flush_through_failing_commits(store, flaky, 1)
            elif round_ % 7 != 6:  # most rounds are a commit of their own, some are joined
                await store.flush()
        await store.flush()
    finally:
        await store.close()
    assert max(t for t in next_time.values()) > NOW  # the data crossed midnight
    assert_rollups_are_the_sums(db_path, submitted)


async def test_a_failed_commit_is_not_counted_twice(db_path: Path, clock: Clock) -> None:
    # The failing batch holds a span across an hour boundary: two hours of one day.
    boundary = NOW - HOUR
    feeder = Feeder()
    submitted = [feeder.observe(make_result("a", boundary - 90 + 60 * i)) for i in range(5)]
    store, flaky = flaky_store(db_path, clock)
    await store.start()
    try:
        for obs in submitted[:2]:
            store.submit(obs)
        await store.flush()
        store.submit(submitted[2])
        await flush_through_failing_commits(store, flaky, 2)  # the same batch, third time lucky
        assert store.last_error is None
        for obs in submitted[3:]:
            store.submit(obs)
        await store.flush()
        before, after = store.rollups("a", boundary - HOUR, NOW)
    finally:
        await store.close()
    assert (before.checks_up, before.time_up) == (2, 60 + 30)
    assert (after.checks_up, after.time_up) == (3, 30 + 60 + 60)
    assert_rollups_are_the_sums(db_path, submitted)


async def test_a_careful_retry_is_not_counted_twice(store: Store) -> None:
    feeder = Feeder()
    submitted = [feeder.observe(make_result("c", NOW - 600 + 60 * i)) for i in range(4)]
    store.submit(submitted[0])
    await store.flush()
    submitted[1] = poisoned(submitted[1])
    store.submit(submitted[1])
    await store.flush()
    assert store.last_error is None  # the state row was skipped, the rest written
    for obs in submitted[2:]:
        store.submit(obs)
    await store.flush()
    (row,) = store.rollups("c", NOW - HOUR, NOW)
    assert (row.checks_up, row.time_up) == (4, 180)
    assert_rollups_are_the_sums(store.path, submitted)


async def test_rollups_across_hour_and_day_boundaries_and_a_late_result(store: Store) -> None:
    # The last hour of a day, then the first of the next: a span across midnight adds to both
    # hours and both days in one batch, and a late result lands in an hour already left.
    last_hour = NOW - HOUR
    feeder = Feeder(Policy(interval=600))
    submitted: list[Observation] = []

    async def commit(*observations: Observation) -> None:
        for obs in observations:
            store.submit(obs)
            submitted.append(obs)
        await store.flush()

    await commit(feeder.observe(make_result("b", last_hour + 2400, latency=0.25)))
    await commit(feeder.observe(make_result("b", last_hour + 3000, latency=0.5)))
    await commit(feeder.observe(make_result("b", NOW + 600, Status.DOWN, latency=1.0)))
    await commit(feeder.observe(make_result("b", NOW + 1200, latency=0.125)))
    # From another tracker: this one would take the late time as its last result's.
    late = Feeder().observe(make_result("b", last_hour + 1800, latency=2.0))
    await commit(dataclasses.replace(late, span=Span(last_hour, last_hour + 60, Status.UP)))
    await commit(feeder.observe(make_result("b", NOW + 1800)))

    before, after = store.rollups("b", last_hour, NOW + HOUR)
    assert (before.checks_up, before.checks_down, before.latency_count) == (3, 0, 3)
    assert (before.time_up, before.time_down) == (600 + 600 + 60, 0)
    assert (after.checks_up, after.checks_down) == (2, 1)
    assert (after.time_up, after.time_down) == (600 + 600, 600)
    assert_rollups_are_the_sums(store.path, submitted)


async def test_rollups_after_pruning(db_path: Path) -> None:
    # A row the writer committed, then pruned: a later result for that hour starts it afresh.
    clock = Clock(NOW)
    ancient = NOW - 401 * DAY
    feeder = Feeder()
    async with Store.open(db_path, clock=clock) as store:
        store.submit(feeder.observe(make_result("old", ancient + 60)))
        await store.flush()
        assert len(store.rollups("old", 0, NOW)) == 1  # pruning ran at start, before it
        clock.now = NOW + HOUR + 1  # the next commit prunes after it
        store.submit(feeder.observe(make_result("new", NOW)))
        await store.flush()
        assert store.rollups("old", 0, NOW) == []
        late = feeder.observe(make_result("old", ancient + 120))
        store.submit(late)
        await store.flush()
        (row,) = store.rollups("old", 0, NOW)
    assert (row.checks_up, row.time_up, row.measured_from) == (1, 60, ancient + 60)
    assert_rollups_are_the_sums(db_path, [late])


async def test_rollups_after_another_process_pruned_them(db_path: Path) -> None:
    # `probe report` or `probe sla` while `probe run` writes: their store prunes at start,
    # on its own connection. The running writer must not write back a row it holds.
    ancient = NOW - 401 * DAY
    feeder = Feeder()
    async with Store.open(db_path, clock=Clock(NOW)) as running:
        running.submit(feeder.observe(make_result("old", ancient + 60)))
        await running.flush()
        async with Store.open(db_path, clock=Clock(NOW)) as other:
            await other.flush()
        assert running.rollups("old", 0, NOW) == []
        late = feeder.observe(make_result("old", ancient + 120))
        running.submit(late)
        await running.flush()
        (row,) = running.rollups("old", 0, NOW)
    assert row.checks_up == 1
    assert_rollups_are_the_sums(db_path, [late])


async def test_rollups_after_another_connection_changed_them(store: Store) -> None:
    feeder = Feeder()
    first = feeder.observe(make_result("x", NOW - 600))
    store.submit(first)
    await store.flush()
    conn = sqlite3.connect(store.path)
    try:
        conn.execute("UPDATE rollups_hourly SET checks_up = checks_up + 10")
        conn.execute("UPDATE rollups_daily SET checks_up = checks_up + 10")
        conn.commit()
    finally:
        conn.close()
    store.submit(feeder.observe(make_result("x", NOW - 540)))
    await store.flush()
    (row,) = store.rollups("x", NOW - HOUR, NOW)
    assert row.checks_up == 12  # added to what the file holds, not to what was written


def test_latest_rows_keep_one_row_per_probe_the_newest() -> None:
    latest = LatestRows()
    sums = RollupSums(checks_up=1)
    first = int(NOW)
    hours = [sums.merged_row("p", first + h * HOUR, None) for h in range(3)]
    latest.keep(hours)
    latest.keep([sums.merged_row("q", first, None)])
    assert len(latest) == 2
    assert latest.get("p", first + 2 * HOUR) is hours[2]
    assert latest.get("p", first) is None  # an older hour is read from the file
    latest.keep([hours[0]])  # a late result's older hour does not push out the newest
    assert latest.get("p", first + 2 * HOUR) is hours[2]
    latest.clear()
    assert len(latest) == 0
    assert latest.get("q", first) is None


def test_sum_by_day_leaves_the_hours_of_the_batch_as_they_were() -> None:
    # A batch that fails is summed per day again at its retry, from the same hourly sums.
    day = int(NOW)
    hours = {
        ("p", day): RollupSums(checks_up=1, latency_count=1, histogram=[1] + [0] * 19),
        ("p", day + HOUR): RollupSums(checks_down=2, time_down=60.0),
        ("q", day + HOUR): RollupSums(checks_up=3),
    }
    before = copy.deepcopy(hours)
    days = sum_by_day(hours)
    assert hours == before
    assert days[("p", day)] == RollupSums(
        checks_up=1, checks_down=2, time_down=60.0, latency_count=1, histogram=[1] + [0] * 19
    )
    assert days[("q", day)] == hours[("q", day + HOUR)]
