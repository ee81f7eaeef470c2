"""What the status page shows of a probe beyond its summary, read from the store and drawn:
the 90-day bar, the 24h response-time chart, the incidents."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from probe.core.result import Status
from probe.core.tracker import Transition
from probe.web import formatting as fmt
from probe.web.data import ProbeSummary, StoreReader

__all__ = [
    "BAR_DAYS",
    "CHART_H",
    "CHART_W",
    "Chart",
    "Day",
    "DayBar",
    "Incident",
    "ProbeDetail",
    "current_incidents",
    "read_details",
]

DAY = 86400.0
HOUR = 3600.0
BAR_DAYS = 90
INCIDENT_DAYS = 90
MAX_INCIDENTS = 5
# The 24h chart's drawing box (SVG user units).
CHART_W, CHART_H = 240.0, 40.0


@dataclass(frozen=True, slots=True)
class Day:
    start: float
    uptime: float | None  # percent; None: nothing measured that day


@dataclass(frozen=True, slots=True)
class Incident:
    start: float
    end: float | None  # None while ongoing
    duration_s: float


@dataclass(frozen=True, slots=True)
class DayBar:
    """The 90-day bar, drawn once per read: 90 elements per probe are most of a page's size
    and of its rendering time, so they are neither re-rendered per request nor repeated."""

    markup: Markup  # one <i> per day, its figure in the title (phrasing content: in <summary>)
    with_data: int  # days with measured time
    below: int  # days under 99.9%
    short: str  # the days under 100%, newest first, as text: shown with the probe's details


@dataclass(frozen=True, slots=True)
class Chart:
    """The 24h response-time chart, drawn: polylines in the CHART_W x CHART_H box."""

    lines: tuple[str, ...]
    max: str | None  # the highest hourly mean, as text; None without data
    mean: str | None


@dataclass(frozen=True, slots=True)
class ProbeDetail:
    """What the page shows of a probe beyond its summary, drawn when read: a few strings
    per probe, not 90 days and 24 hours of objects (thousands of probes' details stay in
    memory, and every live object is work for the garbage collector's full passes, which
    stop the event loop)."""

    bar: DayBar
    chart: Chart
    incidents: list[Incident]  # newest first, as stored when read (see current_incidents)


# --- reading -----------------------------------------------------------------------------------


def _incidents(changes: Sequence[Transition]) -> list[Incident]:
    """The outages in `changes`, newest first; one still open has no end."""
    found: list[Incident] = []
    start: float | None = None
    for change in changes:
        if change.current is Status.DOWN and start is None:
            start = change.time
        elif change.current is not Status.DOWN and start is not None:
            found.append(Incident(start, change.time, change.time - start))
            start = None
    if start is not None:
        found.append(Incident(start, None, 0.0))
    return list(reversed(found))


def current_incidents(stored: Sequence[Incident], item: ProbeSummary, now: float) -> list[Incident]:
    """The stored incidents brought up to the summary's live status: an outage that began
    or ended since they were read, or began before their window, is shown as it is now."""
    found = list(stored)
    open_one = found[0] if found and found[0].end is None else None
    if item.status is Status.DOWN and item.since is not None:
        if open_one is None or open_one.start > item.since:
            found.insert(0, Incident(item.since, None, 0.0))
            if open_one is not None:
                found.pop(1)
    elif open_one is not None and item.status is Status.UP and item.since is not None:
        found[0] = Incident(open_one.start, item.since, item.since - open_one.start)
    return [
        i if i.end is not None else Incident(i.start, None, max(0.0, now - i.start))
        for i in found[:MAX_INCIDENTS]
    ]


def read_details(store: StoreReader, names: Sequence[str], now: float) -> dict[str, ProbeDetail]:
    """The page's extra figures for probes `names`, in three queries whatever their number."""
    first_day = math.floor(now / DAY) * DAY - (BAR_DAYS - 1) * DAY
    first_hour = math.floor(now / HOUR) * HOUR - 23 * HOUR
    bars = store.daily_uptime(names, first_day, BAR_DAYS)
    latency = store.hourly_latency(names, first_hour, now + HOUR)
    changes = store.transitions_many(names, now - INCIDENT_DAYS * DAY, now + 1)
    details = {}
    for name in names:
        series: list[float | None] = [None] * 24
        for hour, mean in latency.get(name, []):
            index = int((hour - first_hour) // HOUR)
            if 0 <= index < 24:
                series[index] = mean
        days = [
            Day(first_day + i * DAY, v) for i, v in enumerate(bars.get(name) or [None] * BAR_DAYS)
        ]
        details[name] = ProbeDetail(
            bar=_day_bar(days),
            chart=_chart(series),
            incidents=_incidents(changes.get(name, [])),
        )
    return details


MAX_SHORT_DAYS = 30


def _day_bar(days: Sequence[Day]) -> DayBar:
    items = []
    for d in days:
        title = f"{fmt.when(d.start)[:10]}: {fmt.pct(d.uptime)}"
        items.append(f'<i class={fmt.grade(d.uptime)} title="{title}"></i>')  # no user text here
    measured = [d for d in days if d.uptime is not None]
    short = [d for d in reversed(measured) if d.uptime is not None and d.uptime < 100.0]
    if short:
        text = ", ".join(
            f"{fmt.when(d.start)[:10]} {fmt.pct(d.uptime)}" for d in short[:MAX_SHORT_DAYS]
        )
        more = len(short) - MAX_SHORT_DAYS
        text += f" and {more} more" if more > 0 else ""
        text += "; other days with data: 100%" if len(short) < len(measured) else ""
    else:
        text = "every day with data: 100%" if measured else "no data"
    return DayBar(
        markup=Markup("".join(items)),
        with_data=len(measured),
        below=sum(1 for d in measured if d.uptime is not None and d.uptime < 99.9),
        short=text,
    )


def _chart(series: Sequence[float | None]) -> Chart:
    values = [v for v in series if v is not None]
    if not values:
        return Chart((), None, None)
    top = max(values) or 1.0
    step = CHART_W / (len(series) - 1)
    lines: list[str] = []
    current: list[str] = []
    for i, value in enumerate(series):
        if value is None:
            if current:
                lines.append(" ".join(current))
            current = []
            continue
        y = CHART_H - (value / top) * (CHART_H - 2) - 1
        current.append(f"{i * step:.1f},{y:.1f}")
    if current:
        lines.append(" ".join(current))
    lines = [ln if " " in ln else _widened(ln) for ln in lines]
    return Chart(tuple(lines), fmt.ms(max(values)), fmt.ms(sum(values) / len(values)))


def _widened(point: str) -> str:
    """A lone point draws nothing as a polyline: a short flat segment around it instead,
    kept inside the box (the newest hour sits on its right edge)."""
    x_text, y = point.split(",")
    x = float(x_text)
    left, right = max(0.0, x - 2.0), min(CHART_W, x + 2.0)
    return f"{left:.1f},{y} {right:.1f},{y}"
