"""The value a check produces, and the status vocabulary shared by every part."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from probe.text import printable

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
    return MappingProxyType({key: _clean(value) for key, value in details.items()})


def _clean(value: Any) -> Any:
    """`value` with every string in it printable (lists and mappings walked)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_clean(item) for item in value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Result:
    """One check of one probe. `latency` is in seconds, None when nothing answered.

    `details` is what users see (`probe once --format json`, the API, the store). The typed
    readings beside it are what metrics (and conditions) read, set by the probers that know
    them, None otherwise; they are not part of `details` nor of `to_json`, but the store keeps
    them (so a result read back after a restart has them) and the API shows them:

    - `http_status`: the status code of the HTTP answer the check judged; 0 for a check
      that is an HTTP exchange (an http probe's) but got no answer to judge.
    - `cert_expiry`: the earliest notAfter (Unix seconds) of the certificates the check read.
    """

    name: str
    kind: str
    endpoint: str
    status: Status
    latency: float | None
    message: str
    time: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    cert_expiry: float | None = None
    # An up result that fails the probe's `degraded` conditions: those that failed.
    degraded: str | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("Result.time must be timezone-aware")
        # The one place every check's text passes: a remote's error reply (an HTTP body, a
        # server's error string) must not carry terminal escapes or line breaks into logs,
        # terminals, notifications or the store, whichever prober or path produced it.
        object.__setattr__(self, "message", printable(self.message))
        object.__setattr__(self, "details", _frozen(self.details))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by worker processes (probe.shards): the details as the plain dict they
        # were made from, as a read-only view cannot be pickled.
        return (
            Result,
            (
                self.name,
                self.kind,
                self.endpoint,
                self.status,
                self.latency,
                self.message,
                self.time,
                dict(self.details),
                self.http_status,
                self.cert_expiry,
                self.degraded,
            ),
        )

    @property
    def ok(self) -> bool:
        return self.status is Status.UP

    def to_json(self) -> dict[str, Any]:
        """The object `probe once --format json` prints (README: the command line)."""
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
