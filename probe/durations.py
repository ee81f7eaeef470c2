"""Durations as users write them: `250ms`, `30s`, `1m30s`, `1.5h`, `7d` (Go's forms too).

A neutral module (standard library only): the config reads durations with it, and the
scheduler, probers, notifiers and web pages show them with it, without depending on each other.
"""

from __future__ import annotations

import re

from probe.text import quoted

__all__ = [
    "DURATION_PATTERN",
    "format_duration",
    "largest_units",
    "parse_duration",
]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_MAX_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration maximum, about 292 years
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")
DURATION_PATTERN = r"^\s*[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d|w))+\s*$"
"""What `parse_duration` accepts, for the config's JSON Schema (editors check it as you type)."""


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with a message fit for a config error."""
    raw = text.strip()
    shown = quoted(text)
    if not raw:
        raise ValueError("empty duration")
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", raw):
        raise ValueError(f'invalid duration {shown}: a bare number has no unit; write "{raw}s"')
    sign = 1.0
    body = raw
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    total = 0.0
    pos = 0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0:
        raise ValueError(f"invalid duration {shown} (examples: 250ms, 30s, 1m30s, 1.5h, 7d)")
    if sign < 0 and total:
        raise ValueError(f"invalid duration {shown}: must not be negative")
    if total > _MAX_SECONDS:
        # Go's limit too; it also keeps timedelta() and the scheduler's arithmetic finite.
        raise ValueError(f"invalid duration {shown}: too long (at most about 292 years)")
    return total


_SPAN_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def largest_units(seconds: float, *, smallest: str = "s") -> list[tuple[int, str]]:
    """`seconds` (rounded to whole ones, at least 0) as its two largest units, largest first:
    3h5m7s -> [(3, "h"), (5, "m")], 45s -> [(45, "s")], with units no smaller than
    `smallest` (with "m": 2h5m7s -> [(2, "h"), (5, "m")], 5m7s -> [(5, "m")]).
    Every human form of a duration in the program is built from this."""
    rest = round(max(0.0, seconds))
    units = _SPAN_UNITS[: [name for name, _ in _SPAN_UNITS].index(smallest) + 1]
    parts: list[tuple[int, str]] = []
    for name, size in units:
        value, rest = divmod(rest, size)
        if parts or value or name == smallest:
            parts.append((value, name))
        if len(parts) == 2:
            break
    return parts


def format_duration(seconds: float) -> str:
    """A short human form: 0s, 45s, 2m5s, 3h0m, 2d4h, 350ms."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return "".join(f"{value}{unit}" for value, unit in largest_units(seconds))
