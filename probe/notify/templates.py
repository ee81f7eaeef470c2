"""Notification templates: jinja2 in a sandbox, one file per format and event.

Shipped templates live in the repository's top-level `templates/` folder as
`<format>/<event>.<ext>.j2` (installed as the package data `probe.templates`). A notifier names
its format (slack, discord, teams, telegram, markdown, text, email, webhook) and may carry an
override per event: inline jinja2 source, or a file holding it (`template` / `template_file`
on every notifier spec, read and compiled when the config loads).

What keeps messages safe whatever the probed servers answer:
- Text from probed servers (error messages, endpoints, label values) only ever reaches a
  template as data, never as template source.
- The HTML formats (telegram, email) autoescape; the JSON formats (slack, discord, teams,
  webhook) interpolate every value through `tojson`, so the output stays valid JSON whatever
  the data; markdown and text are plain.
- The environment is jinja2's immutable sandbox: a template cannot reach Python internals or
  change the data it is given.

A broken override is a config error (`check()` gives the message with its line). An override
that fails while rendering (a runtime error, or invalid JSON where JSON is due) is logged and
the shipped template is used instead: a message that is not customised beats a lost alert.

This module renders (the Templates renderer, the variables templates get, render_json); the
filters live in template_filters, the sandboxed environment and the compile check in
template_env, the overrides on notifier specs in template_overrides (TemplatedSpec and
read_overrides, re-exported here with clip and duration_text for the notifiers).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from probe.notify.base import Event, Notification
from probe.notify.template_env import ResourceLoader, check_source, describe, environment
from probe.notify.template_filters import clip, duration_text
from probe.notify.template_overrides import TemplatedSpec, read_overrides
from probe.shipped_templates import template_root

__all__ = [
    "FORMATS",
    "HTML_FORMATS",
    "JSON_FORMATS",
    "TemplateError",
    "TemplatedSpec",
    "Templates",
    "clip",
    "duration_text",
    "read_overrides",
    "render_json",
]

log = logging.getLogger(__name__)

# Format -> file extension of its templates. The notifier kinds pick one each.
FORMATS: dict[str, str] = {
    "slack": "json",  # Block Kit, colour through an attachment
    "discord": "json",  # webhook payload with one embed
    "teams": "json",  # Workflows webhook message with an Adaptive Card
    "webhook": "json",  # the notification as a JSON document
    "telegram": "html",  # the HTML subset Telegram's parse_mode=HTML accepts
    "email": "html",
    "markdown": "md",
    "text": "txt",
}
HTML_FORMATS = frozenset(name for name, ext in FORMATS.items() if ext == "html")
JSON_FORMATS = frozenset(name for name, ext in FORMATS.items() if ext == "json")

# An override is compiled once; configs hold few of them, the bound is only a backstop.
_CACHE_LIMIT = 256


class TemplateError(Exception):
    """A template could not be compiled or rendered (the message names the line)."""


def _iso_utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


class Templates:
    """Renders notifications with the shipped templates or a notifier's override.

    Times are shown in `timezone` (settings.timezone); `name` is settings.name, given to the
    templates as `settings_name`.
    """

    def __init__(self, timezone: str = "UTC", *, name: str = "probe") -> None:
        self.timezone = timezone
        self.name = name
        self._tz = ZoneInfo(timezone)
        loader = ResourceLoader(template_root())
        self._envs = {
            escape: environment(autoescape=escape, tz=self._tz, loader=loader)
            for escape in (False, True)
        }
        self._overrides: dict[tuple[bool, str], jinja2.Template] = {}

    # -- public API

    def render(
        self,
        format: str,
        event: Event | str,
        notification: Notification,
        *,
        override: str | None = None,
    ) -> str:
        """`notification` rendered in `format` for `event`; with `override` (jinja2 source),
        that template instead of the shipped one."""
        event = Event(event)
        variables = self.variables(notification, event=event)
        if override is not None:
            try:
                return self._override(format, override).render(variables)
            except Exception as exc:
                log.warning(
                    "%s template override for %s failed (%s); using the shipped template",
                    format,
                    event.value,
                    describe(exc),
                )
        return self._shipped(format, event).render(variables)

    def render_json(
        self,
        format: str,
        event: Event | str,
        notification: Notification,
        *,
        override: str | None = None,
    ) -> Any:
        """Like `render`, parsed as JSON (for the JSON formats); see `render_json`."""
        return render_json(self, format, event, notification, override=override)

    @staticmethod
    def check(source: str) -> str | None:
        """Why `source` is not a usable template (`line 3: unexpected '}'`), or None."""
        return check_source(source)

    def variables(
        self, notification: Notification, *, event: Event | None = None
    ) -> dict[str, Any]:
        """What every template gets (templates/README.txt lists them). `event` is the one
        rendered for, by default the notification's."""
        n = notification
        event = Event(event) if event is not None else n.event
        start = n.outage_start
        return {
            "event": event.value,
            "id": n.id,
            "probe": n.probe or "",
            "kind": n.kind or "",
            "endpoint": n.endpoint or "",
            "status": n.status,
            "message": n.message,
            "time": datetime.fromtimestamp(n.time, self._tz),
            "time_iso": _iso_utc(n.time),
            "timezone": self.timezone,
            "outage_start": datetime.fromtimestamp(start, self._tz) if start is not None else None,
            "outage_start_iso": _iso_utc(start),
            "duration": n.duration,
            "duration_text": duration_text(n.duration),
            "position": n.position,
            "labels": dict(n.labels),
            "settings_name": self.name,
            "title": self._title(n, event),
            "report": _report(n.report),
            "notification": n.to_json(),
        }

    # -- internals

    def _title(self, n: Notification, event: Event) -> str:
        name = n.probe or ""
        if event is Event.DOWN:
            return f"{name} is down"
        if event is Event.RECOVERY:
            return f"{name} is up again"
        if event is Event.FLAPPING:
            return f"{name} is flapping"
        if event is Event.STABLE:
            return f"{name} is stable ({n.status})"
        if event is Event.DEGRADED:
            if n.status == "degraded":
                return f"{name} is degraded"
            return f"{name} is no longer degraded"
        if event is Event.EXPIRY:
            left = duration_text(n.duration)
            return f"{name}: certificate expires in {left}" if left else f"{name}: certificate"
        if event is Event.SLA:
            label = _report(n.report)["label"]
            return f"SLA report: {label}" if label else "SLA report"
        if event is Event.GROUP:
            return n.message or "Grouped notifications"
        return f"Test message from {self.name}"

    def _shipped(self, format: str, event: Event) -> jinja2.Template:
        ext = FORMATS.get(format)
        if ext is None:
            raise TemplateError(f"unknown template format {format!r}")
        env = self._envs[format in HTML_FORMATS]
        return env.get_template(f"{format}/{event.value}.{ext}.j2")

    def _override(self, format: str, source: str) -> jinja2.Template:
        key = (format in HTML_FORMATS, source)
        template = self._overrides.get(key)
        if template is None:
            if len(self._overrides) >= _CACHE_LIMIT:
                self._overrides.clear()
            template = self._envs[key[0]].from_string(source)
            self._overrides[key] = template
        return template


def render_json(
    templates: Any,
    format: str,
    event: Event | str,
    notification: Notification,
    *,
    override: str | None = None,
) -> Any:
    """`templates.render(...)` parsed as JSON. An override that does not give valid JSON is
    logged and the shipped template used instead. Needs only the `render` method of the
    template contract, so any renderer the App hands to notifiers works."""
    event = Event(event)
    if override is not None:
        text = templates.render(format, event, notification, override=override)
        try:
            return json.loads(text)
        except ValueError as exc:
            log.warning(
                "%s template override for %s did not give valid JSON (%s); "
                "using the shipped template",
                format,
                event.value,
                exc,
            )
    text = templates.render(format, event, notification)
    try:
        return json.loads(text)
    except ValueError as exc:  # a bug in a shipped template, never the data's fault
        raise TemplateError(f"{format}/{event.value}: not valid JSON: {exc}") from exc


def _report(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report as templates get it. A group summary: `counts` (down, recovery, total),
    `down` and `recovery` (the rows listed), `more` (not listed). An SLA report: `window`,
    `label`, `rows` (each with name, kind, endpoint, sla, downtime (s), downtime_text,
    incidents, checks, p95_ms), `rows_by_sla` (the same, worst first), `probes` (count).

    The producer may name the downtime `down_s` (as `probe sla --format json` does) or
    `downtime`, and the label `label` or `window_label`.
    """
    rows = []
    for raw in report.get("rows") or ():
        if not isinstance(raw, Mapping):
            continue
        row = dict(raw)
        downtime = row.get("downtime", row.get("down_s"))
        row["downtime"] = downtime
        row["downtime_text"] = duration_text(downtime) if downtime is not None else "n/a"
        for key in ("name", "kind", "endpoint"):
            row.setdefault(key, "")
        for key in ("sla", "incidents", "checks", "p95_ms"):
            row.setdefault(key, None)
        rows.append(row)
    # A group summary (grouping.summarize): its keys, present even when a producer left one out.
    counts = report.get("counts")
    group = {
        "counts": {
            "down": 0,
            "recovery": 0,
            "total": 0,
            **(dict(counts) if isinstance(counts, Mapping) else {}),
        },
        "down": list(report.get("down") or ()),
        "recovery": list(report.get("recovery") or ()),
        "more": report.get("more") or 0,
    }
    window = str(report.get("window") or "")
    label = str(report.get("label") or report.get("window_label") or window)
    # Worst first; rows without data (sla None) last.
    by_sla = sorted(rows, key=lambda row: (not _is_number(row["sla"]), _number(row["sla"])))
    return {
        **dict(report),
        **group,
        "window": window,
        "label": label,
        "rows": rows,
        "rows_by_sla": by_sla,
        "probes": len(rows),
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else 0.0
