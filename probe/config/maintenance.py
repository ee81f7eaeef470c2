"""The `maintenance:` windows of the config: top-level ones (`SharedWindowSpec`, for every
probe or those in `probes:`) and a probe's own (`WindowSpec`, under the probe).

Each key is checked by its own validator; what depends on several keys (a recurring window
needs `start` as HH:MM and a `duration`, a one-off one an `end` after its `start`, both with an
offset) is listed by `WindowSpec.problems()`, which the loader reports at the key concerned,
as it does a probe's `condition_problems()`. The App turns valid specs into the window maths
of probe.core.maintenance (config imports no other layer).
"""

from __future__ import annotations

import re
from datetime import datetime
from datetime import time as time_of_day
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema, field_validator

from probe.config.messages import describe, did_you_mean
from probe.config.models import Duration, ProbeSpec, StrictModel
from probe.text import quoted

__all__ = ["WEEKDAYS", "SharedWindowSpec", "WindowSpec"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_RECURRING = 7 * 86400.0
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_ONE_OFF_EXAMPLE = "2026-12-20T22:00:00+01:00"


def _every(value: Any) -> Any:
    """`daily` as every weekday; a list of weekday names as it is (each checked below)."""
    if value == "daily":
        return list(WEEKDAYS)
    if isinstance(value, str):
        hint = did_you_mean(value.lower(), ["daily", *WEEKDAYS])
        raise ValueError(f"expected daily or a list of weekdays, got {quoted(value)}{hint}")
    return value


def _weekday(value: str) -> str:
    if value not in WEEKDAYS:
        hint = did_you_mean(value.lower(), WEEKDAYS) or f" (one of {', '.join(WEEKDAYS)})"
        raise ValueError(f"unknown weekday {quoted(value)}{hint}")
    return value


Every = Annotated[
    list[Annotated[str, AfterValidator(_weekday)]],
    BeforeValidator(_every),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "daily"},
                {"type": "array", "items": {"enum": list(WEEKDAYS)}, "minItems": 1},
            ]
        }
    ),
]


def known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {quoted(value[:60])} (an IANA name such as UTC or Europe/Berlin)"
        ) from None
    return value


def parse_time_of_day(text: str) -> time_of_day:
    """HH:MM or HH:MM:SS; ValueError with the user's message otherwise."""
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise ValueError(
            f'expected a time of day "HH:MM" for a recurring window, got {quoted(text)}'
        )
    hour, minute, second = (int(part or 0) for part in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{quoted(text)} is out of range (00:00 to 23:59)")
    return time_of_day(hour, minute, second)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date and time with an offset (or Z); ValueError otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a date and time with an offset such as {_ONE_OFF_EXAMPLE} for a one-off"
            f' window (or "every:" for a recurring one), got {quoted(text)}'
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{quoted(text)} has no offset; write one (+01:00, or Z for UTC) so the instant"
            " is unambiguous"
        )
    return moment


class WindowSpec(StrictModel):
    """A probe's own maintenance window (under the probe: no `probes:` key)."""

    name: str = ""
    every: Every | None = None
    start: str
    duration: Duration | None = None
    end: str | None = None
    timezone: str | None = None

    @field_validator("every", mode="after")
    @classmethod
    def _weekdays(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty list of weekdays; write daily or name at least one day")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else known_timezone(value)

    @property
    def recurring(self) -> bool:
        return self.every is not None

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for each problem of the keys taken together."""
        if self.recurring:
            return self._recurring_problems()
        return self._one_off_problems()

    def _recurring_problems(self) -> list[tuple[str, str]]:
        found = []
        try:
            parse_time_of_day(self.start)
        except ValueError as exc:
            found.append(("start", str(exc)))
        if self.end is not None:
            found.append(("end", "a recurring window has a duration, not an end"))
        if self.duration is None:
            found.append(("duration", 'a recurring window needs "duration" (such as 1h)'))
        elif self.duration <= 0:
            found.append(("duration", "a window must last longer than 0s"))
        elif self.duration > MAX_RECURRING:
            found.append(("duration", "a recurring window lasts at most 7 days"))
        return found

    def _one_off_problems(self) -> list[tuple[str, str]]:
        found = []
        if self.duration is not None:
            found.append(
                ("duration", 'a one-off window has an "end", not a duration (or add "every:")')
            )
        start = end = None
        try:
            start = parse_instant(self.start)
        except ValueError as exc:
            found.append(("start", str(exc)))
        if self.end is None:
            if self.duration is None:
                found.append(("end", 'a one-off window needs "end" (or "every:" to recur)'))
            return found
        try:
            end = parse_instant(self.end)
        except ValueError as exc:
            found.append(("end", str(exc)))
        if start is not None and end is not None and end <= start:
            found.append(("end", f"the end {quoted(self.end)} is not after the start"))
        return found

    def timezone_or(self, default: str) -> str:
        return self.timezone or default


class SharedWindowSpec(WindowSpec):
    """A top-level maintenance window: for every probe, or those named in `probes:`."""

    probes: list[str] | None = None

    @field_validator("probes")
    @classmethod
    def _some_probes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError(f"an empty list ({describe(value)}); leave it out for every probe")
        return value


# ProbeSpec's `maintenance` names WindowSpec, which builds on models.py: resolved here.
ProbeSpec.model_rebuild()
