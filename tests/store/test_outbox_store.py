"""The alert outbox in the SQLite store: migration from schema 1, writes committed through the
one writer before they return, reads, pruning."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probe.core.result import Status
from probe.store import SCHEMA_VERSION, Store
from tests.store.helpers import NOW, UNDO_STEP_4, Clock, Feeder, every, make_result


@dataclass(frozen=True)
class Row:
    id: str
    notifier: str = "ops"
    notification: str = '{"event": "down"}'
    created: float = NOW - 10
    attempts: int = 0
    next_attempt: float = NOW - 10


def raw(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_schema_has_the_outbox(store: Store, db_path: Path) -> None:
    assert SCHEMA_VERSION >= 2  # step 2 added the outbox
    columns = [r[1] for r in raw(db_path, "PRAGMA table_info(outbox)")]
    assert columns == [
        "id",
        "notifier",
        "notification",
        "created",
        "attempts",
        "next_attempt",
        "state",
        "last_error",
        "delivered_at",
    ]
    indexes = raw(
        db_path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'"
    )
    assert ("outbox_state_next",) in indexes


async def test_migration_from_version_1_keeps_its_data(db_path: Path, clock: Clock) -> None:
    # A version-1 file: written by this code, then the one thing step 2 adds taken away
    # (schema 1 is schema 4 without the outbox, the daily rollups and the results' typed
    # readings), so its data is what this code writes.
    async with Store.open(db_path, clock=clock) as old:
        feeder = Feeder()
        for obs in feeder.series(
            "web",
            every(NOW - 600, NOW, 60),
            lambda t: Status.DOWN if t > NOW - 200 else Status.UP,
        ):
            old.submit(obs)
    conn = sqlite3.connect(db_path)
    conn.executescript(
        f"{UNDO_STEP_4} DROP TABLE outbox; DROP TABLE rollups_daily; PRAGMA user_version = 1;"
    )
    conn.close()
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    assert raw(db_path, tables) == [
        ("probe_state",),
        ("results",),
        ("rollups_hourly",),
        ("transitions",),
    ]
    before = {t: raw(db_path, f"SELECT * FROM {t} ORDER BY 1, 2") for (t,) in raw(db_path, tables)}

    async with Store.open(db_path, clock=clock) as store:
        assert raw(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert len(store.last_results("web", 100)) == 11
        assert store.load_states()["web"].status is Status.DOWN
        assert [t.current for t in store.transitions("web", 0, NOW + 1)] == [
            Status.UP,
            Status.DOWN,
        ]
        assert store.outbox_count("pending") == 0
        await store.outbox_add([Row("n1:ops")])
        assert [r.id for r in store.outbox_pending()] == ["n1:ops"]
    # Step 4's and 5's columns come last, NULL in the rows written before them.
    before["results"] = [(*row, None, None) for row in before["results"]]
    before["probe_state"] = [(*row, None) for row in before["probe_state"]]
    for table, rows in before.items():
        assert raw(db_path, f"SELECT * FROM {table} ORDER BY 1, 2") == rows, table


async def test_add_is_committed_when_it_returns(store: Store, db_path: Path) -> None:
    await store.outbox_add([Row("a:ops"), Row("a:tg", notifier="tg", notification='{"x": "é"}')])
    # Another connection (another process, after a crash) sees it at once.
    rows = raw(
        db_path, "SELECT id, notifier, notification, state, attempts FROM outbox ORDER BY id"
    )
    assert rows == [
        ("a:ops", "ops", '{"event": "down"}', "pending", 0),
        ("a:tg", "tg", '{"x": "é"}', "pending", 0),
    ]


async def test_add_commits_the_observations_queued_before_it(store: Store, db_path: Path) -> None:
    """The tracker state that decided an alert is on disk with (or before) its outbox row, so
    a restart neither repeats nor forgets it."""
    feeder = Feeder()
    obs = feeder.observe(make_result("db", NOW, Status.DOWN))
    assert obs.alert is not None
    store.submit(obs)
    await store.outbox_add([Row("b:ops")])
    assert raw(db_path, "SELECT probe, alerts_sent FROM probe_state") == [("db", 1)]


async def test_update_changes_only_the_given_columns(store: Store) -> None:
    await store.outbox_add([Row("c:ops")])
    await store.outbox_update("c:ops", attempts=4, next_attempt=NOW + 60, last_error="HTTP 503")
    (row,) = store.outbox_pending()
    assert (row.state, row.attempts, row.next_attempt, row.last_error) == (
        "pending",
        4,
        NOW + 60,
        "HTTP 503",
    )
    await store.outbox_update("c:ops", state="delivered", delivered_at=NOW + 61)
    assert store.outbox_pending() == []
    assert store.outbox_count("delivered") == 1
    with pytest.raises(ValueError, match="unknown outbox state"):
        await store.outbox_update("c:ops", state="gone")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown outbox state"):
        store.outbox_count("lost")  # type: ignore[arg-type]


async def test_pending_rows_by_due_time_and_duplicates(store: Store) -> None:
    await store.outbox_add(
        [
            Row("late:ops", created=NOW - 5, next_attempt=NOW + 30),
            Row("due:ops", created=NOW - 9, next_attempt=NOW - 1),
        ]
    )
    # Adding an id again leaves the stored row as it is.
    await store.outbox_add([Row("due:ops", notification="{}", attempts=9)])
    assert [r.id for r in store.outbox_pending()] == ["due:ops", "late:ops"]
    assert [r.id for r in store.outbox_pending(NOW)] == ["due:ops"]
    (due,) = store.outbox_pending(NOW)
    assert due.notification == '{"event": "down"}' and due.attempts == 0
    assert store.outbox_count("pending") == 2


async def test_concurrent_writers_each_wait_for_their_own_commit(store: Store) -> None:
    await asyncio.gather(*(store.outbox_add([Row(f"n{i}:ops")]) for i in range(200)))
    assert store.outbox_count("pending") == 200
    await asyncio.gather(
        *(store.outbox_update(f"n{i}:ops", state="delivered") for i in range(0, 200, 2))
    )
    assert store.outbox_count("delivered") == 100


async def test_settled_rows_are_pruned_after_retention_pending_ones_kept(
    db_path: Path,
) -> None:
    clock = Clock(NOW)
    async with Store.open(db_path, clock=clock, retention=3600) as store:
        await store.outbox_add(
            [Row("old-done:ops", created=NOW - 7200), Row("old-pending:ops", created=NOW - 7200)]
        )
        await store.outbox_update("old-done:ops", state="delivered")
    clock.now = NOW + 2 * 3600  # the next writer prunes on start
    async with Store.open(db_path, clock=clock, retention=3600) as store:
        await store.flush()
        assert [r.id for r in store.outbox_pending()] == ["old-pending:ops"]
        assert store.outbox_count("delivered") == 0


async def test_writes_before_start_and_after_close(db_path: Path, clock: Clock) -> None:
    store = Store.open(db_path, clock=clock)
    await store.outbox_add([Row("early:ops")])  # starts the writer itself
    assert store.outbox_count("pending") == 1
    await store.close()
    with pytest.raises(Exception, match="closed"):
        await store.outbox_add([Row("late:ops")])
