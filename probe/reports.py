"""Scheduled SLA reports (settings.sla) and the SLA rows `probe sla` prints.

Three parts, each usable alone:

- `next_report_time` / `report_window` / `report_bounds`: pure calendar maths. A report goes
  out at `settings.sla.time` ("HH:MM" or "HH:MM:SS", local wall time in settings.timezone):
  hourly at MM:SS of every hour, daily at HH:MM:SS, weekly on Sundays and monthly on the last
  day of the month at HH:MM:SS (EaseProbe's days), minutely at every whole minute (EaseProbe's
  debugging schedule; the time is ignored). When the time does not exist that day (clocks go
  forward through it) the report goes out at the first valid local time after the gap (the
  moment clocks jump); when it exists twice (clocks go back) it goes out at the first of the
  two, once.
- `sla_rows` / `build_report`: the per-probe rows (uptime %, up/down time, checks, incidents,
  p95 latency) for a window, from the store's `sla_many`, and the `sla` Notification holding
  them (`report = {window, label, start, end, rows}`; templates/README.txt).
- `ReportScheduler`: an asyncio task that sleeps until the next report time, builds the report
  for the period just ended and hands it to a callable (the App passes
  `Dispatcher.notify_sla`).

Each report covers the period that ended at (or just before) its report time:
`report_window` names it (hourly -> "hour", daily -> "day": the last complete clock hour or
calendar day in settings.timezone; weekly -> "week", monthly -> "month": the week or month
ending at the report time, that is from the previous report time (the Sunday before, the
last day of the month before, at the same time) up to it, so that consecutive reports tile
time with no gap and no overlap, and a report at "23:59:59" covers the calendar week Monday
to Sunday or the calendar month; minutely -> "24h", a rolling window, as EaseProbe's minutely
is for trying the setup out).

Delivery guarantees, kept simple on purpose: the scheduler remembers, in memory, the last
report time it handled, and never sends a report time twice (a clock that jumps back does not
repeat one; a clock that jumps forward over several report times sends only the latest).
Nothing is persisted: a report time that passed while the process was not running is not sent
after a restart, which also means a restart can never send a period twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol

from probe.config.models import ProbeSpec
from probe.notify.base import Event, Notification
from probe.store.sla import SLAFigures, window_bounds

__all__ = [
    "SCHEDULES",
    "ReportScheduler",
    "SLASource",
    "build_report",
    "next_report_time",
    "report_bounds",
    "report_window",
    "sla_rows",
    "store_report_builder",
    "window_label",
]

log = logging.getLogger("probe.reports")

SCHEDULES: tuple[str, ...] = ("none", "minutely", "hourly", "daily", "weekly", "monthly")

_WINDOW_OF: dict[str, str] = {
    "minutely": "24h",
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
}


class SLASource(Protocol):
    """What reports need of the store."""

    def sla_many(self, names: Sequence[str], start: float, end: float) -> dict[str, SLAFigures]:
        """SLA figures over [start, end) for every name."""
        ...


# --- when ------------------------------------------------------------------------------------


def _parse_hhmm(hhmm: str) -> tuple[int, int, int]:
    """ "HH:MM" or "HH:MM:SS" -> (hour, minute, second)."""
    parts = hhmm.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected HH:MM or HH:MM:SS, got {hhmm!r}")
    hour, minute = int(parts[0]), int(parts[1])
    second = int(parts[2]) if len(parts) == 3 else 0
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise ValueError(f"expected HH:MM or HH:MM:SS, got {hhmm!r}")
    return hour, minute, second


def _wall(dt: datetime) -> tuple[int, ...]:
    return (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def _local_time(day: date, hour: int, minute: int, second: int, tz: tzinfo) -> datetime:
    """The instant the local wall clock in `tz` shows `day` `hour`:`minute`:`second`, in `tz`.

    Twice shown (clocks go back): the first. Never shown (clocks go forward through it): the
    first valid local time after it, the moment the clocks jump.
    """
    naive = datetime(day.year, day.month, day.day, hour, minute, second)
    first = naive.replace(tzinfo=tz, fold=0)
    if _wall(first.astimezone(UTC).astimezone(tz)) == _wall(naive):
        return first.astimezone(UTC).astimezone(tz)
    # In a gap: fold=1 reads it with the offset after the jump (the earlier instant), fold=0
    # with the offset before it (the later one); the jump lies between. Find the first second
    # whose wall time is past `naive`.
    lo = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, tz)) < _wall(naive):
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, tz)


_SUNDAY = 6  # date.weekday()


def _last_day_of_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _candidate_days(schedule: str, start: date) -> Iterator[date]:
    """Days (from `start`, in order) on which a daily/weekly/monthly report goes out: every
    day, Sundays, or the last day of each month (EaseProbe's days)."""
    if schedule == "monthly":
        day = _last_day_of_month(start)
        while True:
            yield day
            day = _last_day_of_month(day + timedelta(days=1))
    day = start
    while True:
        if schedule == "daily" or day.weekday() == _SUNDAY:
            yield day
        day += timedelta(days=1)


def next_report_time(schedule: str, hhmm: str, tz: tzinfo, after: datetime) -> datetime | None:
    """The first report time strictly after `after` (aware), in `tz`; None for "none"."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown SLA schedule {schedule!r}; expected one of {SCHEDULES}")
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    if schedule == "none":
        return None
    hour, minute, second = _parse_hhmm(hhmm)
    if schedule in ("minutely", "hourly"):
        # Every real zone offset is a whole number of minutes, so local minutes start on UTC
        # minute boundaries: walk whole minutes (at most two hours of them), from the one
        # holding `after` (its MM:SS may still be ahead).
        offset = 0 if schedule == "minutely" else second
        t = int(after.timestamp()) // 60 * 60
        for _ in range(122):
            local = datetime.fromtimestamp(t, tz)
            if (
                schedule == "minutely" or local.minute == minute
            ) and t + offset > after.timestamp():
                return datetime.fromtimestamp(t + offset, tz)
            t += 60
        raise AssertionError("no hourly report time within two hours")  # pragma: no cover
    local_after = after.astimezone(tz)
    for day in _candidate_days(schedule, local_after.date() - timedelta(days=1)):
        at = _local_time(day, hour, minute, second, tz)
        if at > after:
            return at
    raise AssertionError("unreachable")  # pragma: no cover


def report_bounds(window: str, at: datetime, tz: tzinfo) -> tuple[float, float]:
    """[start, end) in Unix seconds of the report of `window` sent at the report time `at`.

    "week" and "month" end at `at` itself and start at the report time before it: the same
    local time seven days earlier, or on the last day of the month before. (Should `at` have
    been moved by a DST gap, the start is read at its moved wall time; once a year at most,
    for a time configured inside the gap.) Other windows are the store's `window_bounds`:
    the last complete hour or calendar day, or a rolling window ending at `at`.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    if window not in ("week", "month"):
        return window_bounds(window, at, tz)
    local = at.astimezone(tz)
    if window == "week":
        day = local.date() - timedelta(days=7)
    else:
        day = local.date().replace(day=1) - timedelta(days=1)
    start = _local_time(day, local.hour, local.minute, local.second, tz)
    return start.timestamp(), at.timestamp()


def report_window(schedule: str, at: datetime | None = None) -> str:
    """The SLA window a report of `schedule` covers (the period ended by its report time).

    `at` (the report time) does not change the answer today; it is accepted so that callers
    need not care if a schedule ever depends on it.
    """
    del at
    try:
        return _WINDOW_OF[schedule]
    except KeyError:
        raise ValueError(f"schedule {schedule!r} sends no reports") from None


# --- what --------------------------------------------------------------------------------------


def sla_rows(
    specs: Sequence[ProbeSpec], figures: Mapping[str, SLAFigures], window: str
) -> list[dict[str, Any]]:
    """One row per probe, as `probe sla --format json` prints them (README: the command line) and
    reports carry them: name, kind, endpoint, window, sla (percent, None without data), up_s,
    down_s, checks, incidents, p95_ms."""
    empty = SLAFigures()
    rows: list[dict[str, Any]] = []
    for spec in specs:
        f = figures.get(spec.name, empty)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "endpoint": spec.endpoint(),
                "window": window,
                "sla": None if f.sla is None else round(f.sla, 4),
                "up_s": round(f.up_s, 3),
                "down_s": round(f.down_s, 3),
                "checks": f.checks,
                "incidents": f.incidents,
                "p95_ms": None if f.p95_ms is None else round(f.p95_ms, 1),
            }
        )
    return rows


def window_label(window: str, start: float, end: float, tz: tzinfo) -> str:
    """The window as people read it: "2026-03-01", "2026-02-23 to 2026-03-01", "February 2026",
    "2026-03-01 09:00-10:00 CET", "last 24 hours"."""
    first = datetime.fromtimestamp(start, tz)
    if window == "day":
        return first.strftime("%Y-%m-%d")
    if window == "week":
        last = datetime.fromtimestamp(end, tz) - timedelta(days=1)
        return f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    if window == "month":
        return first.strftime("%B %Y")
    if window == "hour":
        return f"{first:%Y-%m-%d %H:%M}-{datetime.fromtimestamp(end, tz):%H:%M %Z}"
    if window == "all":
        return "since the first record"
    rolling = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
    return rolling.get(window, "last 90 days")


def _period_label(window: str, start: float, end: float, tz: tzinfo) -> str:
    """A report's period for people: "2026-03-01 00:00 to 2026-03-08 00:00" (a week),
    "February 2026 (2026-01-31 23:59:59 to 2026-02-28 23:59:59)" (a month); others as
    `window_label`."""
    if window not in ("week", "month"):
        return window_label(window, start, end, tz)
    first, last = datetime.fromtimestamp(start, tz), datetime.fromtimestamp(end, tz)
    shape = "%Y-%m-%d %H:%M:%S" if first.second or last.second else "%Y-%m-%d %H:%M"
    span = f"{first.strftime(shape)} to {last.strftime(shape)}"
    return span if window == "week" else f"{last:%B %Y} ({span})"


def build_report(
    store: SLASource, specs: Sequence[ProbeSpec], window: str, now: datetime, tz: tzinfo
) -> Notification:
    """The `sla` Notification for `window` sent at the report time `now` (blocking: it
    reads the store); the period is `report_bounds(window, now, tz)`."""
    start, end = report_bounds(window, now, tz)
    figures = store.sla_many([spec.name for spec in specs], start, end)
    return Notification(
        event=Event.SLA,
        time=now.timestamp(),
        report={
            "window": window,
            "label": _period_label(window, start, end, tz),
            "start": start,
            "end": end,
            "rows": sla_rows(specs, figures, window),
        },
    )


# --- the task ----------------------------------------------------------------------------------


class ReportScheduler:
    """Sends an SLA report at each report time of `schedule`.

    `build(at, window)` makes the report for the report time `at` (the App's reads the store
    in a thread); `deliver(notification)` hands it on. `clock` gives the wall-clock time
    (aware); `sleep(seconds)` waits. Sleeps last at most `max_sleep` seconds, and the next
    report time is recomputed after each, so a wall clock that jumps (NTP, a suspended VM) is
    noticed within `max_sleep`. Report times up to the moment `start()` runs are never sent.
    """

    def __init__(
        self,
        schedule: str,
        hhmm: str,
        tz: tzinfo,
        build: Callable[[datetime, str], Awaitable[Notification]],
        deliver: Callable[[Notification], object],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_sleep: float = 60.0,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown SLA schedule {schedule!r}")
        _parse_hhmm(hhmm)
        self.schedule = schedule
        self.hhmm = hhmm
        self.tz = tz
        self.build = build
        self.deliver = deliver
        self.clock = clock
        self.sleep = sleep
        self.max_sleep = max_sleep
        # Report times up to here are done (sent, or before the start); in memory only.
        self.last: datetime | None = None
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task (idempotent; nothing to do for schedule "none")."""
        if self._task is not None or self.schedule == "none":
            return
        self.last = self.clock()
        self._task = asyncio.create_task(self._run(), name="sla-reports")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            at = await self.step()
            if at is None:
                return

    def due(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(the report time to send now or None, the next report time after `last`)."""
        assert self.last is not None
        upcoming = next_report_time(self.schedule, self.hhmm, self.tz, self.last)
        if upcoming is None or upcoming > now:
            return None, upcoming
        # Due. After a jump over several report times only the latest goes out.
        at, skipped = upcoming, 0
        while (later := next_report_time(self.schedule, self.hhmm, self.tz, at)) is not None:
            if later > now:
                break
            at, skipped = later, skipped + 1
        if skipped:
            log.warning("SLA reports: the clock jumped; %d report time(s) skipped", skipped)
        return at, None

    async def step(self) -> datetime | None:
        """One round: send what is due, else sleep towards the next report time. Returns the
        report time handled or waited for; None when there will be none."""
        if self.last is None:
            self.last = self.clock()
        now = self.clock()
        at, upcoming = self.due(now)
        if at is None:
            if upcoming is None:
                return None
            await self.sleep(min(self.max_sleep, max(0.0, (upcoming - now).total_seconds())))
            return upcoming
        self.last = at
        window = report_window(self.schedule, at)
        try:
            notification = await self.build(at, window)
            self.deliver(notification)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SLA report for %s (%s) failed", at.isoformat(), window)
        else:
            self.sent += 1
            log.info("SLA report sent: %s (%s)", notification.report.get("label", ""), window)
        return at


def store_report_builder(
    store: Any, specs: Sequence[ProbeSpec], tz: tzinfo
) -> Callable[[datetime, str], Awaitable[Notification]]:
    """`build` for a ReportScheduler over the App's store: commits what is queued, then
    reads the figures in a thread (never on the event loop)."""

    async def build(at: datetime, window: str) -> Notification:
        flush = getattr(store, "flush", None)
        if flush is not None:
            try:
                await flush()
            except Exception as exc:  # the report still goes out, from what is committed
                log.warning("SLA report: the store could not commit recent results: %s", exc)
        return await asyncio.to_thread(build_report, store, specs, window, at, tz)

    return build
