"""How the status page writes its figures: times, durations, uptimes and their grade,
latencies."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["duration", "grade", "iso", "ms", "pct", "when"]


def when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
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
