"""The filters notification templates get: durations, times, JSON, clipping, and the
escapes of each chat format (Slack mrkdwn, Markdown, inline code), so that data from the
probed servers shows as written and never forms markup, links or mentions."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from probe.durations import largest_units

__all__ = ["clip", "duration_text", "filters"]


def duration_text(seconds: float | None) -> str:
    """A short human duration with the two largest units: `45s`, `5m 3s`, `2h 5m`, `3d 4h`."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    first, *rest = largest_units(seconds)
    # A zero second unit says nothing in a message: "3d", not "3d 0h".
    return " ".join(f"{value}{unit}" for value, unit in [first, *(p for p in rest if p[0])])


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


def _number(value: Any) -> float | None:
    """A template value as a number; None when it is unknown or not one."""
    if value is None or isinstance(value, jinja2.Undefined):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _percent(value: Any, digits: int = 3) -> str:
    """An SLA figure: `99.95%`, `100%`, `n/a` when unknown."""
    number = _number(value)
    if number is None:
        return "n/a"
    shown = f"{number:.{digits}f}".rstrip("0").rstrip(".")
    return f"{shown}%"


def _ms(value: Any) -> str:
    """A latency in milliseconds: `120 ms`, `n/a` when unknown."""
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:.0f} ms" if number >= 10 else f"{number:.1f} ms"


def filters(*, autoescape: bool, tz: ZoneInfo) -> dict[str, Callable[..., Any]]:
    """The filters by name, for an environment that autoescapes or not, showing times in
    `tz`."""

    def datetime_filter(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
        when = _to_datetime(value, tz)
        return "" if when is None else when.strftime(fmt)

    return {
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
