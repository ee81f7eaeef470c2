"""The status page: rendered with templates/status/page.html.j2 from the StatusSource.

`StatusPage.render` sorts, filters and pages the StatusSource's cached summaries as
/api/v1/sla does, then reads what only the page shows (90 daily bars, the 24h latency series,
the incidents) for the probes on that page alone: three batched queries, in a thread, kept
drawn (markup strings) until the summaries are recomputed or the probe's status changes. So a
page of 100 out of 1,000 probes reads 100 probes' daily rollups, not 1,000 probes' hourly
ones, and a cached page costs only its render (in a thread too). The same HTML is served at
`GET /` and written to `settings.status.path` (with one more file per page when probes fill
several pages) by `write_status_files` (in static_files). The per-probe details are
read and drawn in page, their figures written by formatting.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

import jinja2

from probe.config.urls import icon_url
from probe.core.result import Status
from probe.shipped_templates import template_root
from probe.web import formatting as fmt
from probe.web.data import WINDOWS, ProbeSummary, StatusSource
from probe.web.page import CHART_H, CHART_W, ProbeDetail, current_incidents, read_details
from probe.web.query import filter_summaries, page_size, seconds
from probe.web.static_files import write_static_page, write_status_files

__all__ = [
    "ProbeDetail",
    "Snapshot",
    "StatusPage",
    "query_link",
    "write_static_page",
    "write_status_files",
]

REFRESH_RANGE = (5, 3600)
# The uptime window each row shows until the reader picks another (#w-7d: CSS, no script).
DEFAULT_WINDOW = "30d"

PageLink = Callable[[Mapping[str, str], int], str]


@cache
def _template() -> jinja2.Template:
    source = template_root().joinpath("status", "page.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    return env.from_string(source)


# Page order inside a group: down, degraded, unknown, up (a probe in maintenance by its
# checked status: it is shown blue, but a down one is still what a reader looks for first).
_DOWN, _DEGRADED, _UNKNOWN, _UP = range(4)


def _group(item: ProbeSummary) -> str:
    return item.info.labels.get("group", "") or ""


def _rank(item: ProbeSummary) -> int:
    if item.status is Status.DOWN:
        return _DOWN
    if item.status is Status.UNKNOWN:
        return _UNKNOWN
    return _DEGRADED if item.degraded is not None else _UP


def _order_key(item: ProbeSummary) -> tuple[Status, bool]:
    """What the page order depends on besides the fixed groups and names."""
    return item.status, item.degraded is not None


def _sorted_indices(items: Sequence[ProbeSummary]) -> list[int]:
    """The positions of `items` in page order: groups holding a down probe first, then those
    holding a degraded one, then by group name (ungrouped last); inside a group down first,
    then degraded, unknown, up; then by name."""
    group_rank: dict[str, int] = {}
    for item in items:
        group = _group(item)
        group_rank[group] = min(group_rank.get(group, _UP), _rank(item), _UNKNOWN)

    def key(index: int) -> tuple[int, bool, str, int, str]:
        item = items[index]
        group = _group(item)
        return (group_rank[group], group == "", group, _rank(item), item.info.name)

    return sorted(range(len(items)), key=key)


def _group_counts(items: Sequence[ProbeSummary]) -> dict[str, str]:
    """Per group, what its heading says of all its probes (not only this page's):
    "12 probes · 1 down · 2 degraded"."""
    tally: dict[str, list[int]] = {}
    for item in items:
        counts = tally.setdefault(_group(item), [0, 0, 0])
        counts[0] += 1
        rank = _rank(item)
        if rank == _DOWN:
            counts[1] += 1
        elif rank == _DEGRADED:
            counts[2] += 1
    text = {}
    for group, (total, down, degraded) in tally.items():
        parts = [f"{total} probe{'s' if total != 1 else ''}"]
        parts += [f"{down} down"] if down else []
        parts += [f"{degraded} degraded"] if degraded else []
        text[group] = " \u00b7 ".join(parts)
    return text


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


def _maintenance_text(item: ProbeSummary) -> str:
    """ "NAME until TIME (checked: down)" for a probe in a maintenance window, else ""."""
    if item.maintenance is None:
        return ""
    name, end = item.maintenance
    until = "" if end is None else f" until {fmt.when(end)}"
    return f"{name}{until} (checked: {item.status.value})"


def _shown_status(item: ProbeSummary) -> str:
    """The status the page shows: maintenance over all, degraded (yellow) for an up probe
    failing its `degraded` conditions, else the checked status."""
    if item.maintenance is not None:
        return "maintenance"
    if item.degraded is not None and item.status is Status.UP:
        return "degraded"
    return item.status.value


def _row_view(item: ProbeSummary, detail: ProbeDetail, now: float) -> dict[str, Any]:
    last = item.last
    return {
        "name": item.info.name,
        "kind": item.info.kind,
        "endpoint": item.info.endpoint,
        "depends_on": ", ".join(item.info.depends_on),
        "status": _shown_status(item),
        "flapping": item.flapping,
        "degraded": item.degraded or "",
        "maintenance": _maintenance_text(item),
        "since": fmt.when(item.since),
        "message": "" if last is None else last.message,
        "checked": "" if last is None else fmt.when(last.time.timestamp()),
        "latency": fmt.ms(None if last is None else last.latency),
        "windows": [
            {
                "window": w,
                "text": fmt.pct(item.windows[w].sla),
                "grade": fmt.grade(item.windows[w].sla),
            }
            for w in WINDOWS
        ],
        "bar": detail.bar,
        "chart": detail.chart,
        "incidents": [
            {
                "start": fmt.when(i.start),
                "start_iso": fmt.iso(i.start),
                "end": "ongoing" if i.end is None else fmt.when(i.end),
                "end_iso": None if i.end is None else fmt.iso(i.end),
                "duration": fmt.duration(i.duration_s),
            }
            for i in current_incidents(detail.incidents, item, now)
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
    live: bool  # served (the filter form works) rather than written to a file
    query: Mapping[str, str]


def _html(view: _View) -> str:
    groups: list[dict[str, Any]] = []
    for item in view.page:
        group = _group(item)
        if not groups or groups[-1]["name"] != group:
            groups.append({"name": group, "rows": []})
        groups[-1]["rows"].append(_row_view(item, view.details[item.info.name], view.now))
    has_groups = any(g["name"] for g in groups)
    counts = _group_counts(view.everything)
    for g in groups:
        g["label"] = g["name"] or ("Other" if has_groups else "")
        g["counts"] = counts[g["name"]]
    return _template().render(
        title=view.title,
        icon=view.icon,
        updated=fmt.when(view.now),
        updated_iso=fmt.iso(view.now),
        refresh=view.refresh,
        banner=_banner(view.everything),
        groups=groups,
        windows=WINDOWS,
        default_window=DEFAULT_WINDOW,
        live=view.live,
        query_name=view.query.get("name", ""),
        query_status=view.query.get("status", ""),
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
    ordered: list[ProbeSummary]  # page order (_sorted_indices)


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
        self._order: list[int] = []  # page order, as indices into the summaries
        self._sorted_for: list[tuple[Status, bool]] | None = None  # what it was sorted for
        self._lock = asyncio.Lock()

    async def snapshot(self) -> Snapshot:
        """The source's summaries and their page order, taken once: the static files render
        every page from one snapshot (one sort, one consistent set of pages)."""
        summaries = await self.source.summaries()
        # The order depends on the statuses alone (groups and names are fixed): sorted anew
        # only when one changed, which at 50,000 probes saves ~0.1 s per page.
        statuses = [_order_key(item) for item in summaries]
        if statuses != self._sorted_for:
            self._order = await asyncio.to_thread(_sorted_indices, summaries)
            self._sorted_for = statuses
        return Snapshot(summaries, [summaries[index] for index in self._order])

    async def render(
        self,
        query: Mapping[str, str],
        *,
        link: PageLink = query_link,
        snapshot: Snapshot | None = None,
        live: bool = True,
    ) -> str:
        """The HTML page for `query` (EaseProbe's filters, pg/sz paging, refresh) from
        `snapshot` (a new one when None); `link` makes the previous/next links; `live`
        False for a static file (no filter form: no server reads its query). Bad
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
            live=live,
            query=query,
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
