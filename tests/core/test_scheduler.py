"""The scheduler under test with small in-test probers: the probers are the scheduler's
inputs here, not the thing tested, so they are written to misbehave on purpose."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

import pytest

from probe.conditions import Condition
from probe.core.check import CheckContext, Outcome
from probe.core.result import Result, Status
from probe.core.scheduler import Scheduler, SchedulerStats, run_all_once, run_check
from probe.errors import ProbeError


@dataclass
class FakeProber:
    name: str
    interval: float = 0.1
    timeout: float = 0.1
    kind: str = "fake"
    endpoint: str = "fake://"
    behaviour: str = "ok"  # ok | hang | stubborn | raise | probe-error | slow
    delay: float = 0.0
    starts: list[float] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    shared: dict[str, int] | None = None
    conditions: tuple[Condition, ...] = ()

    async def check(self, ctx: CheckContext) -> Outcome:
        self.starts.append(time.monotonic())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        if self.shared is not None:
            self.shared["now"] += 1
            self.shared["max"] = max(self.shared["max"], self.shared["now"])
        try:
            if self.behaviour == "hang":
                ctx.phase = "waiting for the response"
                await asyncio.sleep(3600)
            if self.behaviour == "stubborn":
                ctx.phase = "stuck"
                for _ in range(3):
                    try:
                        await asyncio.sleep(0.4)
                    except asyncio.CancelledError:
                        continue  # ignores cancellation on purpose
            if self.behaviour == "raise":
                raise RuntimeError("driver blew up")
            if self.behaviour == "probe-error":
                raise ProbeError("connection refused", port=1)
            if self.delay:
                await asyncio.sleep(self.delay)
            return Outcome(True, "ok", {"k": 1})
        finally:
            self.running -= 1
            if self.shared is not None:
                self.shared["now"] -= 1


async def run_for(seconds: float, probers, **kwargs) -> tuple[list[Result], Scheduler]:
    results: list[Result] = []
    scheduler = Scheduler(probers, results.append, **kwargs)
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop(grace=1.0)
    return results, scheduler


@pytest.mark.slow
async def test_fixed_rate_ticks_on_the_monotonic_clock():
    prober = FakeProber("a", interval=0.1, delay=0.03)
    results, _ = await run_for(1.05, [prober])
    assert 9 <= len(results) <= 12
    gaps = [b - a for a, b in zip(prober.starts, prober.starts[1:], strict=False)]
    # fixed rate: the check's own 30 ms does not push the next one back
    assert abs(sum(gaps) / len(gaps) - 0.1) < 0.02


@pytest.mark.slow
async def test_first_checks_are_spread_over_the_first_interval():
    probers = [FakeProber(f"p{i}", interval=0.4) for i in range(4)]
    started = time.monotonic()
    await run_for(0.35, probers)
    offsets = [p.starts[0] - started for p in probers]
    for i, offset in enumerate(offsets):
        assert abs(offset - 0.1 * i) < 0.05, offsets


@pytest.mark.slow
async def test_hard_timeout_reports_the_phase_and_other_probes_keep_their_rate():
    hang = FakeProber("hang", interval=0.3, timeout=0.2, behaviour="hang")
    fast = FakeProber("fast", interval=0.1)
    results, _ = await run_for(1.0, [hang, fast])
    hung = [r for r in results if r.name == "hang"]
    assert hung and all(r.status is Status.DOWN for r in hung)
    assert hung[0].message == "timeout after 200ms during waiting for the response"
    assert hung[0].latency is None
    assert len([r for r in results if r.name == "fast"]) >= 8


@pytest.mark.slow
async def test_a_check_ignoring_cancellation_cannot_outlive_its_timeout():
    stubborn = FakeProber("stubborn", interval=0.3, timeout=0.1, behaviour="stubborn")
    started = time.monotonic()
    run = await run_check(stubborn, cancel_grace=0.1)
    assert time.monotonic() - started < 0.5
    assert (
        run.result.status is Status.DOWN
        and "timeout after 100ms during stuck" in run.result.message
    )
    assert run.straggler is not None and not run.straggler.done()
    run.straggler.cancel()
    await asyncio.wait({run.straggler})


@pytest.mark.slow
async def test_no_self_overlap_and_missed_ticks_are_skipped():
    stats = SchedulerStats()
    slow = FakeProber("slow", interval=0.1, timeout=0.1, behaviour="stubborn")
    await run_for(1.2, [slow], stats=stats, cancel_grace=0.05)
    assert slow.max_running == 1
    assert stats.skipped > 0


@pytest.mark.slow
async def test_raising_prober_gives_down_result_and_scheduler_carries_on():
    bad = FakeProber("bad", interval=0.1, behaviour="raise")
    refused = FakeProber("refused", interval=0.1, behaviour="probe-error")
    results, _ = await run_for(0.45, [bad, refused])
    bad_results = [r for r in results if r.name == "bad"]
    assert len(bad_results) >= 3
    assert bad_results[0].message == (
        "check failed: an internal error in the prober (details in the log)"
    )
    refused_results = [r for r in results if r.name == "refused"]
    assert refused_results[0].message == "connection refused"
    assert refused_results[0].details["port"] == 1


@pytest.mark.slow
async def test_concurrency_limit_is_global():
    shared = {"now": 0, "max": 0}
    probers = [FakeProber(f"p{i}", interval=0.2, delay=0.1, shared=shared) for i in range(10)]
    await run_for(0.6, probers, concurrency=2)
    assert shared["max"] == 2


@pytest.mark.slow
async def test_stop_lets_in_flight_checks_finish_then_cancels():
    finishing = FakeProber("finishing", interval=10, timeout=5, delay=0.3)
    results: list[Result] = []
    scheduler = Scheduler([finishing], results.append)
    scheduler.start()
    await asyncio.sleep(0.05)
    await scheduler.stop(grace=2.0)
    assert [r.status for r in results] == [Status.UP]

    hanging = FakeProber("hanging", interval=10, timeout=5, behaviour="hang")
    results.clear()
    scheduler = Scheduler([hanging], results.append)
    scheduler.start()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await scheduler.stop(grace=0.2)
    assert time.monotonic() - started < 1.0
    assert results == []  # cancelled at shutdown: no result invented


async def test_run_all_once_returns_results_in_probe_order():
    probers = [
        FakeProber("a", delay=0.05),
        FakeProber("b", behaviour="probe-error"),
        FakeProber("c", timeout=0.05, behaviour="hang"),
    ]
    results = await run_all_once(probers)
    assert [(r.name, r.status) for r in results] == [
        ("a", Status.UP),
        ("b", Status.DOWN),
        ("c", Status.DOWN),
    ]
    assert results[0].latency is not None and results[0].latency >= 0.05


@dataclass
class TimeoutFailsOnce(FakeProber):
    """A prober whose `timeout` attribute raises the first time the scheduler reads it for
    a check: an exception outside `check()`, which `run_check` does not turn into a result,
    so it reaches the probe's loop."""

    reads: int = 0

    def __getattribute__(self, attr: str) -> object:
        if attr == "timeout":
            reads = object.__getattribute__(self, "reads") + 1
            object.__setattr__(self, "reads", reads)
            if reads == 1:
                raise RuntimeError("timeout unreadable")
        return object.__getattribute__(self, attr)


@pytest.mark.slow
async def test_a_failing_loop_is_logged_and_the_probe_is_checked_again(caplog):
    flaky = TimeoutFailsOnce("flaky", interval=0.1)
    steady = FakeProber("steady", interval=0.1)
    with caplog.at_level(logging.ERROR, logger="probe.scheduler"):
        results, _ = await run_for(0.8, [flaky, steady], restart_delay=0.2)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "probe flaky: its check loop failed (RuntimeError: timeout unreadable)" in (
        record.getMessage()
    )
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    # checked again after the 200 ms pause, at its own rate; the other probe never paused
    flaky_results = [r for r in results if r.name == "flaky"]
    assert 3 <= len(flaky_results) <= 7 and all(r.ok for r in flaky_results)
    assert len([r for r in results if r.name == "steady"]) >= 7


@pytest.mark.slow
async def test_consecutive_loop_failures_back_off_up_to_the_bound(caplog):
    # Every read of `timeout` fails: the loop restarts after 0.1, 0.2, 0.3, 0.3 ... s.
    class AlwaysFails(FakeProber):
        @property  # type: ignore[override]
        def timeout(self) -> float:
            raise RuntimeError("never readable")

        @timeout.setter
        def timeout(self, value: float) -> None:
            pass

    prober = AlwaysFails("broken", interval=0.05)
    with caplog.at_level(logging.ERROR, logger="probe.scheduler"):
        await run_for(1.05, [prober], restart_delay=0.1, restart_max=0.3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # 0, 0.1, 0.3, 0.6, 0.9 s: five failures in 1.05 s, not one per 50 ms interval
    assert 4 <= len(errors) <= 6
    assert all("starting it again in" in r.getMessage() for r in errors)


@pytest.mark.parametrize("interval", [0.0, -0.0, -1.0, 1e-9, math.nan])
@pytest.mark.slow
async def test_an_interval_out_of_range_neither_stops_nor_spins_the_loop(interval, caplog):
    prober = FakeProber("zero", interval=interval)
    with caplog.at_level(logging.WARNING, logger="probe.scheduler"):
        results, _ = await run_for(0.5, [prober])
    # clamped to MIN_INTERVAL (50 ms): about ten checks, not one and not thousands
    assert 6 <= len(results) <= 12, len(results)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("is out of range; checking every 50ms" in r.getMessage() for r in caplog.records)


class RaisesGroup(FakeProber):
    """A prober whose mapping missed an exception group (as anyio's task groups raise)."""

    def __init__(self, name: str, leaf: BaseException) -> None:
        super().__init__(name, interval=10)
        self.leaf = leaf

    async def check(self, ctx):
        raise ExceptionGroup("unhandled errors in a TaskGroup", [self.leaf])


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "check failed: connection refused"),
        (KeyError("socket"), "check failed: an internal error in the prober (details in the log)"),
    ],
)
async def test_an_unmapped_exception_group_shows_no_python_internals(leaf, message):
    run = await run_check(RaisesGroup("grouped", leaf))
    assert run.result.message == message
    assert "TaskGroup" not in run.result.message and "Error" not in run.result.message


@dataclass
class Reads(FakeProber):
    """Sets the typed readings on its context, then ends as `behaviour` says (an outcome
    with `outcome_status` as its own reading, a ProbeError, a bug or a hang)."""

    outcome_status: int | None = None

    async def check(self, ctx: CheckContext) -> Outcome:
        ctx.http_status, ctx.cert_expiry = 0, 1.5e9
        if self.behaviour == "ok":
            return Outcome(True, "ok", {"status_code": 1}, http_status=self.outcome_status)
        return await super().check(ctx)


@pytest.mark.parametrize("behaviour", ["hang", "probe-error", "raise"])
async def test_readings_of_the_context_survive_a_check_that_gives_no_outcome(behaviour):
    run = await run_check(Reads("r", behaviour=behaviour), cancel_grace=0.1)
    assert run.result.status is Status.DOWN
    assert (run.result.http_status, run.result.cert_expiry) == (0, 1.5e9)


async def test_readings_of_the_outcome_win_and_none_leaves_the_context_s():
    run = await run_check(Reads("r", outcome_status=503))
    assert (run.result.http_status, run.result.cert_expiry) == (503, 1.5e9)
    run = await run_check(Reads("r"))
    assert (run.result.http_status, run.result.cert_expiry) == (0, 1.5e9)
    # Readings are not details: what users see is the prober's details alone.
    assert run.result.to_json()["details"] == {"status_code": 1}
    assert "http_status" not in run.result.to_json()


async def test_a_prober_that_reads_nothing_gives_no_readings():
    run = await run_check(FakeProber("plain"))
    assert (run.result.http_status, run.result.cert_expiry) == (None, None)


async def test_check_now_runs_one_extra_check_that_never_overlaps_the_schedule():
    results: list[Result] = []
    # A long interval: after its first check, only check_now() checks it.
    slow = FakeProber("slow", interval=3600, timeout=1.0, delay=0.1)
    scheduler = Scheduler([slow], results.append)
    scheduler.start()
    try:
        while len(results) < 1:
            await asyncio.sleep(0.01)
        assert scheduler.check_now("slow")
        assert scheduler.check_now("slow")  # the one running serves this ask too
        while len(results) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)
        assert len(results) == 2
        assert slow.max_running == 1
        assert not scheduler.check_now("nobody")
    finally:
        await scheduler.stop(grace=1.0)
    assert not scheduler.check_now("slow")  # stopped: nothing more


async def test_a_tick_during_an_extra_check_is_served_by_it():
    results: list[Result] = []
    prober = FakeProber("p", interval=0.2, timeout=1.0, delay=0.15)
    scheduler = Scheduler([prober], results.append)
    scheduler.start()
    try:
        while len(results) < 1:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)  # 0.05 s before the next tick
        assert scheduler.check_now("p")
        await asyncio.sleep(0.5)
    finally:
        await scheduler.stop(grace=1.0)
    assert prober.max_running == 1
