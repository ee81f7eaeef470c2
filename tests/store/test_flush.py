"""`settings.store.flush`: how long the writer gathers observations before one commit.

Nothing here asserts a duration. "Soon" is polled for with a deadline far beyond any
commit; "not yet" is checked while the writer is known to hold the observation in a window
much longer than the test takes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.store import Store
from tests.store.helpers import NOW, Clock, Feeder, make_result
from tests.store.test_outbox_store import Row

DEADLINE = 20.0  # seconds: "soon", generously


def stored_results(path: Path) -> int:
    """Results committed to the file, read by a connection of its own as another reader
    (`probe sla`, a person with sqlite3) would."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM results").fetchone()
        return int(count)
    finally:
        conn.close()


async def poll(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not within {DEADLINE}s: {what}")
        await asyncio.sleep(0.01)


async def test_flush_zero_commits_without_a_flush_call(db_path: Path, clock: Clock) -> None:
    feeder = Feeder()
    async with Store.open(db_path, clock=clock, flush=0) as store:
        for i in range(3):
            store.submit(feeder.observe(make_result("api", NOW + i)))
            await poll(lambda n=i + 1: stored_results(db_path) == n, f"result {i + 1} committed")
        assert [r.time.timestamp() for r in store.last_results("api", 10)] == [
            NOW + 2,
            NOW + 1,
            NOW,
        ]
        assert store.load_states()["api"].last_time == NOW + 2


async def test_default_window_commits_without_a_flush_call(db_path: Path, clock: Clock) -> None:
    feeder = Feeder()
    async with Store.open(db_path, clock=clock) as store:
        store.submit(feeder.observe(make_result("api", NOW)))
        await poll(lambda: stored_results(db_path) == 1, "the result committed")


async def until_gathering(store: Store) -> None:
    """Wait until the writer has taken the first observation into its batch: it is then in
    its gathering window (which the caller made far longer than the test), and what follows
    waits in its queue."""
    await poll(lambda: store.pending == 1, "the first observation taken by the writer")


async def test_long_window_holds_results_until_flush(db_path: Path, clock: Clock) -> None:
    feeder = Feeder()
    async with Store.open(db_path, clock=clock, flush=60) as store:
        store.submit(feeder.observe(make_result("api", NOW)))
        await until_gathering(store)
        store.submit(feeder.observe(make_result("api", NOW + 1)))
        await asyncio.sleep(0.5)  # twice the default window: still gathering
        assert stored_results(db_path) == 0 and store.pending == 1
        await asyncio.wait_for(store.flush(), DEADLINE)
        assert stored_results(db_path) == 2 and store.pending == 0


async def test_long_window_is_written_by_close(db_path: Path, clock: Clock) -> None:
    feeder = Feeder()
    store = Store.open(db_path, clock=clock, flush=60)
    await store.start()
    store.submit(feeder.observe(make_result("api", NOW)))
    await until_gathering(store)
    assert stored_results(db_path) == 0
    await asyncio.wait_for(store.close(), DEADLINE)
    assert stored_results(db_path) == 1


async def test_outbox_writes_do_not_wait_for_the_window(db_path: Path, clock: Clock) -> None:
    # The dispatcher awaits its outbox row before it sends: a long window must not delay an
    # alert. The results gathered so far are committed with it.
    feeder = Feeder()
    async with Store.open(db_path, clock=clock, flush=60) as store:
        store.submit(feeder.observe(make_result("api", NOW)))
        await until_gathering(store)
        await asyncio.wait_for(store.outbox_add([Row("n1:ops")]), DEADLINE)
        assert store.outbox_count("pending") == 1
        assert stored_results(db_path) == 1


@pytest.mark.parametrize("flush", [-1.0, float("nan"), 3601.0])
def test_flush_out_of_range_is_refused(tmp_path: Path, flush: float) -> None:
    with pytest.raises(ValueError, match="flush"):
        Store.open(tmp_path / "probe.db", flush=flush)
    assert not (tmp_path / "probe.db").exists()
