"""The status page: data read from the store, rendered with templates/status/page.html.j2.

`build_page_data` gathers what the page shows (summaries from the StatusSource; the 90-day
daily bars, the 24h latency series and the incidents from the store, read in a thread);
`render_status_page` filters, sorts and pages it as /api/v1/sla does and renders HTML. The
same HTML is served at `GET /` and written to `settings.status.path` by `write_static_page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2

import probe
from probe.core.result import Status
from probe.core.tracker import Transition
from probe.store.sla import HourRollup
from probe.web.data import WINDOWS, ProbeSummary, StatusSource
from probe.web.server import BadRequest, filter_summaries

__all__ = [
    "PageData",
    "ProbeRow",
    "build_page_data",
    "render_status_page",
    "write_static_page",
]

DAY = 86400.0
HOUR = 3600.0
BAR_DAYS = 90
INCIDENT_DAYS = 90
MAX_INCIDENTS = 5
REFRESH_RANGE = (5, 3600)
# The 24h chart's drawing box (SVG user units).
CHART_W, CHART_H = 240.0, 40.0


class PageStore(Protocol):
    """What the page reads from the store besides the StatusSource's summaries."""

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]: ...
    def transitions(self, name: str, since: float, until: float) -> list[Transition]: ...


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
class ProbeRow:
    summary: ProbeSummary
    days: list[Day]  # oldest first, BAR_DAYS of them
    latency: list[float | None]  # mean latency (seconds) per hour of the last 24, oldest first
    incidents: list[Incident]  # newest first


@dataclass(frozen=True, slots=True)
class PageData:
    now: float
    title: str
    rows: list[ProbeRow]


# --- reading -----------------------------------------------------------------------------------


def _days(rollups: Sequence[HourRollup], now: float) -> list[Day]:
    today = math.floor(now / DAY) * DAY
    first = today - (BAR_DAYS - 1) * DAY
    up = [0.0] * BAR_DAYS
    down = [0.0] * BAR_DAYS
    for row in rollups:
        index = int((row.hour - first) // DAY)
        if 0 <= index < BAR_DAYS:
            up[index] += row.time_up
            down[index] += row.time_down
    return [
        Day(first + i * DAY, None if up[i] + down[i] <= 0 else 100.0 * up[i] / (up[i] + down[i]))
        for i in range(BAR_DAYS)
    ]


def _latency(rollups: Sequence[HourRollup], now: float) -> list[float | None]:
    first = math.floor(now / HOUR) * HOUR - 23 * HOUR
    series: list[float | None] = [None] * 24
    for row in rollups:
        index = int((row.hour - first) // HOUR)
        if 0 <= index < 24 and row.latency_count > 0:
            series[index] = row.latency_sum / row.latency_count
    return series


def _incidents(changes: Sequence[Transition], now: float) -> list[Incident]:
    found: list[Incident] = []
    start: float | None = None
    for change in changes:
        if change.current is Status.DOWN and start is None:
            start = change.time
        elif change.current is not Status.DOWN and start is not None:
            found.append(Incident(start, change.time, change.time - start))
            start = None
    if start is not None:
        found.append(Incident(start, None, max(0.0, now - start)))
    return list(reversed(found))[:MAX_INCIDENTS]


def _read_rows(store: PageStore, summaries: Sequence[ProbeSummary], now: float) -> list[ProbeRow]:
    # One rollup read per probe covers both the bars and the chart (the 24h are inside the
    # 90 days). Daily rollups (another change) will make this cheaper.
    first = math.floor(now / DAY) * DAY - (BAR_DAYS - 1) * DAY
    rows = []
    for item in summaries:
        name = item.info.name
        rollups = store.rollups(name, first, now + HOUR)
        changes = store.transitions(name, now - INCIDENT_DAYS * DAY, now + 1)
        rows.append(
            ProbeRow(item, _days(rollups, now), _latency(rollups, now), _incidents(changes, now))
        )
    return rows


async def build_page_data(
    source: StatusSource, store_reader: PageStore, now: float, *, title: str = "Status"
) -> PageData:
    """Everything the page shows; the store is read in a thread, never on the event loop."""
    summaries = await source.summaries()
    rows = await asyncio.to_thread(_read_rows, store_reader, summaries, now)
    return PageData(now=now, title=title, rows=rows)


# --- rendering ---------------------------------------------------------------------------------


def template_root() -> Traversable:
    """The shipped templates: package data when installed, else the repository's folder."""
    try:
        root = importlib.resources.files("probe.templates")
        if root.joinpath("README.txt").is_file():
            return root
    except ModuleNotFoundError:
        pass
    return Path(probe.__file__).resolve().parent.parent / "templates"


@cache
def _template() -> jinja2.Template:
    source = template_root().joinpath("status", "page.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    return env.from_string(source)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, _ = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _pct(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 100.0:
        return "100%"
    return f"{math.floor(value * 1000) / 1000:.3f}%"  # never rounded up to 100%


def _grade(value: float | None) -> str:
    if value is None:
        return "none"
    if value >= 99.9:
        return "ok"
    if value >= 99.0:
        return "warn"
    return "bad"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _chart(series: Sequence[float | None]) -> dict[str, Any]:
    values = [v for v in series if v is not None]
    if not values:
        return {"lines": [], "max": None, "mean": None}
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
    # A lone point draws nothing as a polyline: widen it to a short flat segment.
    lines = [
        ln if " " in ln else f"{ln} {float(ln.split(',')[0]) + 2:.1f},{ln.split(',')[1]}"
        for ln in lines
    ]
    return {"lines": lines, "max": _ms(max(values)), "mean": _ms(sum(values) / len(values))}


_STATUS_RANK = {Status.DOWN: 0, Status.UNKNOWN: 1, Status.UP: 2}


def _group(row: ProbeRow) -> str:
    return row.summary.info.labels.get("group", "") or ""


def _sorted(rows: Sequence[ProbeRow]) -> list[ProbeRow]:
    """Groups holding a down probe first, then by group name (ungrouped last); inside a
    group down first, then unknown, then up; then by name."""
    down_groups = {_group(r) for r in rows if r.summary.status is Status.DOWN}
    return sorted(
        rows,
        key=lambda r: (
            _group(r) not in down_groups,
            _group(r) == "",
            _group(r),
            _STATUS_RANK[r.summary.status],
            r.summary.info.name,
        ),
    )


def _banner(rows: Sequence[ProbeRow]) -> dict[str, str]:
    known = [r for r in rows if r.summary.status is not Status.UNKNOWN]
    down = sum(1 for r in known if r.summary.status is Status.DOWN)
    if not known:
        return {"kind": "none", "text": "No data yet"}
    if down == 0:
        return {"kind": "ok", "text": "All systems operational"}
    if down * 2 >= len(known):
        return {"kind": "major", "text": f"Major outage: {down} of {len(known)} down"}
    return {"kind": "partial", "text": f"Partial outage: {down} of {len(known)} down"}


def _refresh(query: Mapping[str, str]) -> int | None:
    value = query.get("refresh")
    if value is None or value == "":
        return None
    try:
        seconds = int(value)
    except ValueError:
        raise BadRequest(f"refresh: expected a whole number, got {value[:40]!r}") from None
    lo, hi = REFRESH_RANGE
    if not lo <= seconds <= hi:
        raise BadRequest(f"refresh: expected a whole number from {lo} to {hi}")
    return seconds


def _page_link(query: Mapping[str, str], page: int) -> str:
    params = {k: v for k, v in query.items() if k != "pg" and v != ""}
    params["pg"] = str(page)
    return "?" + urlencode(params)


def _row_view(row: ProbeRow) -> dict[str, Any]:
    item = row.summary
    last = item.last
    return {
        "name": item.info.name,
        "kind": item.info.kind,
        "endpoint": item.info.endpoint,
        "status": item.status.value,
        "since": _when(item.since),
        "message": "" if last is None else last.message,
        "checked": "" if last is None else _when(last.time.timestamp()),
        "latency": _ms(None if last is None else last.latency),
        "windows": [
            {
                "window": w,
                "text": _pct(item.windows[w].sla),
                "grade": _grade(item.windows[w].sla),
            }
            for w in WINDOWS
        ],
        "days": [
            {
                "grade": _grade(d.uptime),
                "title": f"{_when(d.start)[:10]}: {_pct(d.uptime)}",
            }
            for d in row.days
        ],
        "days_with_data": sum(1 for d in row.days if d.uptime is not None),
        "days_below": sum(1 for d in row.days if d.uptime is not None and d.uptime < 99.9),
        "chart": _chart(row.latency),
        "incidents": [
            {
                "start": _when(i.start),
                "start_iso": _iso(i.start),
                "end": "ongoing" if i.end is None else _when(i.end),
                "end_iso": None if i.end is None else _iso(i.end),
                "duration": _duration(i.duration_s),
            }
            for i in row.incidents
        ],
    }


def render_status_page(data: PageData, query: Mapping[str, str]) -> str:
    """The HTML page for `query` (EaseProbe's filters, pg/sz paging, refresh). Bad parameters
    raise BadRequest (the server turns it into a 400)."""
    refresh = _refresh(query)
    ordered = _sorted(data.rows)
    by_id = {id(r.summary): r for r in ordered}
    page, number, total = filter_summaries([r.summary for r in ordered], query)
    size = len(page) if page else 0
    sz_text = query.get("sz") or ""
    per_page = int(sz_text) if sz_text.isdigit() else 100
    pages = max(1, math.ceil(total / per_page)) if per_page else 1
    groups: list[dict[str, Any]] = []
    for summary in page:
        row = by_id[id(summary)]
        group = _group(row)
        if not groups or groups[-1]["name"] != group:
            groups.append({"name": group, "rows": []})
        groups[-1]["rows"].append(_row_view(row))
    has_groups = any(g["name"] for g in groups)
    for g in groups:
        g["label"] = g["name"] or ("Other" if has_groups else "")
    return _template().render(
        title=data.title,
        updated=_when(data.now),
        updated_iso=_iso(data.now),
        refresh=refresh,
        banner=_banner(data.rows),
        groups=groups,
        windows=WINDOWS,
        shown=size,
        total=total,
        probes=len(data.rows),
        page=number,
        pages=pages,
        prev_link=_page_link(query, number - 1) if number > 1 else None,
        next_link=_page_link(query, number + 1) if number < pages else None,
        chart_w=CHART_W,
        chart_h=CHART_H,
    )


# --- the static file ---------------------------------------------------------------------------


def write_static_page(path: Path | str, html: str) -> None:
    """Write `html` to `path` atomically: a temp file in the same directory, then a rename,
    so readers see the old page or the new one, never half of one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
