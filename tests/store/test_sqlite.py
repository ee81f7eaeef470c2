"""The SQLite store: what is written, what is read back, SLA per window, retention, batching."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from probe.core.result import Status
from probe.core.tracker import Observation, Policy, ProbeState, Span, StatusTracker
from probe.errors import StoreError
from probe.store import SCHEMA_VERSION, Store, figures_from_rollups, window_bounds
from probe.store.sla import HOUR
from tests.store.helpers import (
    NOW,
    UNDO_STEP_4,
    UNDO_STEP_5,
    Clock,
    Feeder,
    every,
    make_result,
)

DAY = 86400.0


def submit_all(store: Store, observations: list[Observation]) -> None:
    for obs in observations:
        store.submit(obs)


def raw_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_raw_results_round_trip(store: Store) -> None:
    feeder = Feeder()
    first = make_result("api", NOW - 120, latency=0.0123, details={"code": 200, "ip": "127.0.0.1"})
    second = make_result(
        "api",
        NOW - 60,
        Status.DOWN,
        latency=None,
        message="connection refused",
        details={"when": datetime(2026, 1, 1, tzinfo=UTC)},  # not JSON: kept as text
    )
    submit_all(store, [feeder.observe(first), feeder.observe(second)])
    await store.flush()

    newest, oldest = store.last_results("api", 10)
    assert oldest == first
    assert newest.status is Status.DOWN and newest.latency is None
    assert newest.message == "connection refused"
    assert newest.time == second.time
    assert newest.details == {"when": "2026-01-01 00:00:00+00:00"}
    assert store.last_results("api", 1) == [newest]
    assert store.last_results("other", 5) == []
    rows = raw_rows(store.path, "SELECT probe, kind, endpoint, time, status FROM results")
    assert rows[0] == ("api", "http", "http://127.0.0.1:8080/health", NOW - 120, "up")


async def test_typed_readings_round_trip(store: Store) -> None:
    feeder = Feeder()
    answered = make_result("web", NOW - 120, Status.DOWN, http_status=503, cert_expiry=1.8e9)
    unanswered = make_result("web", NOW - 60, Status.DOWN, latency=None, http_status=0)
    # Not a time any reader could use: kept out rather than stored as an infinity.
    endless = make_result("web", NOW, cert_expiry=math.inf)
    submit_all(store, [feeder.observe(r) for r in (answered, unanswered, endless)])
    await store.flush()

    newest, middle, oldest = store.last_results("web", 10)
    assert oldest == answered
    assert (oldest.http_status, oldest.cert_expiry) == (503, 1.8e9)
    assert (middle.http_status, middle.cert_expiry) == (0, None)
    assert (newest.http_status, newest.cert_expiry) == (None, None)
    assert raw_rows(store.path, "SELECT http_status, cert_expiry FROM results ORDER BY time") == [
        (503, 1.8e9),
        (0, None),
        (None, None),
    ]


async def test_rollups_split_spans_at_hour_boundaries(store: Store) -> None:
    hour = NOW - 10 * HOUR
    feeder = Feeder(Policy(interval=3600))
    submit_all(
        store,
        [
            feeder.observe(make_result("db", hour + 3000, latency=0.004)),
            # 600 s of up in the first hour, 1200 s in the next.
            feeder.observe(make_result("db", hour + HOUR + 1200, Status.DOWN, latency=0.2)),
            # Down since hour + 1h20m: 2400 s of down time, then 1800 s more in the third hour.
            feeder.observe(make_result("db", hour + 2 * HOUR + 1800, latency=0.03)),
        ],
    )
    await store.flush()
    first, second, third = store.rollups("db", hour, hour + 3 * HOUR)
    assert (first.hour, second.hour, third.hour) == (hour, hour + HOUR, hour + 2 * HOUR)
    assert (first.time_up, first.time_down, first.checks_up, first.checks_down) == (600, 0, 1, 0)
    assert (second.time_up, second.time_down) == (1200, 2400)
    assert (second.checks_up, second.checks_down) == (0, 1)
    assert (third.time_up, third.time_down, third.checks_up) == (0, 1800, 1)
    assert first.latency_min == first.latency_max == 0.004
    assert second.latency_count == 1 and sum(second.histogram) == 1


async def test_checks_count_by_result_status_not_tracker_status(store: Store) -> None:
    # failure=3: two failed checks keep the probe up, so the time stays up but the checks
    # are counted as down.
    feeder = Feeder(Policy(interval=60, failure=3))
    start = NOW - HOUR
    statuses = [Status.UP, Status.DOWN, Status.DOWN, Status.UP]
    submit_all(
        store,
        [feeder.observe(make_result("x", start + 60 * i, s)) for i, s in enumerate(statuses)],
    )
    await store.flush()
    (row,) = store.rollups("x", start, NOW)
    assert (row.checks_up, row.checks_down) == (2, 2)
    assert (row.time_up, row.time_down) == (180, 0)
    assert store.transitions("x", 0, NOW) == [store.transitions("x", 0, NOW)[0]]


async def test_unknown_spans_are_not_measured(store: Store) -> None:
    feeder = Feeder()
    obs = feeder.observe(make_result("u", NOW - 100))
    # A span the tracker could report for an unknown stretch (e.g. maintenance later).
    store.submit(
        Observation(obs.result, obs.state, None, Span(NOW - 700, NOW - 100, Status.UNKNOWN), None)
    )
    await store.flush()
    (row,) = store.rollups("u", NOW - HOUR, NOW)
    assert (row.time_up, row.time_down, row.checks_up) == (0, 0, 1)


async def test_transitions_are_recorded(store: Store) -> None:
    feeder = Feeder()
    times = every(NOW - 600, NOW - 60, 60)

    def status_at(t: float) -> Status:
        return Status.DOWN if NOW - 400 <= t < NOW - 200 else Status.UP

    submit_all(store, feeder.series("web", times, status_at))
    await store.flush()
    got = store.transitions("web", 0, NOW)
    assert [(t.time, t.previous, t.current) for t in got] == [
        (NOW - 600, Status.UNKNOWN, Status.UP),
        (NOW - 360, Status.UP, Status.DOWN),
        (NOW - 180, Status.DOWN, Status.UP),
    ]
    assert got[1].message == f"down at {NOW - 360:.0f}"
    # [since, until) bounds.
    assert store.transitions("web", NOW - 360, NOW - 180) == [got[1]]
    assert store.sla("web", NOW - HOUR, NOW).incidents == 1


async def test_state_survives_close_and_reopen(db_path: Path, clock: Clock) -> None:
    policy = Policy(interval=60, failure=2, strategy="increment", max_alerts=3)
    feeder = Feeder(policy)
    statuses = [Status.UP] * 3 + [Status.DOWN] * 5
    store = Store.open(db_path, clock=clock)
    await store.start()
    for i, status in enumerate(statuses):
        store.submit(feeder.observe(make_result("a", NOW - 3600 + 60 * i, status)))
        store.submit(feeder.observe(make_result("b", NOW - 3600 + 60 * i)))
    await store.close()

    reopened = Store.open(db_path, clock=clock)
    await reopened.start()
    try:
        saved = reopened.load_states()
        assert saved == feeder.tracker.states()
        assert saved["a"].status is Status.DOWN and saved["a"].alerts_sent >= 1
        assert reopened.probe_names() == ["a", "b"]

        # A new tracker built from the saved state carries on: the next result's span starts
        # at the last saved result, the outage continues and nothing transitions again.
        resumed = Feeder(policy, StatusTracker(saved))
        t = NOW - 3600 + 60 * len(statuses)
        obs = resumed.observe(make_result("a", t, Status.DOWN))
        assert obs.transition is None
        assert obs.span == Span(t - 60, t, Status.DOWN)
        assert obs.state.outage_failures == saved["a"].outage_failures + 1
        reopened.submit(obs)
        await reopened.flush()
        assert reopened.load_states()["a"] == obs.state
    finally:
        await reopened.close()
    assert raw_rows(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


@pytest.mark.slow
async def test_sla_over_30_days_with_one_outage(store: Store) -> None:
    # 30 days of checks every 2 minutes, one outage of 3 h 36 min = 0.5 % of 30 days.
    start = NOW - 30 * DAY
    outage = (start + 10 * DAY, start + 10 * DAY + 3.6 * HOUR)

    def status_at(t: float) -> Status:
        return Status.DOWN if outage[0] <= t < outage[1] else Status.UP

    feeder = Feeder(Policy(interval=120))
    submit_all(store, feeder.series("shop", every(start, NOW, 120), status_at))
    await store.flush()

    lo, hi = window_bounds("30d", datetime.fromtimestamp(NOW, UTC), ZoneInfo("UTC"))
    figures = store.sla("shop", lo, hi)
    assert figures.sla == pytest.approx(99.5)
    assert figures.down_s == pytest.approx(3.6 * HOUR)
    assert figures.up_s + figures.down_s == pytest.approx(30 * DAY)
    assert figures.checks == 30 * 24 * 30  # the check at NOW belongs to the next hour
    assert figures.incidents == 1
    assert figures.p95_ms == pytest.approx(50.0)

    # The last 7 days hold no outage.
    week = store.sla("shop", NOW - 7 * DAY, NOW)
    assert week.sla == 100.0 and week.incidents == 0


async def test_gap_longer_than_two_intervals_counts_neither(store: Store) -> None:
    start = NOW - HOUR
    times = [*every(start, start + 600, 60), *every(start + 900, start + 1200, 60)]
    submit_all(store, Feeder().series("gappy", times, lambda t: Status.UP))
    await store.flush()
    figures = store.sla("gappy", start, NOW)
    # 10 + 5 minutes measured; the 300 s gap (> 2 x 60 s) is neither up nor down.
    assert figures.up_s == 900
    assert figures.down_s == 0
    assert figures.sla == 100.0


async def test_window_edges_inside_an_hour_are_prorated(store: Store) -> None:
    start = NOW - 3 * HOUR
    submit_all(store, Feeder().series("p", every(start, NOW, 60)))
    await store.flush()
    figures = store.sla("p", start + 1800, start + 2 * HOUR + 900)
    assert figures.up_s == pytest.approx(1800 + 3600 + 900)
    assert figures.checks == 120  # hours starting at start+1h and start+2h
    rows = store.rollups("p", start + 1800, start + 2 * HOUR + 900)
    assert figures_from_rollups(rows, start + 1800, start + 2 * HOUR + 900) == pytest.approx(
        figures
    )


@pytest.mark.parametrize(
    ("day", "hours"),
    [(datetime(2025, 3, 30), 23), (datetime(2025, 10, 26), 25)],
)
async def test_calendar_day_across_dst(db_path: Path, day: datetime, hours: int) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    first = day.replace(tzinfo=berlin).timestamp() - DAY
    now = datetime(day.year, day.month, day.day + 1, 10, tzinfo=berlin)
    async with Store.open(db_path, clock=now.timestamp) as store:
        submit_all(store, Feeder().series("cal", every(first, now.timestamp(), 60)))
        await store.flush()
        lo, hi = window_bounds("day", now, berlin)
        figures = store.sla("cal", lo, hi)
    assert figures.up_s == hours * HOUR
    assert figures.checks == hours * 60
    assert figures.sla == 100.0


async def test_sla_many_answers_every_name(store: Store) -> None:
    start = NOW - 2 * HOUR
    feeder = Feeder()
    submit_all(store, feeder.series("up", every(start, NOW, 60)))
    submit_all(store, feeder.series("down", every(start, NOW, 60), lambda t: Status.DOWN))
    await store.flush()
    many = store.sla_many(["up", "down", "missing", "up"], start, NOW)
    assert list(many) == ["up", "down", "missing"]
    assert many["up"].sla == 100.0
    assert many["down"].sla == 0.0 and many["down"].incidents == 1
    assert many["missing"].sla is None and many["missing"].checks == 0
    assert many["up"] == store.sla("up", start, NOW)


async def test_percentiles_from_stored_histograms(store: Store) -> None:
    start = NOW - 2 * HOUR
    feeder = Feeder()
    # Latencies 1 ms .. 1000 ms, evenly: p95 is 950 ms, p99 990 ms.
    times = every(start, start + 999 * 6, 6)
    submit_all(
        store,
        [
            feeder.observe(make_result("lat", t, latency=(i + 1) / 1000))
            for i, t in enumerate(times)
        ],
    )
    await store.flush()
    figures = store.sla("lat", start, NOW)
    assert figures.p95_ms is not None and figures.p99_ms is not None
    # Both fall in the (750, 1000] bucket: exact within its width, in practice much closer.
    assert abs(figures.p95_ms - 950) <= 250
    assert abs(figures.p99_ms - 990) <= 250
    assert figures.p95_ms < figures.p99_ms <= 1000


async def test_retention_drops_old_raw_results_but_keeps_rollups(db_path: Path) -> None:
    clock = Clock(NOW)
    store = Store.open(db_path, retention=DAY, clock=clock)
    await store.start()
    feeder = Feeder(Policy(interval=600))
    submit_all(store, feeder.series("r", every(NOW - 3 * DAY, NOW, 600)))
    # A rollup older than 400 days goes too.
    store.submit(Feeder().observe(make_result("ancient", NOW - 401 * DAY)))
    await store.flush()
    assert len(store.last_results("r", 10_000)) == 3 * 144 + 1  # pruning ran at start only

    # Pruning runs at most once an hour: an hour later, the next write triggers it.
    clock.now = NOW + HOUR + 1
    store.submit(feeder.observe(make_result("r", NOW + 600)))
    await store.flush()
    kept = store.last_results("r", 10_000)
    assert min(r.time.timestamp() for r in kept) >= clock.now - DAY
    assert len(store.rollups("r", NOW - 3 * DAY, NOW)) == 72
    assert store.sla("r", NOW - 3 * DAY, NOW).up_s == 3 * DAY
    assert store.rollups("ancient", 0, NOW) == []
    await store.close()

    # And at open: a store opened later prunes before its first write.
    later = Store.open(db_path, retention=2 * HOUR - 300, clock=Clock(NOW + 2 * HOUR))
    async with later:
        await later.flush()
        assert [r.time.timestamp() for r in later.last_results("r", 10)] == [NOW + 600]


@pytest.mark.slow
async def test_ten_thousand_observations_in_one_flush(store: Store) -> None:
    feeder = Feeder()
    names = [f"p{i}" for i in range(10)]
    start = NOW - DAY
    for i in range(1000):
        for name in names:
            store.submit(feeder.observe(make_result(name, start + 60 * i)))
    await store.flush()
    assert raw_rows(store.path, "SELECT count(*) FROM results") == [(10_000,)]
    many = store.sla_many(names, start, NOW)
    assert sum(f.checks for f in many.values()) == 10_000
    assert all(f.up_s == 999 * 60 for f in many.values())
    assert store.pending == 0 and store.last_error is None


async def test_flush_does_not_block_the_event_loop(store: Store) -> None:
    feeder = Feeder()
    for i in range(5_000):
        store.submit(feeder.observe(make_result("busy", NOW - DAY + i)))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await store.flush()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ticks > 10
    assert len(store.last_results("busy", 10_000)) == 5_000


async def test_submit_is_thread_safe(store: Store) -> None:
    feeders = [Feeder() for _ in range(4)]

    def produce(k: int) -> None:
        for i in range(500):
            store.submit(feeders[k].observe(make_result(f"t{k}", NOW - DAY + 60 * i)))

    await asyncio.gather(*(asyncio.to_thread(produce, k) for k in range(4)))
    await store.flush()
    assert raw_rows(store.path, "SELECT probe, count(*) FROM results GROUP BY probe") == [
        (f"t{k}", 500) for k in range(4)
    ]


async def test_close_is_idempotent_and_writes_what_is_queued(db_path: Path) -> None:
    store = Store.open(db_path, clock=Clock())
    # Submitted before start(): close() still writes it.
    store.submit(Feeder().observe(make_result("late", NOW - 60)))
    await store.close()
    await store.close()
    assert not Path(f"{db_path}-wal").exists()  # the last connection checkpointed the WAL
    assert raw_rows(db_path, "SELECT probe FROM results") == [("late",)]
    with pytest.raises(StoreError, match="closed"):
        store.submit(Feeder().observe(make_result("late", NOW)))
    with pytest.raises(StoreError, match="closed"):
        store.load_states()


async def test_reads_work_while_nothing_was_written(store: Store) -> None:
    assert store.load_states() == {}
    assert store.probe_names() == []
    assert store.sla("none", 0, NOW).sla is None
    assert store.sla_many([], 0, NOW) == {}
    assert ProbeState("x") not in store.load_states().values()


async def test_odd_latencies_and_limits(store: Store) -> None:
    feeder = Feeder()
    store.submit(feeder.observe(make_result("odd", NOW - 120, latency=float("nan"))))
    store.submit(feeder.observe(make_result("odd", NOW - 60, latency=-0.5)))
    await store.flush()
    assert [r.latency for r in store.last_results("odd", 5)] == [0.0, None]
    assert store.last_results("odd", 0) == []
    (row,) = store.rollups("odd", NOW - HOUR, NOW)
    assert row.latency_count == 1 and row.latency_min == 0.0


async def test_rolling_window_counts_the_hour_in_progress(store: Store) -> None:
    # Ten minutes into the hour, with an outage in those ten minutes: a 24h window ending now
    # must show all of it (the whole-hour proration alone would show a sixth).
    now = NOW + 600

    def status_at(t: float) -> Status:
        return Status.DOWN if t >= NOW else Status.UP

    submit_all(store, Feeder().series("now", every(now - 2 * DAY, now, 60), status_at))
    await store.flush()
    figures = store.sla("now", now - DAY, now)
    assert figures.down_s == pytest.approx(600)
    assert figures.up_s + figures.down_s == pytest.approx(DAY)
    assert figures.sla == pytest.approx(100 * (DAY - 600) / DAY)


async def test_sla_figures_json_shape(store: Store) -> None:
    submit_all(store, Feeder().series("j", every(NOW - HOUR, NOW, 60)))
    await store.flush()
    assert store.sla("j", NOW - HOUR, NOW).to_json() == {
        "sla": 100.0,
        "up_s": 3600.0,
        "down_s": 0.0,
        "checks": 60,
        "incidents": 0,
        "p95_ms": pytest.approx(50.0),
    }


async def test_forward_migration_keeps_data(
    db_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.store import schema as backend

    async with Store.open(db_path, clock=clock) as store:
        submit_all(store, Feeder().series("m", every(NOW - 600, NOW, 60)))

    def add_extra(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    monkeypatch.setattr(backend, "MIGRATIONS", (*backend.MIGRATIONS, add_extra))
    monkeypatch.setattr(backend, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    async with Store.open(db_path, clock=clock) as store:
        assert len(store.last_results("m", 100)) == 11
    assert raw_rows(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]
    assert raw_rows(db_path, "SELECT count(*) FROM extra") == [(0,)]


async def test_migration_4_keeps_a_schema_3_store_and_reads_its_rows_without_readings(
    db_path: Path, clock: Clock
) -> None:
    # A schema-3 file: written by this code, then step 4's columns taken away (schema 3 is
    # schema 4 without them), so its data is what this code writes.
    feeder = Feeder()
    written = [
        make_result("old", t, Status.DOWN if t > NOW - 200 else Status.UP)
        for t in every(NOW - 600, NOW - 60, 60)
    ]
    async with Store.open(db_path, clock=clock) as old:
        submit_all(old, [feeder.observe(r) for r in written])
    conn = sqlite3.connect(db_path)
    conn.executescript(f"{UNDO_STEP_4} PRAGMA user_version = 3;")
    conn.close()
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    before = {
        t: raw_rows(db_path, f"SELECT * FROM {t} ORDER BY 1, 2")
        for (t,) in raw_rows(db_path, tables)
    }
    assert "http_status" not in {r[1] for r in raw_rows(db_path, "PRAGMA table_info(results)")}

    async with Store.open(db_path, clock=clock) as store:
        assert raw_rows(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        # Old rows read back whole, with None for the readings they never had.
        read = store.last_results("old", 100)
        assert read == written[::-1]
        assert {(r.http_status, r.cert_expiry) for r in read} == {(None, None)}
        assert store.load_states()["old"] == feeder.tracker.states()["old"]
    # No row of any table lost or changed; step 4's columns come last, NULL in the old rows.
    before["results"] = [(*row, None, None) for row in before["results"]]
    before["probe_state"] = [(*row, None) for row in before["probe_state"]]  # step 5's column
    for table, rows in before.items():
        assert raw_rows(db_path, f"SELECT * FROM {table} ORDER BY 1, 2") == rows, table

    # And the migrated store keeps the readings of what comes after.
    async with Store.open(db_path, clock=clock) as store:
        store.submit(feeder.observe(make_result("old", NOW, http_status=200, cert_expiry=1.8e9)))
        await store.flush()
        (newest,) = store.last_results("old", 1)
        assert (newest.http_status, newest.cert_expiry) == (200, 1.8e9)


async def test_a_row_sqlite_refuses_does_not_block_the_others(store: Store) -> None:
    feeder = Feeder()
    good = feeder.observe(make_result("ok", NOW - 120))
    undecodable = feeder.observe(make_result("ok", NOW - 60, message="exit 1: \udcff\udcfe"))
    # A value SQLite cannot bind (typing stops this; a buggy prober might not).
    bad_result = replace(make_result("bad", NOW - 60), kind=object())  # type: ignore[arg-type]
    poison = Feeder().observe(bad_result)
    submit_all(store, [good, poison, undecodable])
    await store.flush()
    assert store.last_error is None and store.pending == 0
    assert [r.message for r in store.last_results("ok", 5)] == [
        "exit 1: \ufffd\ufffd",
        good.result.message,
    ]
    assert store.last_results("bad", 5) == []
    # What could be kept of the bad observation was: its state and its rollup.
    assert "bad" in store.load_states()
    assert store.sla("bad", NOW - HOUR, NOW).checks == 1


async def test_close_sync_for_readers_without_a_loop(db_path: Path, clock: Clock) -> None:
    async with Store.open(db_path, clock=clock) as writer:
        submit_all(writer, Feeder().series("cli", every(NOW - HOUR, NOW, 60)))

    def read() -> float | None:
        store = Store.open(db_path, clock=clock)
        try:
            return store.sla_many(["cli"], NOW - HOUR, NOW)["cli"].sla
        finally:
            store.close_sync()
            store.close_sync()

    assert await asyncio.to_thread(read) == 100.0
    assert not Path(f"{db_path}-wal").exists()


async def test_migration_5_adds_the_flap_state_and_a_flapping_state_reads_back_whole(
    db_path: Path, clock: Clock
) -> None:
    feeder = Feeder()
    async with Store.open(db_path, clock=clock) as old:
        submit_all(old, [feeder.observe(make_result("old", NOW - 60, Status.UP))])
    conn = sqlite3.connect(db_path)
    conn.executescript(f"{UNDO_STEP_5} PRAGMA user_version = 4;")
    conn.close()
    async with Store.open(db_path, clock=clock) as store:
        assert raw_rows(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        state = store.load_states()["old"]
        assert (state.flapping, state.flap_times) == (False, ())
        flapping = replace(state, flapping=True, flap_times=(NOW - 30.5, NOW - 20.25))
        store.submit(Observation(make_result("old", NOW), flapping, None, None, None))
        await store.flush()
        assert store.load_states()["old"] == flapping
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE probe_state SET alert_state = 'not json'")
    conn.commit()
    conn.close()
    async with Store.open(db_path, clock=clock) as store:
        assert store.load_states()["old"].flapping is False  # unreadable: not flapping
