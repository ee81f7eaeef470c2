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
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup
from pydantic import PrivateAttr, field_validator, model_validator

from probe.notify.base import Event, Notification, NotifierSpec
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
# A template file larger than this is a mistake (`template_file: /dev/zero`), not a template.
_MAX_TEMPLATE_BYTES = 1024 * 1024


class TemplateError(Exception):
    """A template could not be compiled or rendered (the message names the line)."""


# -- filters -------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """A short human duration with the two largest units: `45s`, `5m 3s`, `2h 5m`, `3d 4h`."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = round(max(0.0, seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def clip(text: Any, limit: int, end: str = "…") -> str:
    """`text` cut to at most `limit` characters (ending with `end` when cut), never inside an
    HTML entity such as `&amp;` that an escape put there."""
    value = "" if text is None or isinstance(text, jinja2.Undefined) else str(text)
    if len(value) <= limit:
        return value
    cut = value[: max(0, limit - len(end))]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and re.match(r"&#?\w+;", value[amp:]):
        cut = cut[:amp]
    return cut + end


def _to_datetime(value: Any, tz: ZoneInfo) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz)
    return None


def _iso_utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, jinja2.Undefined):
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def _tojson(value: Any, indent: int | None = None) -> str:
    """JSON for a value inside a JSON template. Strings come out quoted and escaped, so no
    data can end a string early or add keys; NaN/inf become null (they are not JSON)."""
    if isinstance(value, jinja2.Undefined):
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value, ensure_ascii=False, default=_json_default, indent=indent)


def _tojson_html(value: Any, indent: int | None = None) -> Markup:
    # In the HTML formats JSON goes into markup (a <pre>, an attribute): escape it for HTML.
    return Markup(html.escape(_tojson(value, indent), quote=True))


_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _mrkdwn(text: Any) -> str:
    """Slack mrkdwn: `&`, `<` and `>` escaped, so data cannot form links or @mentions."""
    if text is None or isinstance(text, jinja2.Undefined):
        return ""
    return str(text).translate(_MRKDWN)


_MD_ANYWHERE = re.compile(r"([\\`*_~|\[\]<>])")
_MD_LINE_START = re.compile(r"^(\s*)([#+\-=>])", re.MULTILINE)


def _md(text: Any) -> str:
    """Markdown (CommonMark, Discord): characters that would format, link or mention
    backslash-escaped, so data shows as written."""
    if text is None or isinstance(text, jinja2.Undefined):
        return ""
    escaped = _MD_ANYWHERE.sub(r"\\\1", str(text))
    return _MD_LINE_START.sub(r"\1\\\2", escaped)


def _code(text: Any) -> str:
    """An inline code span holding `text` as is, whatever backticks it contains."""
    value = "" if text is None or isinstance(text, jinja2.Undefined) else str(text)
    value = value.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _oneline(text: Any) -> str:
    """Whitespace runs (newlines included) folded into single spaces."""
    if text is None or isinstance(text, jinja2.Undefined):
        return ""
    return " ".join(str(text).split())


def _percent(value: Any, digits: int = 3) -> str:
    """An SLA figure: `99.95%`, `100%`, `n/a` when unknown."""
    if value is None or isinstance(value, jinja2.Undefined):
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    shown = f"{number:.{digits}f}".rstrip("0").rstrip(".")
    return f"{shown}%"


def _ms(value: Any) -> str:
    """A latency in milliseconds: `120 ms`, `n/a` when unknown."""
    if value is None or isinstance(value, jinja2.Undefined):
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{number:.0f} ms" if number >= 10 else f"{number:.1f} ms"


# -- the shipped templates -----------------------------------------------------------------


class _ResourceLoader(jinja2.BaseLoader):
    """Loads templates from a Traversable, so a zipped install works as a folder does."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        parts = [part for part in template.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise jinja2.TemplateNotFound(template)
        node = self.root.joinpath(*parts)
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        # Shipped files do not change while running: never reloaded.
        return node.read_text(encoding="utf-8"), template, lambda: True


def _environment(
    *, autoescape: bool, tz: ZoneInfo, loader: jinja2.BaseLoader | None
) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.Undefined,
    )

    def datetime_filter(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
        when = _to_datetime(value, tz)
        return "" if when is None else when.strftime(fmt)

    env.filters.update(
        {
            "duration": duration_text,
            "datetime": datetime_filter,
            "tojson": _tojson_html if autoescape else _tojson,
            "clip": clip,
            "mrkdwn": _mrkdwn,
            "md": _md,
            "code": _code,
            "oneline": _oneline,
            "percent": _percent,
            "ms": _ms,
        }
    )
    return env


# Filters exist at compile time (an unknown filter is a compile error): check() compiles with
# an environment that has them.
_CHECK_ENV = _environment(autoescape=False, tz=ZoneInfo("UTC"), loader=None)


def _describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return f"{where}{exc.message or 'syntax error'}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a template: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Templates:
    """Renders notifications with the shipped templates or a notifier's override.

    Times are shown in `timezone` (settings.timezone); `name` is settings.name, given to the
    templates as `settings_name`.
    """

    def __init__(self, timezone: str = "UTC", *, name: str = "probe") -> None:
        self.timezone = timezone
        self.name = name
        self._tz = ZoneInfo(timezone)
        loader = _ResourceLoader(template_root())
        self._envs = {
            escape: _environment(autoescape=escape, tz=self._tz, loader=loader)
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
                    _describe(exc),
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
        try:
            _CHECK_ENV.compile(source)
        except Exception as exc:
            return _describe(exc)
        return None

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
        if event is Event.SLA:
            label = _report(n.report)["label"]
            return f"SLA report: {label}" if label else "SLA report"
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
    """An SLA report as templates get it: `window`, `label`, `rows` (each with name, kind,
    endpoint, sla, downtime (s), downtime_text, incidents, checks, p95_ms), `rows_by_sla`
    (the same, worst first), `probes` (count).

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
    window = str(report.get("window") or "")
    label = str(report.get("label") or report.get("window_label") or window)
    # Worst first; rows without data (sla None) last.
    by_sla = sorted(rows, key=lambda row: (not _is_number(row["sla"]), _number(row["sla"])))
    return {
        **dict(report),
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


# -- overrides on notifier specs -----------------------------------------------------------


def read_overrides(inline: Mapping[Event, str], files: Mapping[Event, Path]) -> dict[Event, str]:
    """The override source per event: inline, or read from its file. Raises ValueError (a
    config error) for an event given both ways, an unreadable file or a template that does
    not compile; the message names the event and the line."""
    sources: dict[Event, str] = {}
    for event, source in inline.items():
        problem = Templates.check(source)
        if problem is not None:
            raise ValueError(f"template.{Event(event).value}: {problem}")
        sources[Event(event)] = source
    for event, path in files.items():
        event = Event(event)
        if event in sources:
            raise ValueError(f"template.{event.value} and template_file.{event.value}: use one")
        try:
            sources[event] = _read_source(event, path)
        except ValueError as exc:
            raise ValueError(f"template_file.{exc}") from None
    return sources


def _read_source(event: Event, path: Path) -> str:
    """The override in `path`, checked; ValueError naming the event, the file and the line."""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(_MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise ValueError(
            f"{event.value}: cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(data) > _MAX_TEMPLATE_BYTES:
        raise ValueError(f"{event.value}: {str(path)!r} is larger than 1 MiB")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{event.value}: {str(path)!r} is not UTF-8 text") from None
    problem = Templates.check(source)
    if problem is not None:
        raise ValueError(f"{event.value}: {path}: {problem}")
    return source


class TemplatedSpec(NotifierSpec):
    """A notifier spec whose `template` / `template_file` overrides are checked when the
    config loads (a syntax error is a located config error) and read once.

    `override(event)` gives the source to hand to `Templates.render`.
    """

    kind: ClassVar[str] = ""

    _overrides: dict[Event, str] = PrivateAttr(default_factory=dict)

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: dict[Event, str]) -> dict[Event, str]:
        for event, source in value.items():
            problem = Templates.check(source)
            if problem is not None:
                raise ValueError(f"{Event(event).value}: {problem}")
        return value

    @field_validator("template_file")
    @classmethod
    def _readable(cls, value: dict[Event, Path]) -> dict[Event, Path]:
        # Read here too (not only below) so that an error is located at `template_file`.
        for event, path in value.items():
            _read_source(Event(event), path)
        return value

    @model_validator(mode="after")
    def _read_overrides(self) -> TemplatedSpec:
        self._overrides = read_overrides(self.template, self.template_file)
        return self

    def override(self, event: Event | str) -> str | None:
        return self._overrides.get(Event(event))
