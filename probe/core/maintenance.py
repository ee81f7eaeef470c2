"""Maintenance windows: when a probe's alerts are muted and its time counts for no SLA.

Pure maths over Unix seconds, with zoneinfo for local wall-clock times; nothing here knows
the config (the config models convert to these values) or the App (which mutes and sends at
window ends). Two forms:

- `OneOffWindow`: fixed instants, [start, end).
- `RecurringWindow`: on some weekdays (every day by default), from a local wall-clock time,
  for a duration of real time. An occurrence belongs to the day its start falls on, so one
  that starts monday 23:30 for 1h covers monday 23:30 to tuesday 00:30. A start that does not
  exist that day (spring forward) begins at the first valid instant after it; one that exists
  twice (fall back) begins at the first of the two.

Every window is half-open: active at exactly its start, not at its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "MAX_RECURRING_DURATION",
    "MaintenanceCalendar",
    "OneOffWindow",
    "RecurringWindow",
    "Window",
    "outside",
]

DAY = 86400.0
# A recurring window's longest duration; it bounds how many days back an occurrence that is
# still running can have started, so `occurrence_at` looks at a fixed number of days.
MAX_RECURRING_DURATION = 7 * DAY
_DAYS_BACK = 8  # occurrences that began this many local days ago may still run (7 days + DST)


@dataclass(frozen=True, slots=True)
class OneOffWindow:
    """One stretch of time, [start, end) in Unix seconds."""

    start: float
    end: float
    name: str = ""

    def occurrence_at(self, t: float) -> tuple[float, float] | None:
        return (self.start, self.end) if self.start <= t < self.end else None

    def active_at(self, t: float) -> bool:
        return self.start <= t < self.end

    def next_end_after(self, t: float) -> float | None:
        return self.end if self.end > t else None

    def next_start_after(self, t: float) -> float | None:
        return self.start if self.start > t else None

    def occurrences(self, start: float, end: float) -> list[tuple[float, float]]:
        """The occurrences that overlap [start, end), whole."""
        return [(self.start, self.end)] if self.start < end and self.end > start else []


def local_start(day: date, at: time, zone: ZoneInfo) -> float:
    """The instant the wall-clock time `at` on `day` in `zone` begins: the first of two when
    the clocks go back, the first valid instant after it when that time is skipped."""
    wall = datetime.combine(day, at)
    first = datetime.combine(day, at, tzinfo=zone).timestamp()  # fold=0: the earlier offset
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) == wall:
        return first
    # Skipped (spring forward). fold=0 gave an instant after the change and fold=1 one before
    # it; the change itself, to the second, is the first valid instant after `at`.
    before = datetime.combine(day, at, tzinfo=zone).replace(fold=1).timestamp()
    low, high = int(before), int(first)  # offset(low) is the old one, offset(high) the new
    new_offset = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return float(high)


@dataclass(frozen=True, slots=True)
class RecurringWindow:
    """From the local time `at` for `duration` seconds, on `weekdays` (0 monday .. 6 sunday)."""

    at: time
    duration: float
    timezone: str = "UTC"
    weekdays: frozenset[int] = frozenset(range(7))
    name: str = ""
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.duration <= MAX_RECURRING_DURATION:
            raise ValueError("a recurring window lasts more than 0s and at most 7 days")
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def _starts(self, first: date, last: date) -> Iterable[float]:
        day = first
        while day <= last:
            if day.weekday() in self.weekdays:
                yield local_start(day, self.at, self._zone)
            day += timedelta(days=1)

    def _today(self, t: float) -> date:
        return datetime.fromtimestamp(t, self._zone).date()

    def occurrences(self, start: float, end: float) -> list[tuple[float, float]]:
        """The occurrences that overlap [start, end), whole, oldest first."""
        first = self._today(start) - timedelta(days=_DAYS_BACK)
        last = self._today(end) + timedelta(days=1)
        found = []
        for begin in self._starts(first, last):
            finish = begin + self.duration
            if begin < end and finish > start:
                found.append((begin, finish))
        return found

    def occurrence_at(self, t: float) -> tuple[float, float] | None:
        for begin, finish in self.occurrences(t, t + 1e-6):
            if begin <= t < finish:
                return begin, finish
        return None

    def active_at(self, t: float) -> bool:
        return self.occurrence_at(t) is not None

    def next_end_after(self, t: float) -> float | None:
        """The end of the running occurrence, or else of the next one."""
        today = self._today(t)
        ends = [
            begin + self.duration
            for begin in self._starts(today - timedelta(days=_DAYS_BACK), today + timedelta(8))
        ]
        return min((end for end in ends if end > t), default=None)

    def next_start_after(self, t: float) -> float | None:
        today = self._today(t)
        starts = self._starts(today, today + timedelta(days=8))
        return min((begin for begin in starts if begin > t), default=None)


Window = OneOffWindow | RecurringWindow


def outside(
    start: float, end: float, covered: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The parts of [start, end) that none of the `covered` stretches overlap, in order."""
    parts = []
    at = start
    for begin, finish in sorted(covered):
        if finish <= at:
            continue
        if begin >= end:
            break
        if begin > at:
            parts.append((at, begin))
        at = max(at, finish)
    if at < end:
        parts.append((at, end))
    return parts


@dataclass(frozen=True, slots=True)
class MaintenanceCalendar:
    """Every maintenance window: `shared` for every probe (each with the probes it names, or
    None for all), and `own` per probe name."""

    shared: tuple[tuple[Window, frozenset[str] | None], ...] = ()
    own: Mapping[str, tuple[Window, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.shared) or any(self.own.values())

    def windows_of(self, name: str) -> list[Window]:
        found = [w for w, names in self.shared if names is None or name in names]
        return [*found, *self.own.get(name, ())]

    def window_for(self, name: str, t: float) -> Window | None:
        """The window `name` is in at `t` (of several, the one that ends last), or None."""
        best: tuple[float, Window] | None = None
        for window in self.windows_of(name):
            occurrence = window.occurrence_at(t)
            if occurrence is not None and (best is None or occurrence[1] > best[0]):
                best = (occurrence[1], window)
        return None if best is None else best[1]

    def end_of(self, name: str, t: float) -> float | None:
        """When the maintenance `name` is in at `t` is over (overlapping windows joined)."""
        end: float | None = None
        at = t
        while (window := self.window_for(name, at)) is not None:
            occurrence = window.occurrence_at(at)
            assert occurrence is not None
            end = at = occurrence[1]
        return end

    def covered(self, name: str, start: float, end: float) -> list[tuple[float, float]]:
        """The stretches of [start, end) that `name`'s windows cover (may overlap)."""
        stretches = []
        for window in self.windows_of(name):
            for begin, finish in window.occurrences(start, end):
                stretches.append((max(begin, start), min(finish, end)))
        return stretches

    def next_change_after(self, t: float) -> float | None:
        """The next instant any window starts or ends after `t` (the App's timer)."""
        windows = [w for w, _ in self.shared]
        for own in self.own.values():
            windows.extend(own)
        moments = []
        for window in windows:
            for moment in (window.next_start_after(t), window.next_end_after(t)):
                if moment is not None:
                    moments.append(moment)
        return min(moments, default=None)
