"""How the status page writes its figures: times, durations, uptimes and their grade,
latencies."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from probe.durations import largest_units

__all__ = ["duration", "grade", "iso", "ms", "pct", "when"]


def when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """The page's form: seconds under a minute, else the two largest units down to minutes
    ("5m", "2h 5m", "3d 0h": a table column reads better with both units always there)."""
    if round(seconds) < 60:
        return f"{round(seconds)}s"
    return " ".join(f"{value}{unit}" for value, unit in largest_units(seconds, smallest="m"))


def pct(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 100.0:
        return "100%"
    return f"{math.floor(value * 1000) / 1000:.3f}%"  # never rounded up to 100%


def grade(value: float | None) -> str:
    if value is None:
        return "none"
    if value >= 99.9:
        return "ok"
    if value >= 99.0:
        return "warn"
    return "bad"


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
