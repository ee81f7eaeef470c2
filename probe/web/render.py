"""The status page: rendered with templates/status/page.html.j2 from the StatusSource.

`StatusPage.render` sorts, filters and pages the StatusSource's cached summaries as
/api/v1/sla does, then reads what only the page shows (90 daily bars, the 24h latency series,
the incidents) for the probes on that page alone: three batched queries, in a thread, kept
drawn (markup strings) until the summaries are recomputed or the probe's status changes. So a
page of 100 out of 1,000 probes reads 100 probes' daily rollups, not 1,000 probes' hourly
ones, and a cached page costs only its render (in a thread too). The same HTML is served at
`GET /` and written to `settings.status.path` (with one more file per page when probes fill
several pages) by `write_status_files`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup

from probe.config.urls import icon_url
from probe.core.result import Status
from probe.core.tracker import Transition
from probe.errors import StartupError
from probe.shipped_templates import template_root
from probe.web.data import WINDOWS, ProbeSummary, StatusSource, StoreReader
from probe.web.query import filter_summaries, page_size, seconds

__all__ = [
    "ProbeDetail",
    "StatusPage",
    "write_static_page",
    "write_status_files",
]

DAY = 86400.0
HOUR = 3600.0
BAR_DAYS = 90
INCIDENT_DAYS = 90
MAX_INCIDENTS = 5
REFRESH_RANGE = (5, 3600)
# The 24h chart's drawing box (SVG user units).
CHART_W, CHART_H = 240.0, 40.0

PageLink = Callable[[Mapping[str, str], int], str]


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

    markup: Markup  # one <li> per day, its figure in the title (end tags omitted: valid HTML)
    with_data: int  # days with measured time
    below: int  # days under 99.9%
    short: str  # the days under 100%, newest first, as text: shown while the bar has focus


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
    incidents: list[Incident]  # newest first, as stored when read (see _current_incidents)


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


def _current_incidents(
    stored: Sequence[Incident], item: ProbeSummary, now: float
) -> list[Incident]:
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
        title = f"{_when(d.start)[:10]}: {_pct(d.uptime)}"
        items.append(f'<li class={_grade(d.uptime)} title="{title}">')  # no user text here
    measured = [d for d in days if d.uptime is not None]
    short = [d for d in reversed(measured) if d.uptime is not None and d.uptime < 100.0]
    if short:
        text = ", ".join(f"{_when(d.start)[:10]} {_pct(d.uptime)}" for d in short[:MAX_SHORT_DAYS])
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


# --- rendering ---------------------------------------------------------------------------------


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
    return Chart(tuple(lines), _ms(max(values)), _ms(sum(values) / len(values)))


def _widened(point: str) -> str:
    """A lone point draws nothing as a polyline: a short flat segment around it instead,
    kept inside the box (the newest hour sits on its right edge)."""
    x_text, y = point.split(",")
    x = float(x_text)
    left, right = max(0.0, x - 2.0), min(CHART_W, x + 2.0)
    return f"{left:.1f},{y} {right:.1f},{y}"


_STATUS_RANK = {Status.DOWN: 0, Status.UNKNOWN: 1, Status.UP: 2}


def _group(item: ProbeSummary) -> str:
    return item.info.labels.get("group", "") or ""


def _sorted(items: Sequence[ProbeSummary]) -> list[ProbeSummary]:
    """Groups holding a down probe first, then by group name (ungrouped last); inside a
    group down first, then unknown, then up; then by name."""
    down_groups = {_group(i) for i in items if i.status is Status.DOWN}
    return sorted(
        items,
        key=lambda i: (
            _group(i) not in down_groups,
            _group(i) == "",
            _group(i),
            _STATUS_RANK[i.status],
            i.info.name,
        ),
    )


def _banner(items: Sequence[ProbeSummary]) -> dict[str, str]:
    known = [i for i in items if i.status is not Status.UNKNOWN]
    down = sum(1 for i in known if i.status is Status.DOWN)
    if not known:
        return {"kind": "none", "text": "No data yet"}
    if down == 0:
        return {"kind": "ok", "text": "All systems operational"}
    if down * 2 >= len(known):
        return {"kind": "major", "text": f"Major outage: {down} of {len(known)} down"}
    return {"kind": "partial", "text": f"Partial outage: {down} of {len(known)} down"}


def _refresh(query: Mapping[str, str]) -> int | None:
    return seconds(query, "refresh", *REFRESH_RANGE)


def query_link(query: Mapping[str, str], page: int) -> str:
    """The live server's link to another page: the same query with another `pg`."""
    params = {k: v for k, v in query.items() if k != "pg" and v != ""}
    params["pg"] = str(page)
    return "?" + urlencode(params)


def _row_view(item: ProbeSummary, detail: ProbeDetail, now: float) -> dict[str, Any]:
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
        "bar": detail.bar,
        "chart": detail.chart,
        "incidents": [
            {
                "start": _when(i.start),
                "start_iso": _iso(i.start),
                "end": "ongoing" if i.end is None else _when(i.end),
                "end_iso": None if i.end is None else _iso(i.end),
                "duration": _duration(i.duration_s),
            }
            for i in _current_incidents(detail.incidents, item, now)
        ],
    }


@dataclass(frozen=True, slots=True)
class _View:
    """One page, chosen: what `_html` renders (built on the event loop, rendered in a thread)."""

    title: str
    icon: str | None
    now: float  # the page's time: status and latency are live (see StatusSource)
    refresh: int | None
    everything: Sequence[ProbeSummary]  # every probe, for the banner
    page: Sequence[ProbeSummary]
    details: Mapping[str, ProbeDetail]
    total: int
    number: int
    pages: int
    prev_link: str | None
    next_link: str | None


def _html(view: _View) -> str:
    groups: list[dict[str, Any]] = []
    for index, item in enumerate(view.page):
        group = _group(item)
        if not groups or groups[-1]["name"] != group:
            groups.append({"name": group, "rows": []})
        row = _row_view(item, view.details[item.info.name], view.now)
        row["index"] = index  # for ids unique on the page
        groups[-1]["rows"].append(row)
    has_groups = any(g["name"] for g in groups)
    for g in groups:
        g["label"] = g["name"] or ("Other" if has_groups else "")
    return _template().render(
        title=view.title,
        icon=view.icon,
        updated=_when(view.now),
        updated_iso=_iso(view.now),
        refresh=view.refresh,
        banner=_banner(view.everything),
        groups=groups,
        windows=WINDOWS,
        shown=len(view.page),
        total=view.total,
        probes=len(view.everything),
        page=view.number,
        pages=view.pages,
        prev_link=view.prev_link,
        next_link=view.next_link,
        chart_w=CHART_W,
        chart_h=CHART_H,
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    summaries: list[ProbeSummary]  # configuration order
    ordered: list[ProbeSummary]  # page order (_sorted)


class StatusPage:
    """The status page of a StatusSource's probes.

    Summaries come from the source (shared with the API; status live); the per-probe details
    of the probes on a page are read on first need and kept until the source recomputes its
    summaries or the probe's status changes, so a page is as fresh as /api/v1/sla and costs
    a render once cached.
    """

    def __init__(
        self, source: StatusSource, *, title: str = "Status", icon: str | None = None
    ) -> None:
        self.source = source
        self.title = title
        # Checked here as well as in the config: whoever builds a page, no `javascript:`.
        self.icon = None if icon is None else icon_url(icon)
        self._details: dict[str, tuple[float | None, ProbeDetail]] = {}  # (since, detail)
        self._details_for = -1  # the source's generation they belong to
        self._lock = asyncio.Lock()

    async def snapshot(self) -> Snapshot:
        """The source's summaries and their page order, taken once: the static files render
        every page from one snapshot (one sort, one consistent set of pages)."""
        summaries = await self.source.summaries()
        # Sorting thousands of summaries is milliseconds of Python: off the loop.
        return Snapshot(summaries, await asyncio.to_thread(_sorted, summaries))

    async def render(
        self,
        query: Mapping[str, str],
        *,
        link: PageLink = query_link,
        snapshot: Snapshot | None = None,
    ) -> str:
        """The HTML page for `query` (EaseProbe's filters, pg/sz paging, refresh) from
        `snapshot` (a new one when None); `link` makes the previous/next links. Bad
        parameters raise BadRequest (a 400)."""
        refresh = _refresh(query)
        size = page_size(query)
        snap = snapshot if snapshot is not None else await self.snapshot()
        page, number, total = await asyncio.to_thread(filter_summaries, snap.ordered, query)
        pages = max(1, math.ceil(total / size))
        details = await self._details_of(page)
        now = self.source.now()
        view = _View(
            title=self.title,
            icon=self.icon,
            now=now,
            refresh=refresh,
            everything=snap.summaries,
            page=page,
            details=details,
            total=total,
            number=number,
            pages=pages,
            prev_link=link(query, number - 1) if number > 1 else None,
            next_link=link(query, number + 1) if number < pages else None,
        )
        # 100 probes of markup is tens of milliseconds of CPU: off the loop, like the reads.
        return await asyncio.to_thread(_html, view)

    async def _details_of(self, page: Sequence[ProbeSummary]) -> dict[str, ProbeDetail]:
        # A probe's details are read again when its status changed since they were read:
        # its incidents changed (status changes are rare; the read is three small queries).
        async with self._lock:
            if self._details_for != self.source.generation:
                self._details = {}
                self._details_for = self.source.generation
            missing = [
                s
                for s in page
                if s.info.name not in self._details or self._details[s.info.name][0] != s.since
            ]
            if missing:
                names = [s.info.name for s in missing]
                now = self.source.now()
                read = await asyncio.to_thread(read_details, self.source.store, names, now)
                for item in missing:
                    self._details[item.info.name] = (item.since, read[item.info.name])
            return {s.info.name: self._details[s.info.name][1] for s in page}


# --- the static file ---------------------------------------------------------------------------


def check_target(path: Path) -> None:
    """Raise StartupError unless `path` is a regular file or a new name in an existing
    directory. The page is written by renaming a new file over `path`, which would replace
    a symlink (`-o /dev/stdout`) or a device node (`-o /dev/null`, as root) rather than write
    through it; and a missing directory is most often a typo, not a wish to create it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            raise StartupError(
                f"cannot write {path}: no directory {parent} (create it first)"
            ) from None
        return
    except NotADirectoryError:
        raise StartupError(f"cannot write {path}: a part of the path is not a directory") from None
    except OSError as err:
        raise StartupError(f"cannot write {path}: {err.strerror or err}") from None
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif stat.S_ISDIR(mode):
        what = "a directory"
    elif not stat.S_ISREG(mode):
        what = "a device, FIFO or socket"
    else:
        return
    raise StartupError(
        f"refusing to write {path}: it is {what}, not a regular file (name a regular file,"
        " or a new file in an existing directory)"
    )


def write_static_page(path: Path | str, html: str, *, make_parent: bool = False) -> None:
    """Write `html` to `path` atomically: a temp file in the same directory, then a rename,
    so readers see the old page or the new one, never half of one. `path` must be a regular
    file or a new name in an existing directory (see check_target); `make_parent` creates the
    directory first (the default path's, which the user never named)."""
    target = Path(path)
    if make_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    check_target(target)
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


def page_file(path: Path, number: int) -> Path:
    """The file of page `number` of the static set: `path` itself for page 1, then
    `status-2.html`, `status-3.html`, ... beside it for `path` = status.html."""
    if number == 1:
        return path
    return path.with_name(f"{path.stem}-{number}{path.suffix}")


async def write_status_files(
    page: StatusPage, path: Path | str, *, make_parent: bool = False
) -> list[Path]:
    """Write the unfiltered status page to `path`, one file per page of the default size
    linked by relative previous/next links, each file atomically; page files left from a
    time with more probes are removed. Returns the files written. Raises StartupError when
    a target is not a regular file or a new name in an existing directory."""
    target = Path(path)
    await asyncio.to_thread(_prepare_target, target, make_parent)

    def link(_query: Mapping[str, str], number: int) -> str:
        return quote(page_file(target, number).name)

    snap = await page.snapshot()
    count = max(1, math.ceil(len(snap.summaries) / page_size({})))
    written = []
    for number in range(1, count + 1):
        query = {"pg": str(number)} if number > 1 else {}
        html = await page.render(query, link=link, snapshot=snap)
        await asyncio.to_thread(write_static_page, page_file(target, number), html)
        written.append(page_file(target, number))
    await asyncio.to_thread(_remove_pages_after, target, count)
    return written


def _prepare_target(target: Path, make_parent: bool) -> None:
    # Checked before any page is rendered: a bad target fails at once, not after the work.
    if make_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    check_target(target)


def _remove_pages_after(target: Path, count: int) -> None:
    pattern = re.compile(re.escape(target.stem) + r"-([0-9]+)" + re.escape(target.suffix))
    with contextlib.suppress(FileNotFoundError):
        for entry in target.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            # Only regular files: never a symlink (it would be the link's target's name that
            # matched) nor anything else someone put there.
            if match and int(match.group(1)) > count and stat.S_ISREG(entry.lstat().st_mode):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
