"""Status tracking: thresholds, transitions, measured time and the alert decision.

One place decides, once per result, what the result means: whether the probe's status flips
(after `failure` / `success` consecutive results), which stretch of time counts as up or down
for the SLA, and whether this result is one the alert strategy notifies on. Everything the
tracker knows of a probe is in one `ProbeState` value, which the store persists so that a
restart neither repeats nor forgets an alert and SLA figures carry on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from probe.core.result import Result, Status

__all__ = [
    "MAX_POSITION",
    "AlertDecision",
    "Observation",
    "Policy",
    "ProbeState",
    "Span",
    "StatusTracker",
    "Transition",
    "alert_positions",
]

Strategy = Literal["regular", "increment", "exponent"]

# A gap between two results longer than this many intervals means the prober was not
# running (stopped, overloaded): that time is neither up nor down.
GAP_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A probe's thresholds and alert strategy, as the tracker needs them."""

    interval: float
    failure: int = 1
    success: int = 1
    strategy: Strategy = "regular"
    factor: int = 1
    max_alerts: int = 1


@dataclass(frozen=True, slots=True)
class ProbeState:
    """Everything the tracker holds for one probe. Times are Unix seconds."""

    name: str
    status: Status = Status.UNKNOWN
    since: float | None = None  # when `status` began (None while unknown from the start)
    ok_streak: int = 0
    fail_streak: int = 0
    last_time: float | None = None
    outage_failures: int = 0  # failed checks since the status became down (that one is 1)
    alerts_sent: int = 0  # down notifications in this outage
    next_alert: int | None = None  # outage_failures value at which the next one goes out


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    time: float
    previous: Status
    current: Status
    message: str


@dataclass(frozen=True, slots=True)
class Span:
    """Measured time between two results, counted for the status held during it."""

    start: float
    end: float
    status: Status


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """A notification to send. `duration` is the outage's length (recovery only)."""

    event: Literal["down", "recovery"]
    name: str
    time: float
    position: int  # for "down": the failure count it fired at; 0 for recovery
    outage_start: float | None
    duration: float | None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one result meant: the tracker's verdict, handed to the store and the alerting."""

    result: Result
    state: ProbeState
    transition: Transition | None
    span: Span | None
    alert: AlertDecision | None


# The highest failure position the tracker schedules. `next_alert` is persisted in SQLite's
# signed 64-bit INTEGER; a huge factor (exponent grows as (1+f)**n) must never make the state
# unstorable. No outage lasts 2**62 checks, so a capped position simply never fires.
MAX_POSITION = 2**62


def _next_position(strategy: Strategy, factor: int, sent: int, position: int) -> int:
    """The failure count for the next notification, after notification number `sent` went
    out at failure count `position` (capped at MAX_POSITION).

    regular: every `factor` failures. increment: gaps f, 2f, 3f, ... exponent: EaseProbe's
    rule, next = n + n*f, so positions 1, 1+f, (1+f)**2, ... (f=1: 1, 2, 4, 8; f=2: 1, 3, 9).
    The exponent step depends only on `position`, not on `sent`, so a state saved by an older
    rule (or under another factor) carries on from the position it stored.
    """
    if strategy == "increment":
        gap = factor * sent
    elif strategy == "exponent":
        gap = factor * position
    else:
        gap = factor
    return min(position + gap, MAX_POSITION)


def alert_positions(strategy: Strategy, factor: int, max_alerts: int) -> list[int]:
    """The failure counts that notify during one outage (README, `alert`), in order; stops
    early once a position reaches MAX_POSITION (no outage gets that far)."""
    positions = [1]
    while len(positions) < max_alerts and positions[-1] < MAX_POSITION:
        positions.append(_next_position(strategy, factor, len(positions), positions[-1]))
    return positions


class StatusTracker:
    """Holds a ProbeState per probe and turns each Result into an Observation."""

    def __init__(self, states: Mapping[str, ProbeState] | None = None) -> None:
        self._states: dict[str, ProbeState] = dict(states or {})

    def state(self, name: str) -> ProbeState:
        return self._states.get(name) or ProbeState(name=name)

    def states(self) -> dict[str, ProbeState]:
        return dict(self._states)

    def forget(self, name: str) -> None:
        self._states.pop(name, None)

    def observe(self, result: Result, policy: Policy) -> Observation:
        before = self.state(result.name)
        now = result.time.timestamp()
        span = self._span(before, now, policy.interval)

        good = result.status is Status.UP
        ok_streak = before.ok_streak + 1 if good else 0
        fail_streak = 0 if good else before.fail_streak + 1
        status = before.status
        if good and status is not Status.UP and ok_streak >= policy.success:
            status = Status.UP
        elif not good and status is not Status.DOWN and fail_streak >= policy.failure:
            status = Status.DOWN

        after = replace(before, ok_streak=ok_streak, fail_streak=fail_streak, last_time=now)
        transition: Transition | None = None
        alert: AlertDecision | None = None

        if status is not before.status:
            transition = Transition(result.name, now, before.status, status, result.message)
            after = replace(after, status=status, since=now)
            if status is Status.DOWN:
                after = replace(after, outage_failures=0, alerts_sent=0, next_alert=1)
            else:
                if before.status is Status.DOWN:
                    alert = AlertDecision(
                        "recovery",
                        result.name,
                        now,
                        0,
                        before.since,
                        None if before.since is None else now - before.since,
                    )
                after = replace(after, outage_failures=0, alerts_sent=0, next_alert=None)

        if status is Status.DOWN and not good:
            failures = after.outage_failures + 1
            after = replace(after, outage_failures=failures)
            if after.next_alert is not None and failures >= after.next_alert:
                sent = after.alerts_sent + 1
                nxt = None
                if sent < policy.max_alerts and failures < MAX_POSITION:
                    nxt = _next_position(policy.strategy, policy.factor, sent, failures)
                after = replace(after, alerts_sent=sent, next_alert=nxt)
                alert = AlertDecision("down", result.name, now, failures, after.since, None)

        self._states[result.name] = after
        return Observation(result, after, transition, span, alert)

    @staticmethod
    def _span(before: ProbeState, now: float, interval: float) -> Span | None:
        if before.last_time is None or before.status is Status.UNKNOWN:
            return None
        elapsed = now - before.last_time
        if elapsed <= 0 or elapsed > GAP_FACTOR * interval:
            return None
        return Span(before.last_time, now, before.status)
