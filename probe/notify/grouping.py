"""Grouped notifications (`settings.notify.group`): the per-notifier windows and the summary.

When a router goes down, 300 probes behind it go down together, and 300 messages to one chat
help nobody. So down and recovery notifications do not go out at once: each waits in its
notifier's window, which opens with the first one waiting and closes `wait` later. Then, if
more than `threshold` are waiting, the notifier gets one summary (a `group` notification,
`summarize`) instead of each; otherwise each goes out on its own, as without grouping. SLA
reports and test messages never wait.

This module only decides: what waits (`groupable`), the windows (`Windows`, keyed by notifier
name so a reload that replaces a notifier keeps what waits for it), whether a closed window is
summarised (`GroupPolicy.summarises`) and what the summary says. The dispatcher (dispatch.py)
keeps the outbox rows, sends and retries.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from probe.config.models import GroupSettings
from probe.notify.base import Event, Notification
from probe.notify.template_filters import duration_text

__all__ = [
    "GROUPED_EVENTS",
    "LISTED",
    "MESSAGE_CHARS",
    "GroupPolicy",
    "Windows",
    "counts_text",
    "groupable",
    "summarize",
    "worst_first",
]

# What may wait for a summary: alerts about probes. SLA reports and test messages never wait.
GROUPED_EVENTS = frozenset({Event.DOWN, Event.RECOVERY})
# At most this many members are listed in a summary (the counts keep every one).
LISTED = 50
# A member's message in a summary: one line, cut to this many characters.
MESSAGE_CHARS = 80

T = TypeVar("T")


def groupable(notification: Notification) -> bool:
    return notification.event in GROUPED_EVENTS


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """`wait` seconds per window (0: no grouping); more than `threshold` -> one summary."""

    wait: float = 0.0
    threshold: int = 5

    @classmethod
    def of(cls, settings: GroupSettings | None) -> GroupPolicy:
        return cls() if settings is None else cls(settings.wait, settings.threshold)

    @property
    def enabled(self) -> bool:
        return self.wait > 0

    def summarises(self, waiting: int) -> bool:
        return waiting > self.threshold


@dataclass(slots=True)
class _Window(Generic[T]):
    opened: float
    members: list[T] = field(default_factory=list)


class Windows(Generic[T]):
    """What waits, per notifier name, with the time its window opened."""

    def __init__(self) -> None:
        self._open: dict[str, _Window[T]] = {}

    def hold(self, name: str, item: T, now: float) -> None:
        """`item` waits in `name`'s window, opening it at `now` if none is open."""
        window = self._open.get(name)
        if window is None:
            window = self._open[name] = _Window(now)
        window.members.append(item)

    def next_close(self, wait: float) -> float | None:
        """When the first open window closes, or None when none is open."""
        return min((w.opened + wait for w in self._open.values()), default=None)

    def close_due(self, now: float, wait: float) -> list[tuple[str, list[T]]]:
        """Closes the windows open `wait` or longer: their names and members, in order."""
        due = [name for name, w in self._open.items() if w.opened + wait <= now]
        return [(name, self._open.pop(name).members) for name in due]

    def close_all(self) -> list[tuple[str, list[T]]]:
        closed = [(name, w.members) for name, w in self._open.items()]
        self._open.clear()
        return closed


def counts_text(down: int, recovered: int) -> str:
    """`12 down, 3 recovered`, `50 down`, `3 recovered`."""
    parts = [f"{down} down"] if down else []
    if recovered:
        parts.append(f"{recovered} recovered")
    return ", ".join(parts) or "nothing"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def _number(value: float | None, default: float) -> float:
    return value if value is not None and math.isfinite(value) else default


def _row(n: Notification) -> dict[str, Any]:
    return {
        "event": n.event.value,
        "probe": n.probe or "",
        "kind": n.kind or "",
        "endpoint": n.endpoint or "",
        "message": _one_line(n.message),
        "time": n.time,
        "outage_start": n.outage_start,
        "duration": n.duration,
        "duration_text": duration_text(n.duration),
        "position": n.position,
        "id": n.id,
    }


def worst_first(notifications: Iterable[Notification]) -> list[Notification]:
    """Downs first, the oldest outage first; then recoveries, in the order they happened."""

    def key(n: Notification) -> tuple[int, float, str]:
        if n.event is Event.DOWN:
            return (0, _number(n.outage_start, n.time), n.probe or "")
        return (1, n.time, n.probe or "")

    return sorted(notifications, key=key)


def summarize(members: Sequence[Notification], *, now: float) -> Notification:
    """The one `group` notification standing for `members` (downs and recoveries).

    `message` is the one-line count (`12 down, 3 recovered`); `report` holds `counts`
    (down, recovery, total), the rows listed worst first in `down` and `recovery` (at most
    `LISTED` in all; each: event, probe, kind, endpoint, message (one line), time,
    outage_start, duration, duration_text, position, id) and `more`, the members not listed.
    """
    ordered = worst_first(members)
    listed = [_row(n) for n in ordered[:LISTED]]
    down = sum(1 for n in members if n.event is Event.DOWN)
    recovered = len(members) - down
    return Notification(
        event=Event.GROUP,
        time=now,
        status="down" if down else "up",
        message=counts_text(down, recovered),
        report={
            "counts": {"down": down, "recovery": recovered, "total": len(members)},
            "down": [row for row in listed if row["event"] == Event.DOWN.value],
            "recovery": [row for row in listed if row["event"] == Event.RECOVERY.value],
            "more": len(members) - len(listed),
        },
        id=uuid.uuid4().hex,
    )
