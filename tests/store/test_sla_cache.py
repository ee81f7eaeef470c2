"""The one SLA cache: figures of a real store, computed in a worker thread, shared by readers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store
from probe.store.sla_cache import SUMMARY_WINDOWS, SLACache, refresh_pause
from tests.store.helpers import NOW, Feeder, every

DAY = 86400.0


async def fill(store: Store) -> None:
    """`web`: every 10 min for 8 days, down for 12 h from 2 days ago; `db`: no data."""
    feeder = Feeder(Policy(interval=600))
    down_from, down_to = NOW - 2 * DAY, NOW - 1.5 * DAY
    for obs in feeder.series(
        "web",
        every(NOW - 8 * DAY, NOW, 600),
        lambda t: Status.DOWN if down_from <= t < down_to else Status.UP,
    ):
        store.submit(obs)
    await store.flush()


class Counted:
    """The real store, with the thread of each computation's first query recorded."""

    def __init__(self, store: Store, fail_first: bool = False) -> None:
        self.store = store
        self.threads: list[str] = []
        self.fail_first = fail_first

    def sla_many(self, names: Any, start: float, end: float) -> Any:
        self.threads.append(threading.current_thread().name)
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("disk on fire")
        return self.store.sla_many(names, start, end)


async def test_figures_of_every_window_in_a_worker_thread(store: Store) -> None:
    await fill(store)
    reader = Counted(store)
    cache = SLACache(reader, ["web", "db"], clock=lambda: NOW)
    assert cache.latest() is None  # never waits, and nothing was computed yet
    snapshot = await cache.figures()
    assert threading.main_thread().name not in reader.threads
    assert len(reader.threads) == len(SUMMARY_WINDOWS) + 1  # and "all"
    assert snapshot.of("web", "24h").sla == pytest.approx(100.0)
    assert snapshot.of("web", "7d").sla == pytest.approx(100 * (1 - 0.5 / 7))
    assert snapshot.of("web", "all").sla == pytest.approx(100 * (1 - 0.5 / 8))
    assert snapshot.of("db", "7d").sla is None
    assert snapshot.of("not configured", "7d").checks == 0
    # Within max_age every reader shares that snapshot; invalidate() forces a new one.
    assert await cache.figures() is snapshot and cache.latest() is snapshot
    cache.invalidate()
    again = await cache.figures()
    assert again is not snapshot and again.generation == snapshot.generation + 1


async def test_concurrent_readers_share_one_computation(store: Store) -> None:
    reader = Counted(store)
    cache = SLACache(reader, ["web"], clock=lambda: NOW)
    snapshots = await asyncio.gather(*(cache.figures() for _ in range(5)))
    assert all(s is snapshots[0] for s in snapshots)
    assert len(reader.threads) == len(SUMMARY_WINDOWS) + 1


@pytest.mark.slow
async def test_kept_fresh_for_readers_only_and_through_errors(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # A clock that stands still: the snapshot never expires for readers, so every computation
    # after the first is the background task's (it polls every 0.5 s here).
    reader = Counted(store, fail_first=True)
    cache = SLACache(reader, ["web"], clock=lambda: NOW, max_age=0.5)
    task = asyncio.create_task(cache.keep_fresh())
    try:
        await asyncio.sleep(1.5)
        assert "SLA figures not refreshed: disk on fire" in caplog.text
        assert cache.generation == 1  # failed, retried because still wanted; then idle
        await cache.figures()
        assert cache.generation == 1  # the reader was answered from the cache...
        await asyncio.sleep(1.0)
        assert cache.generation == 2  # ...and the task recomputed because it was read
        await asyncio.sleep(1.0)
        assert cache.generation == 2  # no reader since: no work
        cache.latest()  # a scrape counts as a reader too
        await asyncio.sleep(1.0)
        assert cache.generation == 3
        assert not task.done()
    finally:
        task.cancel()


@pytest.mark.parametrize(
    ("took", "max_age", "pause"),
    [
        (0.005, 60.0, 2.0),  # a small store: every 2 s
        (0.2, 60.0, 20.0),  # 1% of the time
        (1.2, 60.0, 46.8),  # 1,000 probes x 90 days: done before readers find it max_age old
        (12.0, 60.0, 36.0),  # 50,000 probes: the computation's own time counts
        (0.005, 0.5, 0.5),  # a tiny max_age: never busier than twice a second
    ],
)
def test_refresh_pause(took: float, max_age: float, pause: float) -> None:
    assert refresh_pause(took, max_age) == pytest.approx(pause)
