"""Status tracking: thresholds, transitions, measured time and the alert decision.

One place decides, once per result, what the result means: whether the probe's status flips
(after `failure` / `success` consecutive results), which stretch of time counts as up or down
for the SLA, and whether this result is one the alert strategy notifies on. Everything the
tracker knows of a probe is in one `ProbeState` value, which the store persists so that a
restart neither repeats nor forgets an alert and SLA figures carry on.

The tracker is also the one owner of "now": beside each state it keeps the probe's last
result and its results since start by status (`ProbeNow`). The status page, the JSON API and
the Prometheus metrics read these; nothing else keeps its own copy of a probe's latest state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from probe.core.result import Result, Status

__all__ = [
    "MAX_POSITION",
    "AlertDecision",
    "Observation",
    "Policy",
    "ProbeNow",
    "ProbeState",
    "Span",
    "StatusTracker",
    "Transition",
    "alert_positions",
    "next_alert_after",
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
    # Flapping: more than `flap_changes` status changes within `flap_window` seconds
    # (0 changes: never flapping).
    flap_changes: int = 0
    flap_window: float = 600.0
    # Certificate expiry warnings: seconds before expiry, largest first (tls and https).
    expiry_warnings: tuple[float, ...] = ()


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
    flapping: bool = False  # down/recovery alerts silenced until stable for the flap window
    flap_times: tuple[float, ...] = ()  # the latest status changes within the flap window
    expiry_warned: float | None = None  # the smallest expiry warning sent for this certificate
    degraded: str | None = None  # up but failing `degraded` conditions: which (else None)


@dataclass(frozen=True, slots=True)
class ProbeNow:
    """What is known of one probe now: its state, its last result (None until one came in,
    unless the tracker was seeded with the last stored one) and the results observed since
    the tracker was made, by status value ("up", "down", ...).

    Replaced whole at each result, never changed in place: a reader on another thread (a
    metrics scrape) always sees one consistent value."""

    state: ProbeState
    last: Result | None = None
    checks: Mapping[str, int] = field(default_factory=dict)


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
    """A notification to send. `duration` is the outage's length (recovery only).
    "flapping": the probe began to flap (its down/recovery alerts are silenced from here);
    "stable": it has held one status for the flap window since (the state's status)."""

    event: Literal["down", "recovery", "flapping", "stable"]
    name: str
    time: float
    position: int  # for "down": the failure count it fired at; 0 for recovery
    outage_start: float | None
    duration: float | None


@dataclass(frozen=True, slots=True)
class ExpiryWarning:
    """A certificate expiry threshold crossed (`threshold` seconds before `expires`)."""

    name: str
    time: float
    threshold: float
    expires: float


@dataclass(frozen=True, slots=True)
class Degradation:
    """An up probe became degraded (`message`: the conditions that failed), or was degraded
    and is fully healthy again (`degraded` False)."""

    name: str
    time: float
    degraded: bool
    message: str


@dataclass(frozen=True, slots=True)
class Observation:
    """What one result meant: the tracker's verdict, handed to the store and the alerting.
    `warning`: a certificate expiry warning to send, beside any status alert."""

    result: Result
    state: ProbeState
    transition: Transition | None
    span: Span | None
    alert: AlertDecision | None
    warning: ExpiryWarning | None = None
    degradation: Degradation | None = None
    # Stretches of `span` that count as neither up nor down (maintenance windows): the App
    # sets them, the store leaves them out of the SLA sums.
    uncounted: tuple[tuple[float, float], ...] = ()


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


def next_alert_after(policy: Policy, sent: int, position: int) -> int | None:
    """The failure count of the next down notification of an outage, after notification
    number `sent` went out at failure count `position`; None when no more go out."""
    if sent >= policy.max_alerts or position >= MAX_POSITION:
        return None
    return _next_position(policy.strategy, policy.factor, sent, position)


def alert_positions(strategy: Strategy, factor: int, max_alerts: int) -> list[int]:
    """The failure counts that notify during one outage (README, `alert`), in order; stops
    early once a position reaches MAX_POSITION (no outage gets that far)."""
    positions = [1]
    while len(positions) < max_alerts and positions[-1] < MAX_POSITION:
        positions.append(_next_position(strategy, factor, len(positions), positions[-1]))
    return positions


def _flap(
    before: ProbeState,
    after: ProbeState,
    transition: Transition | None,
    alert: AlertDecision | None,
    now: float,
    policy: Policy,
) -> tuple[ProbeState, AlertDecision | None]:
    """The flapping rule on top of an observation: more than `flap_changes` status changes
    within `flap_window` make the probe flap (one "flapping" alert, then its down and
    recovery alerts are silenced); once no change is left in the window it is stable again
    (one "stable" alert). The first status a probe takes (from unknown) is no change."""
    times = after.flap_times
    if transition is not None and before.status is not Status.UNKNOWN:
        times = (*times, now)
    # Only the latest changes matter: enough to count past the threshold, the last for
    # stability. Bounded, so a probe flapping for days keeps a small state.
    times = tuple(t for t in times if t > now - policy.flap_window)[-(policy.flap_changes + 1) :]
    since = after.since if after.status is Status.DOWN else None
    if not after.flapping:
        if len(times) > policy.flap_changes:
            flapping = AlertDecision("flapping", after.name, now, 0, since, None)
            return replace(after, flapping=True, flap_times=times), flapping
        return replace(after, flap_times=times), alert
    if times:
        return replace(after, flap_times=times), None  # silenced while it flaps
    stable = AlertDecision("stable", after.name, now, 0, since, None)
    return replace(after, flapping=False, flap_times=times), stable


def _degradation(
    before: ProbeState, after: ProbeState, result: Result, good: bool, now: float
) -> tuple[ProbeState, Degradation | None]:
    """Degraded: up, and the last good result failed the `degraded` conditions. Said when an
    up probe starts or stops being so (a recovery into a degraded state says it too); going
    down ends it without a word (the down alert says more)."""
    if after.status is not Status.UP:
        return replace(after, degraded=None), None
    # A failed check the failure threshold has not counted yet changes nothing.
    degraded = result.degraded if good else before.degraded
    after = replace(after, degraded=degraded)
    was = before.degraded if before.status is Status.UP else None
    if (degraded is None) == (was is None):
        return after, None
    if degraded is not None:
        return after, Degradation(after.name, now, True, degraded)
    return after, Degradation(after.name, now, False, result.message)


def _expiry(
    state: ProbeState, expires: float, now: float, warnings: tuple[float, ...]
) -> tuple[ProbeState, ExpiryWarning | None]:
    """One warning as the certificate's remaining time crosses each threshold, never one per
    check: the smallest threshold crossed is remembered (and stored), and only a smaller one
    warns again. A renewed certificate (further from expiry than the threshold remembered)
    starts over from the band it is in, without a message."""
    remaining = expires - now
    crossed = [t for t in warnings if remaining <= t]
    lowest = min(crossed) if crossed else None
    warned = state.expiry_warned
    if lowest == warned:
        return state, None
    if lowest is not None and (warned is None or lowest < warned):
        return replace(state, expiry_warned=lowest), ExpiryWarning(state.name, now, lowest, expires)
    return replace(state, expiry_warned=lowest), None


class StatusTracker:
    """Holds a ProbeNow per probe and turns each Result into an Observation.

    `states`: the persisted states to carry on from; `last`: each probe's last stored result,
    shown as its last result until a new one comes in (check counts start at zero)."""

    def __init__(
        self,
        states: Mapping[str, ProbeState] | None = None,
        last: Mapping[str, Result] | None = None,
    ) -> None:
        names = {*(states or {}), *(last or {})}
        self._now: dict[str, ProbeNow] = {
            name: ProbeNow(
                (states or {}).get(name) or ProbeState(name=name), (last or {}).get(name)
            )
            for name in names
        }
        # Counts observed results: a reader that caches a view of "now" keys it on this.
        self.version = 0
        # The version at which each probe last changed, oldest change first: a reader that
        # keeps a view of 50,000 probes updates the few that changed (`changed_since`).
        self._changed: dict[str, int] = {}

    def state(self, name: str) -> ProbeState:
        return self.now(name).state

    def now(self, name: str) -> ProbeNow:
        return self._now.get(name) or ProbeNow(ProbeState(name=name))

    def states(self) -> dict[str, ProbeState]:
        return {name: now.state for name, now in self._now.items()}

    def seed(self, name: str, state: ProbeState | None, last: Result | None) -> None:
        """Carry on from the stored `state` and `last` result of a probe not yet known here
        (one a reload adds); a probe already known keeps what it has."""
        if name in self._now or (state is None and last is None):
            return
        self._now[name] = ProbeNow(state or ProbeState(name=name), last)
        self.version += 1
        self._note_change(name)

    def amend(self, state: ProbeState) -> None:
        """Replace the state of a known probe, keeping its last result and counts: the App's
        maintenance gate makes a muted alert not count as sent, and one sent at a window's
        end count (the store saves the state with the probe's next result)."""
        known = self._now.get(state.name)
        if known is None:
            return
        self._now[state.name] = replace(known, state=state)
        self.version += 1
        self._note_change(state.name)

    def forget(self, name: str) -> None:
        self._now.pop(name, None)
        self.version += 1
        self._note_change(name)

    def changed_since(self, version: int) -> list[str]:
        """The probes whose "now" changed after `version` (newest first)."""
        changed = []
        for name, at in reversed(self._changed.items()):
            if at <= version:
                break
            changed.append(name)
        return changed

    def _note_change(self, name: str) -> None:
        self._changed.pop(name, None)  # to the end: the dict stays ordered by version
        self._changed[name] = self.version

    def observe(self, result: Result, policy: Policy) -> Observation:
        known = self.now(result.name)
        before = known.state
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
                nxt = next_alert_after(policy, sent, failures)
                after = replace(after, alerts_sent=sent, next_alert=nxt)
                alert = AlertDecision("down", result.name, now, failures, after.since, None)

        if policy.flap_changes > 0:
            after, alert = _flap(before, after, transition, alert, now, policy)
        after, degradation = _degradation(before, after, result, good, now)
        warning: ExpiryWarning | None = None
        if policy.expiry_warnings and result.cert_expiry is not None:
            after, warning = _expiry(after, result.cert_expiry, now, policy.expiry_warnings)

        status_value = result.status.value
        checks = {**known.checks, status_value: known.checks.get(status_value, 0) + 1}
        self._now[result.name] = ProbeNow(after, result, checks)
        self.version += 1
        self._note_change(result.name)
        return Observation(result, after, transition, span, alert, warning, degradation=degradation)

    @staticmethod
    def _span(before: ProbeState, now: float, interval: float) -> Span | None:
        if before.last_time is None or before.status is Status.UNKNOWN:
            return None
        elapsed = now - before.last_time
        if elapsed <= 0 or elapsed > GAP_FACTOR * interval:
            return None
        return Span(before.last_time, now, before.status)
