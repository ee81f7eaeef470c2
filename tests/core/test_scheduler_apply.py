"""Scheduler.apply, the scheduler's half of a reload: probes added, replaced and removed in
place while the others keep their loop and phase."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from probe.core.result import Result
from probe.core.scheduler import Scheduler
from tests.core.test_scheduler import FakeProber

pytestmark = pytest.mark.slow


def _times(results: list[Result], name: str) -> list[float]:
    return [r.time.timestamp() for r in results if r.name == name]


async def test_unchanged_probes_keep_their_loop_and_phase() -> None:
    results: list[Result] = []
    a, b = FakeProber("a", interval=0.2), FakeProber("b", interval=0.2)
    scheduler = Scheduler([a, b], results.append)
    scheduler.start()
    await asyncio.sleep(0.5)
    before = list(a.starts)
    ended = scheduler.apply([FakeProber("c", interval=0.2)], removed=["b"])
    await asyncio.wait(ended)
    await asyncio.sleep(0.5)
    await scheduler.stop(grace=1.0)
    starts = a.starts
    assert starts[: len(before)] == before
    # a's ticks stay on the same fixed-rate grid across the reload: no extra, none missed.
    steps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(0.15 < step < 0.3 for step in steps), steps
    assert scheduler.probe_count == 2
    assert {r.name for r in results} == {"a", "b", "c"}
    last_b = max(_times(results, "b"))
    assert all(t > last_b - 0.05 for t in _times(results, "c"))


async def test_a_replaced_probe_keeps_its_phase() -> None:
    results: list[Result] = []
    old = FakeProber("p", interval=0.3)
    scheduler = Scheduler([old], results.append)
    scheduler.start()
    await asyncio.sleep(0.4)  # checked at 0 and 0.3: next due at 0.6
    new = FakeProber("p", interval=0.3)
    applied_at = time.monotonic()
    scheduler.apply([new])
    await asyncio.sleep(0.5)
    await scheduler.stop(grace=1.0)
    assert len(old.starts) == 2
    # The new prober's first check is at the old phase (~0.2 s after the reload), not at
    # once and not a whole interval later.
    assert 0.1 < new.starts[0] - applied_at < 0.3
    assert scheduler.probe_count == 1


async def test_a_check_in_flight_reports_before_its_replacement_checks() -> None:
    results: list[Result] = []
    old = FakeProber("p", interval=0.2, timeout=2.0, delay=0.5)
    scheduler = Scheduler([old], results.append)
    scheduler.start()
    await asyncio.sleep(0.1)  # the first check runs until 0.5
    new = FakeProber("p", interval=0.2, timeout=2.0)
    ended = scheduler.apply([new])
    await asyncio.wait(ended)
    assert len(results) == 1  # the old check was not cancelled: it reported
    assert new.starts == []
    await asyncio.sleep(0.35)
    await scheduler.stop(grace=1.0)
    assert len(old.starts) == 1
    assert new.starts and new.starts[0] >= old.starts[0] + 0.5
    assert old.max_running == 1 and new.max_running == 1


async def test_a_removed_probe_stops_at_once_even_mid_check() -> None:
    results: list[Result] = []
    slow = FakeProber("slow", interval=0.2, timeout=5.0, behaviour="hang")
    scheduler = Scheduler([slow], results.append)
    scheduler.start()
    await asyncio.sleep(0.1)
    ended = scheduler.apply([], removed=["slow", "never-there"])
    done, _ = await asyncio.wait(ended, timeout=2.0)
    assert len(done) == 1
    await scheduler.stop(grace=1.0)
    assert results == []
    assert scheduler.probe_count == 0


async def test_a_shorter_interval_does_not_wait_out_the_old_one() -> None:
    results: list[Result] = []
    old = FakeProber("p", interval=30.0)
    scheduler = Scheduler([old], results.append)
    scheduler.start()
    await asyncio.sleep(0.1)
    new = FakeProber("p", interval=0.2)
    applied_at = time.monotonic()
    scheduler.apply([new])
    await asyncio.sleep(0.35)
    await scheduler.stop(grace=1.0)
    assert new.starts and new.starts[0] - applied_at < 0.3
