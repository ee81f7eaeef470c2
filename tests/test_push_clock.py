"""The push monitors' clock, on its own (probe/push.py's PushMonitors, real timers on the
event loop, results collected as the App would take them): deadlines on the monotonic clock
whatever the wall clock does, a probe found overdue at a start dated down from its deadline,
and a reload that leaves a silent probe's next down result where it was."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from probe.core.result import Result, Status
from probe.probers.push import PushSpec
from probe.push import PushMonitors
from probe.web.push_route import Heartbeat
from tests.support.running_app import until

TOKEN = "clock-7Hq2Wm9Xr4Tb6Kv"


def spec(grace: str = "200ms") -> PushSpec:
    return PushSpec.model_validate(
        {"name": "job", "token": TOKEN, "interval": "300ms", "grace": grace}
    )


class Wall:
    """A wall clock that can be set forward or back, as NTP or a resumed VM does."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def results() -> list[Result]:
    return []


async def watching(
    results: list[Result], wall: Wall, last: Result | None = None, grace: str = "200ms"
) -> PushMonitors:
    monitors = PushMonitors([spec(grace)], results.append, lambda _name: last, clock=wall)
    monitors.start()
    return monitors


def stored(at: float, status: Status, **details: object) -> Result:
    return Result(
        name="job",
        kind="push",
        endpoint="push",
        status=status,
        latency=None,
        message="stored",
        time=datetime.fromtimestamp(at, UTC),
        details=details,
    )


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


async def test_a_wall_clock_set_forward_is_no_silence(results: list[Result]) -> None:
    wall = Wall()
    monitors = await watching(results, wall)
    try:
        assert monitors.receive(TOKEN, Heartbeat()).found
        beat = time.monotonic()
        wall.offset = 3600.0  # an hour forward, a moment after the heartbeat
        await asyncio.sleep(0.2)
        assert [r.status for r in results] == [Status.UP]  # no down before its time
        await until(lambda: len(results) == 2, timeout=5.0)
        assert results[1].status is Status.DOWN
        assert time.monotonic() - beat >= 0.5  # interval + grace after the heartbeat
    finally:
        await monitors.stop()


async def test_a_wall_clock_set_back_does_not_delay_the_silence(results: list[Result]) -> None:
    wall = Wall()
    monitors = await watching(results, wall)
    try:
        assert monitors.receive(TOKEN, Heartbeat()).found
        wall.offset = -3600.0  # an hour back
        await until(lambda: len(results) == 2, timeout=5.0)  # not an hour later
        assert results[1].status is Status.DOWN
        assert results[1].time <= datetime.fromtimestamp(wall(), UTC)
    finally:
        await monitors.stop()


async def test_overdue_at_start_is_down_from_its_deadline(results: list[Result]) -> None:
    # The last heartbeat 100 s ago, 0.5 s allowed: down since 99.5 s ago, not since now
    # (the SLA must not count those 99.5 s as up).
    beat_at = time.time() - 100.0
    last = stored(beat_at, Status.UP, last_heartbeat=iso(beat_at))
    monitors = await watching(results, Wall(), last)
    try:
        await until(lambda: len(results) >= 1, timeout=5.0)
        first = results[0]
        assert first.status is Status.DOWN
        assert first.time.timestamp() == pytest.approx(beat_at + 0.5, abs=0.01)
        assert first.message.startswith("no heartbeat since ")
        # The next one an interval after now, dated now: not a catch-up burst.
        await until(lambda: len(results) >= 2, timeout=5.0)
        assert results[1].time.timestamp() >= time.time() - 1.0
    finally:
        await monitors.stop()


async def test_a_reload_keeps_a_silent_probes_next_down_result(results: list[Result]) -> None:
    # Silent already: the last down result a moment ago, the heartbeat 10 s ago.
    now = time.time()
    last = stored(now - 0.05, Status.DOWN, last_heartbeat=iso(now - 10), silence=True)
    monitors = await watching(results, Wall(), last)
    try:
        monitors.configure([spec(grace="250ms")])  # its allowance changed by a reload
        await asyncio.sleep(0.1)
        assert results == []  # no extra down result at once
        await until(lambda: len(results) == 1, timeout=5.0)  # the next one, when due
        assert results[0].status is Status.DOWN
    finally:
        await monitors.stop()
