"""Maintenance windows in the running App: muting alerts, the reckoning at a window's end,
and the time left out of the SLA.

The App hands every Observation to `MaintenanceGate.screen` before storing it and sending its
alert. Inside a window (probe.core.maintenance) checks run and are stored as usual, but the
tracker's alert decisions are muted, and the measured time inside the window is marked
uncounted. When a window ends (`ended`, from the App's timer), each probe that was in it is
compared with what it was last notified of: ONE down if it is down and nobody was told, ONE
recovery if a down went out and it is up now (never the silence of a probe still down after
maintenance, and never a repeat).

What was notified is kept in the tracker's state, so it survives a restart in the middle of a
window: a muted down does not count as sent (`alerts_sent` and `next_alert` are put back as
they were before the decision), and a muted recovery keeps the outage's `alerts_sent` on the
up state, marking a recovery still owed. A notification sent at a window's end counts as the
tracker's own would.
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from probe.config import Config
from probe.config.maintenance import WEEKDAYS, WindowSpec, parse_time_of_day
from probe.core.maintenance import MaintenanceCalendar, OneOffWindow, RecurringWindow, Window
from probe.core.result import Status
from probe.core.tracker import (
    AlertDecision,
    Observation,
    Policy,
    ProbeState,
    StatusTracker,
    next_alert_after,
)

__all__ = ["MaintenanceGate", "calendar_for", "window_of"]

log = logging.getLogger("probe.maintenance")


def window_of(spec: WindowSpec, timezone: str) -> Window:
    """The window maths of a validated spec; `timezone` when the spec names none."""
    if spec.every is None:
        assert spec.end is not None
        start = datetime.fromisoformat(spec.start).timestamp()
        return OneOffWindow(start, datetime.fromisoformat(spec.end).timestamp(), spec.name)
    assert spec.duration is not None
    return RecurringWindow(
        parse_time_of_day(spec.start),
        spec.duration,
        spec.timezone_or(timezone),
        frozenset(WEEKDAYS.index(day) for day in spec.every),
        spec.name,
    )


def calendar_for(config: Config) -> MaintenanceCalendar:
    """Every window of `config`: the top-level ones and each enabled probe's own."""
    zone = config.settings.timezone
    shared = tuple(
        (window_of(spec, zone), None if spec.probes is None else frozenset(spec.probes))
        for spec in config.maintenance
    )
    own = {
        probe.name: tuple(window_of(spec, zone) for spec in probe.maintenance)
        for probe in config.enabled_probes
        if probe.maintenance
    }
    return MaintenanceCalendar(shared, own)


def shown_name(window: Window) -> str:
    return window.name or "maintenance"


class MaintenanceGate:
    """Mutes alerts inside windows and reckons at their ends (see the module's doc)."""

    def __init__(
        self,
        calendar: MaintenanceCalendar,
        tracker: StatusTracker,
        *,
        clock: Callable[[], float] = clock.time,
    ) -> None:
        self.calendar = calendar
        self.tracker = tracker
        self.clock = clock
        # The window each probe was in when last looked at (by `screen` or `ended`).
        self._inside: dict[str, Window] = {}
        # (probe, window) pairs whose muting was logged at INFO: once per window, not per check.
        self._logged: set[tuple[str, Window]] = set()
        # Bumped whenever a probe enters or leaves a window: a cached view keys on it.
        self.version = 0

    def window(self, name: str) -> tuple[str, float | None] | None:
        """The window `name` is in at this moment (its name, when it ends), or None."""
        if not self.calendar:
            return None
        t = self.clock()
        window = self.calendar.window_for(name, t)
        if window is None:
            return None
        return shown_name(window), self.calendar.end_of(name, t)

    def screen(self, observation: Observation, before: ProbeState) -> Observation:
        """`observation` as the store and the alerting should take it: the measured time
        inside windows uncounted, and its alert muted (None) inside a window. `before` is the
        probe's state before the result."""
        if not self.calendar:
            return observation
        name = observation.state.name
        t = observation.result.time.timestamp()
        span = observation.span
        if span is not None:
            covered = self.calendar.covered(name, span.start, span.end)
            if covered:
                observation = replace(observation, uncounted=tuple(covered))
        window = self.calendar.window_for(name, t)
        if window is None:
            return observation
        if self._inside.get(name) is not window:
            self._inside[name] = window
            self.version += 1
        alert = observation.alert
        if alert is None:
            return observation
        state = self._unsent(observation.state, alert, before, observation)
        if state != observation.state:
            self.tracker.amend(state)
        key = (name, window)
        level = logging.DEBUG if key in self._logged else logging.INFO
        self._logged.add(key)
        log.log(
            level, '%s: %s alert muted (maintenance "%s")', name, alert.event, shown_name(window)
        )
        return replace(observation, state=state, alert=None)

    @staticmethod
    def _unsent(
        state: ProbeState, alert: AlertDecision, before: ProbeState, observation: Observation
    ) -> ProbeState:
        """The state with the muted `alert` not counted as sent."""
        if alert.event not in ("down", "recovery"):
            return state  # flapping, stable: nothing counted, nothing owed
        if alert.event == "recovery":
            # A recovery is owed when a down went out: the up state keeps the outage's count.
            return replace(state, alerts_sent=before.alerts_sent)
        if observation.transition is not None and before.alerts_sent > 0:
            # Down again while a recovery is owed: to whoever was told, it never recovered.
            return state
        # Decided again at the next failure (muted again inside the window), or sent at the end.
        return replace(state, alerts_sent=state.alerts_sent - 1, next_alert=alert.position)

    def ended(self, names: Iterable[str], now: float) -> list[str]:
        """Of `names`, those that were in a window and are not at `now` (and, at the first
        call after start or a reload, those with windows that are not in one: a window may
        have ended while probe was stopped). Call `reckon` for each."""
        out: list[str] = []
        for name in names:
            window = self.calendar.window_for(name, now) if self.calendar else None
            if window is not None:
                if self._inside.get(name) is not window:
                    self._inside[name] = window
                    self.version += 1
            elif self._inside.pop(name, None) is not None:
                out.append(name)
                self.version += 1
                self._logged = {key for key in self._logged if key[0] != name}
        return out

    def stale(self, names: Iterable[str], now: float) -> list[str]:
        """Probes with windows, outside them at `now`, whose state says a notification is owed
        (a window that ended while probe was stopped or that a reload removed)."""
        owed = []
        for name in names:
            if self.calendar.window_for(name, now) is not None:
                continue
            state = self.tracker.state(name)
            if _owed(state) is not None:
                owed.append(name)
        return owed

    def reckon(self, name: str, policy: Policy, now: float) -> Observation | None:
        """The one notification owed for `name` at a window's end, as an observation with an
        alert decision (the tracker's state counts it); None when nothing is owed."""
        known = self.tracker.now(name)
        state, last = known.state, known.last
        event = _owed(state)
        if event is None or last is None:
            return None
        if event == "down":
            position = max(state.outage_failures, 1)
            decision = AlertDecision("down", name, now, position, state.since, None)
            state = replace(state, alerts_sent=1, next_alert=next_alert_after(policy, 1, position))
        else:
            decision = AlertDecision("recovery", name, now, 0, None, None)
            state = replace(state, alerts_sent=0, next_alert=None)
        self.tracker.amend(state)
        log.info("%s: %s notification after maintenance", name, event)
        return Observation(last, state, None, None, decision)


def _owed(state: ProbeState) -> str | None:
    """Which notification the state says is owed: down (down, none sent in this outage), or
    recovery (up, with the count of an outage whose recovery was muted)."""
    if state.status is Status.DOWN and state.alerts_sent == 0 and state.next_alert is not None:
        return "down"
    if state.status is Status.UP and state.alerts_sent > 0:
        return "recovery"
    return None
