"""The value a check produces, and the status vocabulary shared by every part."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = ["Result", "Status", "utc_iso"]


class Status(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


def utc_iso(moment: datetime) -> str:
    """UTC ISO 8601 with a `Z`, to the millisecond: the one time format of our JSON output."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _frozen(details: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(details))


@dataclass(frozen=True, slots=True)
class Result:
    """One check of one probe. `latency` is in seconds, None when nothing answered."""

    name: str
    kind: str
    endpoint: str
    status: Status
    latency: float | None
    message: str
    time: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("Result.time must be timezone-aware")
        if not isinstance(self.details, MappingProxyType):
            object.__setattr__(self, "details", _frozen(self.details))

    @property
    def ok(self) -> bool:
        return self.status is Status.UP

    def to_json(self) -> dict[str, Any]:
        """The object `probe once --format json` prints (DESIGN.md section 4)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "status": self.status.value,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            "message": self.message,
            "time": utc_iso(self.time),
            "details": dict(self.details),
        }
