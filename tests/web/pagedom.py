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
    day_figures: str = ""  # the days under 100%, in the probe's details
    flapping: bool = False  # the flapping mark beside the name
    details: str = ""  # all the text of the part that opens (message, figures, incidents)


class PageDOM(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.tags: list[str] = []  # every start tag seen
        self.refresh: str | None = None
        self.banner = ""
        self.groups: list[str] = []
        self.group_counts: list[str] = []  # each group heading's "N probes · M down"
        self.windows: list[str] = []  # the window selector's links (#w-24h, ...)
        self.form = False  # the filter form (served pages only)
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
        if tag == "details" and "probe" in cls:
            self._row = Row(a.get("data-name", ""), a.get("data-status", ""))
            self.rows.append(self._row)
            target = "row"  # its end tag ends the row
        elif "banner" in cls:
            target = "banner"
        elif tag == "h2":
            target = "group"
        elif tag == "form":
            self.form = True
        elif tag == "a" and a.get("href", "").startswith("#w-"):
            self.windows.append(a["href"])
        elif self._row is None and "mut" in cls and self._stack and self._stack[-1][0] == "summary":
            target = "group_counts"
            self.group_counts.append("")
        elif tag == "a" and a.get("rel") in ("prev", "next"):
            self.links[a["rel"]] = a.get("href", "")
        elif self._row is not None:
            if "name" in cls:
                target = "name"
            elif "flap" in cls:
                self._row.flapping = True
            elif "st" in cls:
                target = "status"
            elif "latency" in cls:
                target = "latency"
            elif "u" in cls and "data-window" in a:
                target = "uptime"
                self._window = a.get("data-window")
            elif "more" in cls:
                target = "details"
            elif "days" in cls:
                self._row.days_label = a.get("aria-label", "")
            elif "dayfigs" in cls:
                target = "dayfigs"
            elif tag == "i" and "title" in a:
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
        if tag in VOID or all(open_tag != tag for open_tag, _ in self._stack):
            return  # `</polyline>` as a browser writes it: nothing of ours to close
        while self._stack:
            open_tag, target = self._stack.pop()
            if target == "row":
                self._row = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        targets = [t for _, t in self._stack if t]
        if not targets:
            return
        target = targets[-1]
        if self._row is not None and "details" in targets and target != "details":
            self._row.details += data
        if target == "banner":
            self.banner += data
        elif target == "group":
            self.groups.append(data.strip())
        elif target == "group_counts":
            self.group_counts[-1] += data
        elif self._row is not None:
            if target == "name":
                self._row.name += data
            elif target == "status":
                self._row.status += data
            elif target == "latency":
                self._row.latency += data
            elif target == "uptime" and self._window:
                self._row.uptime[self._window] = self._row.uptime.get(self._window, "") + data
            elif target == "details":
                self._row.details += data
            elif target == "dayfigs":
                self._row.day_figures += data
            elif target == "incident":
                self._row.incidents[-1] += data

    def row(self, name: str) -> Row:
        found = [r for r in self.rows if r.name == name]
        assert len(found) == 1, f"{len(found)} rows named {name!r}"
        return found[0]
