"""The contract between the scheduler and a prober, with no dependency on any prober."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from probe.conditions import Condition

__all__ = ["CheckContext", "Checkable", "Outcome"]


@dataclass(slots=True)
class CheckContext:
    """Per-check scratch the runner reads when a check times out or raises.

    A prober sets `phase` as it goes ("resolve", "connect", "TLS handshake", "auth",
    "reading the body", ...), so a timeout can say where the time went, and may add
    `details` that are kept even when the check ends in a timeout. The typed readings
    (`http_status`, `cert_expiry`: see `Result`) set here are kept the same way; an
    `Outcome`'s own, when not None, win over them.

    `facts` are what the probe's conditions read (placeholder name without brackets ->
    value, as probe.conditions.evaluate lists them): a prober fills in what it saw as it goes,
    so a check that fails half-way still has its `IP`, say. `CONNECTED` and `RESPONSE_TIME`
    are the runner's, and `STATUS` and `CERTIFICATE_EXPIRATION` default to the typed readings.
    """

    phase: str = "connect"
    details: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    cert_expiry: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a successful-or-judged check returns. A failure the prober detects itself
    (wrong status code, missing text) is `Outcome(ok=False, ...)`; a failure to talk to the
    service at all is raised as `ProbeError`.

    `http_status` and `cert_expiry` are the typed readings of `Result` (see there); None
    leaves the check context's value."""

    ok: bool
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    cert_expiry: float | None = None


class Checkable(Protocol):
    """What the scheduler needs of a prober."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def interval(self) -> float: ...
    @property
    def timeout(self) -> float: ...
    @property
    def conditions(self) -> Sequence[Condition]: ...

    async def check(self, ctx: CheckContext) -> Outcome: ...
