"""Fixed-rate scheduling of checks on the monotonic clock.

Each probe has its own loop: a check is due `interval` after the previous one was due, the
first ones spread over the first interval so 5,000 probes do not fire at once. A check never
overlaps itself: a tick that arrives while the previous check still runs is skipped and
logged. Every check is bounded end to end by the probe's timeout, enforced here and not by the
prober, so no prober can outlive it; a prober that raises becomes a `down` result. A global
semaphore caps the checks in flight (`settings.probe.concurrency`).

A probe's loop must not end while the scheduler runs, whatever it is given: an interval below
MIN_INTERVAL (0, negative, NaN, 1ns) is raised to it, so the loop neither divides by zero nor
spins, and an exception that escapes a tick (a bug in a prober's attributes, in this module)
is logged as an error and the loop starts again after a backoff, instead of the probe going
quiet with the error kept in a task nobody reads until shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from probe.conditions import Condition, failed_conditions, names_read
from probe.core.check import Checkable, CheckContext, Outcome
from probe.core.result import Result, Status
from probe.durations import format_duration
from probe.errors import ProbeError

__all__ = [
    "CheckRun",
    "Scheduler",
    "SchedulerStats",
    "effective_interval",
    "run_all_once",
    "run_check",
]

log = logging.getLogger("probe.scheduler")

# Grid of due times (see Scheduler.start).
SLOT = 0.025
# How long a cancelled check may take to unwind before the scheduler stops waiting for it.
CANCEL_GRACE = 1.0
# Longest message kept from an exception nobody mapped (the prober's own mapping is the norm).
_MAX_UNMAPPED = 300
# Shortest interval the loop runs at. The config has its own, higher floor; this one only
# keeps a value that slipped past it (or a caller that skips the config) from a busy loop.
MIN_INTERVAL = 0.05
# Longest interval the loop runs at (a year): an infinite one would make `due` infinite.
MAX_INTERVAL = 365 * 86400.0
# Pause before a loop that failed starts again, doubled per failure in a row up to the max.
RESTART_DELAY = 1.0
RESTART_MAX = 60.0


def effective_interval(interval: float) -> float:
    """`interval` within [MIN_INTERVAL, MAX_INTERVAL]; NaN becomes MIN_INTERVAL."""
    if not interval >= MIN_INTERVAL:  # also true for NaN
        return MIN_INTERVAL
    return min(interval, MAX_INTERVAL)


@dataclass(slots=True)
class CheckRun:
    """A finished check: its result, and the task if it ignored cancellation and still runs."""

    result: Result
    straggler: asyncio.Task[Outcome] | None = None


def _result(
    prober: Checkable,
    status: Status,
    message: str,
    latency: float | None,
    details: dict[str, object],
    started: float,
    ctx: CheckContext,
    outcome: Outcome | None = None,
    *,
    judge: tuple[bool, float] | None = None,
) -> Result:
    """The Result; the typed readings are the context's, each overridden by the outcome's
    when it has one (as `details` are merged). `judge`: (connected, seconds taken) when the
    probe's conditions are to judge this check too (see `_apply_conditions`)."""
    http_status, cert_expiry = ctx.http_status, ctx.cert_expiry
    if outcome is not None:
        if outcome.http_status is not None:
            http_status = outcome.http_status
        if outcome.cert_expiry is not None:
            cert_expiry = outcome.cert_expiry
    degraded_conditions: Sequence[Condition] = getattr(prober, "degraded", ())
    degraded: str | None = None
    if judge is not None and (prober.conditions or degraded_conditions):
        facts = {
            "STATUS": http_status,
            **ctx.facts,
            "CONNECTED": judge[0],
            "RESPONSE_TIME": judge[1] * 1000.0,
        }
        if cert_expiry is not None:
            facts.setdefault("CERTIFICATE_EXPIRATION", (cert_expiry - time.time()) * 1000.0)
        if facts["STATUS"] is None:
            del facts["STATUS"]
        if prober.conditions:
            status, message, details = _apply_conditions(
                prober.conditions, facts, status, message, details, connected=judge[0]
            )
        if degraded_conditions and status is Status.UP:
            # Healthy by `conditions`; `degraded` says whether fully so (an up result either way).
            failed = failed_conditions(degraded_conditions, facts)
            if failed:
                degraded = "; ".join(failed)
                details = {**details, "degraded_conditions": failed}
    return Result(
        name=prober.name,
        kind=prober.kind,
        endpoint=prober.endpoint,
        status=status,
        latency=latency,
        message=message,
        time=datetime.fromtimestamp(started, UTC),
        details=details,
        http_status=http_status,
        cert_expiry=cert_expiry,
        degraded=degraded,
    )


def _apply_conditions(
    conditions: Sequence[Condition],
    facts: dict[str, object],
    status: Status,
    message: str,
    details: dict[str, object],
    *,
    connected: bool,
) -> tuple[Status, str, dict[str, object]]:
    """The probe's own verdict with its conditions applied.

    A check that got an answer is up only when the prober judged it so and every condition
    holds; the message of a failed one lists the conditions that failed, with their values.
    A check that got no answer stays down, unless a condition asks about `[CONNECTED]` and
    every condition holds: `[CONNECTED] == false` watches that a port stays closed. (Gatus
    lets any set of conditions pass without an answer; `[RESPONSE_TIME] < 500` alone would
    then call a dead service healthy.)"""
    failed = failed_conditions(conditions, facts)
    if failed:
        details = {**details, "failed_conditions": failed}
    if connected:
        if failed:
            text = "; ".join(failed)
            if status is Status.UP:
                return Status.DOWN, f"condition failed: {text}", details
            return status, f"{message}; condition failed: {text}", details
        return status, message, details
    if "CONNECTED" in names_read(conditions) and not failed:
        return Status.UP, f"{message}, as the conditions expect", details
    return status, message, details


async def run_check(prober: Checkable, *, cancel_grace: float = CANCEL_GRACE) -> CheckRun:
    """Run one check under its hard timeout and turn whatever happens into a Result."""
    ctx = CheckContext()
    started_wall = time.time()
    started = time.monotonic()
    task = asyncio.create_task(prober.check(ctx), name=f"check:{prober.name}")
    try:
        done, _ = await asyncio.wait({task}, timeout=prober.timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    elapsed = time.monotonic() - started

    if not done:
        task.cancel()
        unwound, _ = await asyncio.wait({task}, timeout=cancel_grace)
        straggler = None if unwound else task
        if unwound and not task.cancelled():
            task.exception()  # retrieved so asyncio does not log it as never retrieved
        message = f"timeout after {format_duration(prober.timeout)} during {ctx.phase}"
        details = {**ctx.details, "phase": ctx.phase, "timeout": True}
        judge = (False, elapsed)
        timed_out = _result(
            prober, Status.DOWN, message, None, details, started_wall, ctx, judge=judge
        )
        return CheckRun(timed_out, straggler)

    exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
    if exc is None:
        outcome = task.result()
        status = Status.UP if outcome.ok else Status.DOWN
        details = {**ctx.details, **outcome.details}
        run = _result(
            prober,
            status,
            outcome.message,
            elapsed,
            details,
            started_wall,
            ctx,
            outcome,
            judge=(True, elapsed),
        )
        return CheckRun(run)
    if isinstance(exc, ProbeError):
        details = {**ctx.details, **exc.details}
        judge = (False, elapsed)
        failed = _result(
            prober, Status.DOWN, exc.message, None, details, started_wall, ctx, judge=judge
        )
        return CheckRun(failed)
    # A prober bug or an exception its mapping missed: report it, never let it escape. The
    # whole story goes to the log; the user sees no Python class names or group wrappers
    # (an ExceptionGroup's "unhandled errors in a TaskGroup" says nothing about the service).
    log.warning("probe %s: unexpected %s in check", prober.name, type(exc).__name__, exc_info=exc)
    message = "check failed: " + _unmapped_text(exc)
    failed = _result(prober, Status.DOWN, message, None, dict(ctx.details), started_wall, ctx)
    return CheckRun(failed)


def _unmapped_text(exc: BaseException) -> str:
    """The system's words for an OSError (the first one in a group), else "internal error":
    any other exception's text is the code's own vocabulary, not the service's."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()[:_MAX_UNMAPPED]
    return "an internal error in the prober (details in the log)"


@dataclass(slots=True)
class SchedulerStats:
    """Counters the benchmark and the metrics read. Lag = actual start - due time."""

    checks: int = 0
    skipped: int = 0
    stragglers: int = 0
    lag_samples: list[float] = field(default_factory=list)
    keep_lag: bool = False

    def record_lag(self, lag: float) -> None:
        self.checks += 1
        if self.keep_lag:
            self.lag_samples.append(lag)


class Scheduler:
    """Runs every probe on its interval until `stop()`; results go to `on_result`."""

    def __init__(
        self,
        probes: Sequence[Checkable],
        on_result: Callable[[Result], None],
        *,
        concurrency: int = 256,
        stats: SchedulerStats | None = None,
        cancel_grace: float = CANCEL_GRACE,
        restart_delay: float = RESTART_DELAY,
        restart_max: float = RESTART_MAX,
    ) -> None:
        """`restart_delay`, `restart_max`: the backoff of a loop that failed (tests shorten
        it)."""
        self._probes = list(probes)
        self._by_name = {prober.name: prober for prober in self._probes}
        self._on_result = on_result
        self._semaphore = asyncio.Semaphore(concurrency)
        self._cancel_grace = cancel_grace
        self._restart_delay = restart_delay
        self._restart_max = restart_max
        self.stats = stats or SchedulerStats()
        self._loops: dict[str, asyncio.Task[None]] = {}
        # Each probe's next due time, kept by its loop: a reload that changes a probe starts
        # its new loop at the old one's phase.
        self._next_due: dict[str, float] = {}
        # Loops a reload replaced while their check ran: they end after that check.
        self._retiring: set[asyncio.Task[None]] = set()
        self._checking: set[str] = set()
        self._stragglers: dict[str, asyncio.Task[Outcome]] = {}
        # Extra checks asked for by check_now(), beside the loops, by probe name.
        self._extra: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._done = asyncio.Event()

    def start(self) -> None:
        """Start a loop per probe; first checks spread evenly over each probe's interval."""
        self._start_loops(self._probes)
        if not self._probes:
            self._done.set()

    def _start_loops(
        self,
        probers: Sequence[Checkable],
        replacing: Mapping[str, asyncio.Task[None]] | None = None,
    ) -> None:
        """A loop for each of `probers`. New probes' first checks are spread evenly over
        their interval; one in `replacing` starts once that loop has ended, at its phase."""
        now = asyncio.get_running_loop().time()
        replacing = replacing or {}
        fresh = [p for p in probers if p.name not in replacing]
        index = 0
        for prober in probers:
            previous = replacing.get(prober.name)
            if previous is None:
                offset = effective_interval(prober.interval) * index / len(fresh)
                index += 1
                # Due times fall on a grid of SLOT seconds, so the checks due within one
                # slot start in one wake-up of the event loop instead of one each (a wake-up
                # costs about as much CPU as a TCP check). Fixed rate keeps them on the grid.
                first_due = now + math.floor(offset / SLOT) * SLOT
            else:
                first_due = self._next_due.get(prober.name, now)
            self._loops[prober.name] = asyncio.create_task(
                self._probe_loop(prober, first_due, after=previous),
                name=f"schedule:{prober.name}",
            )

    def apply(
        self, probers: Sequence[Checkable], removed: Iterable[str] = ()
    ) -> list[asyncio.Task[None]]:
        """A reload's changes, in place: `removed` probes stop (a check in flight is
        cancelled: nothing would take its result); each of `probers` starts, or replaces the
        running probe of its name once that probe's check in flight (if any) has reported,
        keeping its phase. Every other probe's loop runs on untouched. Returns the loops that
        end, to await before closing the probers they ran."""
        ended: list[asyncio.Task[None]] = []
        for name in removed:
            task = self._loops.pop(name, None)
            self._next_due.pop(name, None)
            if task is not None:
                task.cancel()
                ended.append(task)
        replacing: dict[str, asyncio.Task[None]] = {}
        for prober in probers:
            task = self._loops.get(prober.name)
            if task is None:
                continue
            replacing[prober.name] = task
            ended.append(task)
            if prober.name in self._checking:
                self._retiring.add(task)  # ends after this check, which reports as usual
                task.add_done_callback(self._retiring.discard)
            else:
                task.cancel()
        gone = set(removed) | {p.name for p in probers}
        self._probes = [p for p in self._probes if p.name not in gone] + list(probers)
        self._by_name = {prober.name: prober for prober in self._probes}
        if not self._stopping:
            self._start_loops(probers, replacing)
        return ended

    def check_now(self, name: str) -> bool:
        """Check probe `name` once more, now, beside its schedule (an alert that waits on
        this probe's state asks for it). A check of it already running serves instead; the
        result goes to `on_result` as every result does. False when no such probe runs."""
        prober = self._by_name.get(name)
        if prober is None or self._stopping:
            return False
        if name in self._checking or name in self._extra:
            return True
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._run_one(prober, loop.time()), name=f"check-now:{name}")
        self._extra[name] = task
        task.add_done_callback(lambda _: self._extra.pop(name, None))
        return True

    async def wait(self) -> None:
        """Until every loop has ended (after `stop()`)."""
        if self._loops:
            await asyncio.gather(*self._loops.values(), return_exceptions=True)
        self._done.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop scheduling; let checks in flight finish for up to `grace` s, then cancel them."""
        self._stopping = True
        idle = [t for name, t in self._loops.items() if name not in self._checking]
        for task in idle:
            task.cancel()
        busy = [t for name, t in self._loops.items() if name in self._checking]
        busy += self._retiring
        busy += self._extra.values()
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace)
            if pending:
                log.warning("cancelling %d check(s) still running after %.0fs", len(pending), grace)
                for task in pending:
                    task.cancel()
        await self.wait()
        for straggler in self._stragglers.values():
            straggler.cancel()

    async def _probe_loop(
        self, prober: Checkable, due: float, after: asyncio.Task[None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        interval = effective_interval(prober.interval)
        if after is not None:
            # The loop this one replaces: its check in flight reports first, so a reload
            # neither doubles nor drops a check. Then this loop goes on at its phase: its
            # next due time, unless the new interval makes the next check due sooner.
            await asyncio.wait({after})
            now = loop.time()
            due = min(self._next_due.get(prober.name, due), now + interval)
            if due < now:
                due += math.ceil((now - due) / interval) * interval
        self._next_due[prober.name] = due
        this = asyncio.current_task()
        if interval != prober.interval:
            log.warning(
                "probe %s: an interval of %rs is out of range; checking every %s",
                prober.name,
                prober.interval,
                format_duration(interval),
            )
        failures = 0
        while not self._stopping and this not in self._retiring:
            try:
                due = await self._tick(prober, due, interval)
                self._next_due[prober.name] = due
            except Exception as exc:  # CancelledError (stop) is not an Exception: it ends us
                failures += 1
                pause = min(self._restart_delay * 2 ** min(failures - 1, 20), self._restart_max)
                log.error(
                    "probe %s: its check loop failed (%s: %s); starting it again in %s",
                    prober.name,
                    type(exc).__name__,
                    exc,
                    format_duration(pause),
                    exc_info=exc,
                )
                await asyncio.sleep(pause)
                due = loop.time()  # the ticks missed while paused are not made up
            else:
                failures = 0

    async def _tick(self, prober: Checkable, due: float, interval: float) -> float:
        """Wait until `due`, run the check unless the previous one still runs; the next due
        time (on the grid, past ticks skipped)."""
        loop = asyncio.get_running_loop()
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._stopping:
            return due
        straggler = self._stragglers.get(prober.name)
        if prober.name in self._checking or prober.name in self._extra:
            # An extra check (check_now) is running: its result serves for this tick too.
            log.debug("probe %s: tick served by the check asked for just before", prober.name)
        elif straggler is not None and not straggler.done():
            log.warning("probe %s: previous check ignored cancellation; tick skipped", prober.name)
            self.stats.skipped += 1
        else:
            self._stragglers.pop(prober.name, None)
            await self._run_one(prober, due)
        due += interval
        late = loop.time() - due
        if late > 0:
            missed = math.ceil(late / interval)
            due += missed * interval
            self.stats.skipped += missed
            # Per probe at debug level only: when the machine is overloaded every probe
            # skips at once, and the App's summary line reports the total instead.
            log.debug(
                "probe %s: check ran past its next tick; skipped %d tick(s)",
                prober.name,
                missed,
            )
        return due

    async def _run_one(self, prober: Checkable, due: float) -> None:
        async with self._semaphore:
            if self._stopping:
                return
            self._checking.add(prober.name)
            try:
                self.stats.record_lag(asyncio.get_running_loop().time() - due)
                run = await run_check(prober, cancel_grace=self._cancel_grace)
            finally:
                self._checking.discard(prober.name)
        if run.straggler is not None:
            self.stats.stragglers += 1
            self._stragglers[prober.name] = run.straggler
            log.warning("probe %s: check did not stop when cancelled", prober.name)
        try:
            self._on_result(run.result)
        except Exception:  # the pipeline must not take the probe's loop down with it
            log.exception("probe %s: handling the result failed", prober.name)

    @property
    def probe_count(self) -> int:
        return len(self._probes)


async def run_all_once(
    probes: Sequence[Checkable],
    *,
    concurrency: int = 256,
    on_done: Callable[[Result], None] | None = None,
) -> list[Result]:
    """One check of every probe (for `probe once`), results in the probes' order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prober: Checkable) -> Result:
        async with semaphore:
            run = await run_check(prober)
        if run.straggler is not None:
            run.straggler.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({run.straggler}, timeout=CANCEL_GRACE)
        if on_done is not None:
            on_done(run.result)
        return run.result

    return list(await asyncio.gather(*(one(p) for p in probes)))
