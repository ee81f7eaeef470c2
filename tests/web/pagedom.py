"""The status page's DOM as the tests read it (stdlib html.parser, no new dependency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "link", "br", "img", "input", "hr", "polyline", "area", "base", "col", "wbr"}


@dataclass
class Row:
    name_attr: str
    status_attr: str
    name: str = ""
    status: str = ""
    latency: str = ""
    uptime: dict[str, str] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)  # each day's title
    incidents: list[str] = field(default_factory=list)
    chart: bool = False
    days_label: str = ""  # the 90-day bar's aria-label
    days_focusable: bool = False
    day_figures: str = ""  # the text shown while the bar has keyboard focus
    day_figures_id: str = ""
    days_described_by: str = ""


class PageDOM(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.tags: list[str] = []  # every start tag seen
        self.refresh: str | None = None
        self.banner = ""
        self.groups: list[str] = []
        self.links: dict[str, str] = {}
        self.urls: list[str] = []  # every src/href seen
        self._stack: list[tuple[str, str | None]] = []  # (tag, what its text goes to)
        self._row: Row | None = None
        self._window: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        cls = a.get("class", "").split()
        target: str | None = None
        if tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = a.get("content")
        if tag == "article" and "probe" in cls:
            self._row = Row(a.get("data-name", ""), a.get("data-status", ""))
            self.rows.append(self._row)
        elif "banner" in cls:
            target = "banner"
        elif tag == "h2":
            target = "group"
        elif tag == "a" and a.get("rel") in ("prev", "next"):
            self.links[a["rel"]] = a.get("href", "")
        elif self._row is not None:
            if tag == "h3":
                target = "name"
            elif "st" in cls:
                target = "status"
            elif "latency" in cls:
                target = "latency"
            elif tag == "dd":
                target = "uptime"
                self._window = a.get("data-window")
            elif "days" in cls:
                self._row.days_label = a.get("aria-label", "")
                self._row.days_described_by = a.get("aria-describedby", "")
                self._row.days_focusable = a.get("tabindex") == "0"
            elif "dayfigs" in cls:
                target = "dayfigs"
                self._row.day_figures_id = a.get("id", "")
            elif tag == "li" and "title" in a:
                self._row.days.append(a["title"])
            elif tag == "li" and "incident" in cls:
                target = "incident"
                self._row.incidents.append("")
            elif tag == "svg":
                self._row.chart = True
        if tag not in VOID:
            self._stack.append((tag, target))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break
        if tag == "article":
            self._row = None

    def handle_data(self, data: str) -> None:
        targets = [t for _, t in self._stack if t]
        if not targets:
            return
        target = targets[-1]
        if target == "banner":
            self.banner += data
        elif target == "group":
            self.groups.append(data.strip())
        elif self._row is not None:
            if target == "name":
                self._row.name += data
            elif target == "status":
                self._row.status += data
            elif target == "latency":
                self._row.latency += data
            elif target == "uptime" and self._window:
                self._row.uptime[self._window] = self._row.uptime.get(self._window, "") + data
            elif target == "dayfigs":
                self._row.day_figures += data
            elif target == "incident":
                self._row.incidents[-1] += data

    def row(self, name: str) -> Row:
        found = [r for r in self.rows if r.name == name]
        assert len(found) == 1, f"{len(found)} rows named {name!r}"
        return found[0]
