"""Push monitors: heartbeats from jobs become results, and so do their silences.

The App owns one `PushMonitors` over the enabled push probes (probe/probers/push.py). The web
server hands it each call of `/api/v1/push/{token}` (probe/web/push_route.py); it finds the
probe, rate-limits it, and makes a `Result` of kind "push" that goes to `App._on_result`
like any check's, so thresholds, alerts, maintenance, the store, the page, the API and
/metrics treat push probes as any other. One timer task, sleeping until the earliest
deadline, makes the down results of silence: a probe without a heartbeat for `interval +
grace` is down ("no heartbeat since ..."), and stays down with one more such result every
`interval` (so failure thresholds, alert repeats and the SLA's time see a probe that is
checked) until the next heartbeat. It lives in the main process, beside the web server, and
never in a worker: the scheduler never sees push probes.

Deadlines are timed on the monotonic clock: a wall clock set forward (NTP, a resumed VM) does
not make every push probe down at once, nor one set back delay the silence. Wall time only
labels results and is what the store keeps.

State across restarts: every push result carries the last heartbeat's time in its details
(`last_heartbeat`), so the clock is recovered from the store's last result at start (and
when a reload adds a probe the store knows): a restart neither resets it nor forgets an
overdue probe. What is not kept: a `/start` not yet followed by its heartbeat, and the time
a never-seen probe has been watched when no result was stored yet. A probe found overdue at
start is down from its deadline, not from the restart: its first silence result is dated at
the deadline (so the SLA does not count the time in between as up).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from probe.core.result import Result, Status, utc_iso
from probe.probers.push import PushSpec
from probe.rate_limit import Bucket, KeyedBuckets
from probe.web.push_route import UNKNOWN_BURST, UNKNOWN_RATE, Heartbeat, PushReply

__all__ = ["HEARTBEAT_BURST", "HEARTBEAT_RATE", "PushMonitors", "push_specs", "stored_verdict"]

log = logging.getLogger("probe.push")

# Heartbeats per push probe: a burst of 10, then 2 a second. A job calls once a run; a
# loop calling in a hurry is a bug that must not fill the store.
HEARTBEAT_RATE = 2.0
HEARTBEAT_BURST = 10.0
# The longest the timer sleeps (a heartbeat or a reload wakes it sooner).
RECHECK = 30.0


def push_specs(specs: Iterable[object]) -> list[PushSpec]:
    return [spec for spec in specs if isinstance(spec, PushSpec)]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _iso(moment: float) -> str:
    return utc_iso(datetime.fromtimestamp(moment, UTC))


def _moment(value: object) -> float | None:
    """A time `_iso` wrote into a result's details, read back (None when absent or bad)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _push_result(
    spec: PushSpec,
    status: Status,
    message: str,
    now: float,
    details: dict[str, object],
    latency: float | None = None,
) -> Result:
    """A push probe's result at wall time `now` (its endpoint names no token)."""
    return Result(
        name=spec.name,
        kind=spec.kind,
        endpoint=spec.endpoint(),
        status=status,
        latency=latency,
        message=message,
        time=datetime.fromtimestamp(now, UTC),
        details=details,
    )


def stored_verdict(spec: PushSpec, last: Result | None, now: float) -> Result:
    """What `probe once` says of a push probe: judged from its last stored result, as the
    running App would judge it now (it cannot ask the job). Unknown without one."""
    status, message = Status.UNKNOWN, "no heartbeat recorded (push probes are checked by"
    message += " their jobs' calls to /api/v1/push/...)"
    details: dict[str, object] = {}
    if last is not None and last.kind == spec.kind:
        last_beat = _moment(last.details.get("last_heartbeat"))
        since = _moment(last.details.get("watching_since")) or last_beat or now
        anchor = last_beat if last_beat is not None else since
        details = {"last_heartbeat": None if last_beat is None else _iso(last_beat)}
        if now > anchor + spec.silence_allowed:
            status = Status.DOWN
            message = (
                f"no heartbeat since {_iso(last_beat)}"
                if last_beat is not None
                else f"no heartbeat since probe started at {_iso(since)}"
            )
        else:
            status, message = last.status, f"{last.message} (at {utc_iso(last.time)})"
    return _push_result(spec, status, message, now, details)


@dataclass(slots=True)
class _Watch:
    """One push probe's clock."""

    spec: PushSpec
    bucket: Bucket
    since: float  # when watching began (wall clock): the anchor of a never-seen probe
    last_beat: float | None = None  # the last heartbeat's wall time
    # When the timer next makes a down result unless a heartbeat comes: `deadline` on the
    # monotonic clock (what the timer waits for), `due_at` the wall time it stands for (what
    # labels that result when it is already past, e.g. found overdue at a restart).
    deadline: float = 0.0
    due_at: float = 0.0
    silent: bool = False  # down for silence since the last heartbeat
    job_started: float | None = None  # monotonic time of the last /start not yet closed

    def due(self, due_at: float, wall: float, mono: float) -> None:
        """Make the next down result due at wall time `due_at` (now: `wall`, `mono`)."""
        self.due_at = due_at
        self.deadline = mono + (due_at - wall)

    def silence_message(self) -> str:
        if self.last_beat is None:
            return f"no heartbeat since probe started at {_iso(self.since)}"
        return f"no heartbeat since {_iso(self.last_beat)}"


class PushMonitors:
    """The push probes of a running App: `receive` (from the web server), `start`/`stop`
    (the timer of silences) and `configure` (a reload). `last_result(name)` is what the
    tracker knows of a probe (seeded from the store), read when a probe is first watched."""

    def __init__(
        self,
        specs: Iterable[PushSpec],
        on_result: Callable[[Result], None],
        last_result: Callable[[str], Result | None],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_result = on_result
        self._last_result = last_result
        self._clock = clock
        self._monotonic = monotonic
        self._watches: dict[str, _Watch] = {}
        self._by_digest: dict[bytes, _Watch] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._specs = list(specs)
        # Unknown tokens per client address (push_route throttles them): kept here, so a
        # reload that rebuilds the web server does not start the count over.
        self.misses = KeyedBuckets(UNKNOWN_RATE, UNKNOWN_BURST)

    # -- lifecycle

    def start(self) -> None:
        """Watch the probes from now on (their clocks read from `last_result`) and start
        the timer. Called once the tracker holds what the store knows."""
        self.configure(self._specs)
        self._timer = asyncio.create_task(self._silences(), name="push-silences")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    def configure(self, specs: Iterable[PushSpec]) -> None:
        """Watch `specs` (a reload's): a probe watched already keeps its clock (a changed
        interval or grace moves its deadline), a new one starts from what the store knows."""
        now = self._clock()
        watches: dict[str, _Watch] = {}
        for spec in specs:
            watch = self._watches.get(spec.name)
            if watch is None:
                watch = self._restored(spec, now)
            elif watch.spec != spec:
                allowed_before = watch.spec.silence_allowed
                watch.spec = spec
                # A silent probe keeps its next down result where it was: moving it to the
                # new allowance, already past, would make one more at once.
                if spec.silence_allowed != allowed_before and not watch.silent:
                    anchor = watch.last_beat if watch.last_beat is not None else watch.since
                    watch.due(anchor + spec.silence_allowed, now, self._monotonic())
            watches[spec.name] = watch
        self._watches = watches
        # Looked up by the token's SHA-256, not by comparing the token with each configured
        # one: a dict lookup on a digest costs the same for every token and every number of
        # probes, and its timing depends on the digest, which a caller cannot steer towards
        # a real token's without knowing it (the dict's own equality test on a digest then
        # needs no second, constant-time compare: it reveals nothing of the token).
        self._by_digest = {_digest(w.spec.token.get_secret_value()): w for w in watches.values()}
        self._wake.set()

    def _restored(self, spec: PushSpec, now: float) -> _Watch:
        """A probe's clock from its last stored result: the last heartbeat it names (and,
        after a silence result, the next one due an interval later)."""
        mono = self._monotonic()
        bucket = Bucket(HEARTBEAT_RATE, HEARTBEAT_BURST, updated=mono)
        watch = _Watch(spec, bucket, now)
        last = self._last_result(spec.name)
        if last is None or last.kind != spec.kind:
            watch.due(now + spec.silence_allowed, now, mono)
            return watch
        watch.last_beat = _moment(last.details.get("last_heartbeat"))
        watch.since = _moment(last.details.get("watching_since")) or watch.last_beat or now
        anchor = watch.last_beat if watch.last_beat is not None else watch.since
        due_at = anchor + spec.silence_allowed
        watch.silent = bool(last.details.get("silence"))
        if watch.silent:
            # Down already: the next down result an interval after the last one.
            due_at = max(due_at, last.time.timestamp() + spec.interval)
        # Never before the last stored result: results of a probe go forward in time.
        watch.due(max(due_at, last.time.timestamp()), now, mono)
        return watch

    # -- heartbeats

    def receive(self, token: str, beat: Heartbeat) -> PushReply:
        watch = self._by_digest.get(_digest(token))
        if watch is None:
            return PushReply(found=False)
        wait = watch.bucket.take(self._monotonic())
        if wait > 0:
            return PushReply(found=True, retry_after=wait)
        if beat.start:
            watch.job_started = self._monotonic()
            return PushReply(found=True)
        self._on_result(self._heartbeat_result(watch, beat))
        self._wake.set()
        return PushReply(found=True)

    def _heartbeat_result(self, watch: _Watch, beat: Heartbeat) -> Result:
        now = self._clock()
        spec = watch.spec
        status = beat.status or Status.UP
        latency = beat.latency
        ran: float | None = None
        if watch.job_started is not None:
            ran = max(self._monotonic() - watch.job_started, 0.0)
            watch.job_started = None
            if latency is None:
                latency = ran
        message = beat.message
        if message is None:
            message = "heartbeat" if status is Status.UP else "the job reported a failure"
        if ran is not None:
            message = f"{message} (ran {ran:.1f} s)"
        watch.last_beat = now
        watch.silent = False
        watch.due(now + spec.silence_allowed, now, self._monotonic())
        details: dict[str, object] = {"last_heartbeat": _iso(now)}
        if ran is not None:
            details["ran_s"] = round(ran, 3)
        return _push_result(spec, status, message, now, details, latency)

    # -- silences

    async def _silences(self) -> None:
        while True:
            self._wake.clear()
            mono = self._monotonic()
            for watch in list(self._watches.values()):
                if watch.deadline <= mono:
                    self._silent(watch, self._clock(), mono)
            following = min((w.deadline for w in self._watches.values()), default=None)
            delay = RECHECK if following is None else min(max(following - mono, 0.0), RECHECK)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _silent(self, watch: _Watch, now: float, mono: float) -> None:
        spec = watch.spec
        # Dated when it fell due: the same moment while running, the deadline when found
        # overdue at a start (never later than now, should the wall clock have gone back).
        when = min(now, watch.due_at)
        watch.silent = True
        watch.due(now + spec.interval, now, mono)
        last_beat = None if watch.last_beat is None else _iso(watch.last_beat)
        details: dict[str, object] = {
            "last_heartbeat": last_beat,
            "watching_since": _iso(watch.since),
            "silence": True,
        }
        result = _push_result(spec, Status.DOWN, watch.silence_message(), when, details)
        try:
            self._on_result(result)
        except Exception:  # one probe's trouble must not end every push probe's timer
            log.exception("%s: recording a missed heartbeat failed", spec.name)
