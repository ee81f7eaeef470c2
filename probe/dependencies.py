"""Alerts of dependent probes (`depends_on:`): one message that says what is broken.

When the router goes down, the 300 probes behind it fail too, often before the router's own
check notices. The tracker decides their alerts as usual; this gate decides which go out:

- A dependent's down alert while one of its dependencies (directly or through others) is down:
  folded into that dependency's alert, not sent. Its status, results and transitions are
  recorded as always; only the message is spared.
- A dependent's down alert while its dependencies look fine: held, and its direct dependencies
  are checked again at once (`check_now`), since a dependent is often checked before its
  dependency notices. When they have all reported (or after the longest of their timeouts and
  a margin), the alert is decided again: folded if one of them is down now, sent otherwise.
- A dependency's down alert lists the dependents whose alerts it folds: those held waiting on
  it, and every dependent whose last check failed ("db-primary: connection refused; 12
  dependent probes affected: api, worker, ...").
- A folded dependent that recovers while it is folded sends nothing (it never said down).
- When the dependency recovers, its dependents that are still down are checked again at once,
  and each still down then alerts on its own (unless another of its dependencies is down).

The state here (who is held, who is folded into whom) lives in memory: after a restart a
folded dependent that recovers sends its recovery although its down was never sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from probe.core.result import Status
from probe.core.tracker import Observation, StatusTracker
from probe.dependency_graph import DependencyGraph
from probe.notify.base import Event, Notification

__all__ = ["DependencyGate"]

log = logging.getLogger("probe.alerts")

# Added to the longest timeout of the dependencies a held alert waits for.
HOLD_MARGIN = 2.0
# Dependents named in a dependency's message; the rest are counted.
LISTED = 10


@dataclass(slots=True)
class _Held:
    """A dependent's down alert waiting for its dependencies' fresh checks."""

    notification: Notification
    awaiting: set[str]
    timer: asyncio.TimerHandle | None = None


class DependencyGate:
    """Between the tracker's alert decisions and the dispatcher, for probes with
    `depends_on`. `handle()` takes every observation (an alert or not: fresh checks of
    dependencies end holds); `send` dispatches a notification for the probe named;
    `tracker` gives the App's tracker (which the App replaces once, when it seeds it)."""

    def __init__(
        self,
        graph: DependencyGraph,
        tracker: Callable[[], StatusTracker],
        *,
        check_now: Callable[[str], bool],
        send: Callable[[Notification], None],
        timeouts: Mapping[str, float],
    ) -> None:
        self._graph = graph
        self._tracker = tracker
        self._check_now = check_now
        self._send = send
        self._timeouts = timeouts
        self._held: dict[str, _Held] = {}
        # A dependency's down alert waiting for its dependents' fresh checks.
        self._gathering: dict[str, _Held] = {}
        self._waited_on: dict[str, set[str]] = {}  # probe -> the held alerts waiting on it
        self._folded_into: dict[str, str] = {}  # dependent -> the dependency that took it
        self._own: set[str] = set()  # folded dependents re-checked after their root recovered

    def reconfigure(
        self,
        graph: DependencyGraph,
        check_now: Callable[[str], bool],
        timeouts: Mapping[str, float],
    ) -> None:
        """A reload's graph. Held alerts are decided at once on the new one."""
        self._graph = graph
        self._check_now = check_now
        self._timeouts = timeouts
        for name in list(self._held):
            self._decide(name)

    def flush(self) -> None:
        """Decide every held alert now, on what is known (at stop: no fresh check will come
        to decide them, and an alert must not be lost for want of one)."""
        for name in list(self._held):
            self._decide(name)
        for name in list(self._gathering):
            self._finish_down(name)

    def handle(self, observation: Observation, notification: Notification | None) -> None:
        name = observation.result.name
        if notification is None:
            pass
        elif notification.event is Event.DOWN:
            self._on_down(name, notification)
        elif notification.event is Event.RECOVERY:
            self._on_recovery(name, notification)
        else:
            self._send(notification)
        if name in self._own:
            self._own.discard(name)
            self._alert_on_own(name, observation)
        for waiter in self._waited_on.pop(name, set()):
            held = self._held.get(waiter)
            if held is not None:
                held.awaiting.discard(name)
                if not held.awaiting:
                    self._decide(waiter)
            gathering = self._gathering.get(waiter)
            if gathering is not None:
                gathering.awaiting.discard(name)
                if not gathering.awaiting:
                    self._finish_down(waiter)

    # --- down ------------------------------------------------------------------------------

    def _on_down(self, name: str, notification: Notification) -> None:
        root = self._graph.root_cause(name, self._is_down)
        if root is not None:
            self._fold(name, root)
            return
        if name in self._held:
            return  # a repeat of an alert still held: the held one decides
        dependencies = [d for d in self._graph.dependencies(name) if self._check_now(d)]
        if not dependencies:
            self._send_down(name, notification)
            return
        loop = asyncio.get_running_loop()
        wait = max(self._timeouts.get(d, 0.0) for d in dependencies) + HOLD_MARGIN
        held = _Held(notification, set(dependencies))
        held.timer = loop.call_later(wait, self._decide, name)
        self._held[name] = held
        for dep in dependencies:
            self._waited_on.setdefault(dep, set()).add(name)
        log.debug("%s: down alert held until %s are checked again", name, ", ".join(dependencies))

    def _decide(self, name: str) -> None:
        """A held alert, once its dependencies reported (or the wait ran out)."""
        held = self._held.pop(name, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        for dep in held.awaiting:
            self._waited_on.get(dep, set()).discard(name)
        root = self._graph.root_cause(name, self._is_down)
        if root is not None:
            self._fold(name, root)
        elif self._tracker().state(name).status is Status.DOWN:
            self._send_down(name, held.notification)
        # else: it recovered while held: nothing was said, nothing to say

    def _send_down(self, name: str, notification: Notification) -> None:
        """`name`'s down alert: with dependents, they are checked again at once first, and
        the alert goes out once they have reported (or after the longest of their timeouts
        and a margin), naming those that fail."""
        if name in self._gathering:
            return  # a repeat while the first still gathers
        dependents = [d for d in self._graph.all_dependents(name) if d not in self._held]
        asked = [d for d in dependents if not self._failing(d) and self._check_now(d)]
        if not asked:
            self._gathering[name] = _Held(notification, set())
            self._finish_down(name)
            return
        wait = max(self._timeouts.get(d, 0.0) for d in asked) + HOLD_MARGIN
        gathering = _Held(notification, set(asked))
        gathering.timer = asyncio.get_running_loop().call_later(wait, self._finish_down, name)
        self._gathering[name] = gathering
        for dependent in asked:
            self._waited_on.setdefault(dependent, set()).add(name)

    def _finish_down(self, name: str) -> None:
        """Send `name`'s gathered down alert, naming the dependents it takes with it."""
        gathering = self._gathering.pop(name, None)
        if gathering is None:
            return
        if gathering.timer is not None:
            gathering.timer.cancel()
        for dependent in gathering.awaiting:
            self._waited_on.get(dependent, set()).discard(name)
        notification = gathering.notification
        taken = self._taken_by(name)
        affected = [
            d
            for d in self._graph.all_dependents(name)
            if d in self._held or d in taken or self._failing(d)
        ]
        for dependent in affected:
            self._take(dependent, name)
        if affected:
            shown = ", ".join(affected[:LISTED])
            more = f" and {len(affected) - LISTED} more" if len(affected) > LISTED else ""
            noun = "probe" if len(affected) == 1 else "probes"
            message = f"{notification.message}; {len(affected)} dependent {noun} affected: "
            notification = replace(notification, message=message + shown + more)
            log.info("%s: down; alerts of %d dependent %s folded in", name, len(affected), noun)
        self._send(notification)

    def _fold(self, name: str, root: str) -> None:
        log.info("%s: down alert folded into %s's (a dependency, down)", name, root)
        self._take(name, root)

    def _take(self, dependent: str, root: str) -> None:
        """`dependent`'s alerts now go with `root`'s: a held one is dropped."""
        held = self._held.pop(dependent, None)
        if held is not None and held.timer is not None:
            held.timer.cancel()
        self._folded_into[dependent] = root

    def _taken_by(self, root: str) -> list[str]:
        """The dependents whose alerts go with `root`'s now (`_folded_into` is the one record;
        scanned only when a dependency goes down or recovers)."""
        return sorted(d for d, r in self._folded_into.items() if r == root)

    # --- recovery --------------------------------------------------------------------------

    def _on_recovery(self, name: str, notification: Notification) -> None:
        root = self._folded_into.pop(name, None)
        if root is not None:
            log.info("%s: recovered; no message (its down alert went with %s's)", name, root)
        elif (held := self._held.pop(name, None) or self._gathering.pop(name, None)) is not None:
            if held.timer is not None:
                held.timer.cancel()
            log.debug("%s: recovered while its down alert was held; nothing to say", name)
        else:
            self._send(notification)
        for dependent in self._taken_by(name):
            if self._tracker().state(dependent).status is Status.DOWN:
                # Still down without its dependency to blame: a fresh check, then its own
                # alert (handle() -> _alert_on_own) if it is still down.
                if self._check_now(dependent):
                    self._own.add(dependent)
                else:
                    self._alert_on_own(dependent, None)
            else:
                self._folded_into.pop(dependent, None)

    def _alert_on_own(self, name: str, observation: Observation | None) -> None:
        """A folded dependent after its dependency recovered: its own down alert when it is
        still down and nothing else it depends on is."""
        if self._folded_into.get(name) is None:
            return  # its recovery came in the meantime (and said nothing)
        state = self._tracker().state(name)
        if state.status is not Status.DOWN:
            return
        root = self._graph.root_cause(name, self._is_down)
        if root is not None:
            self._fold(name, root)
            return
        self._folded_into.pop(name, None)
        now = self._tracker().now(name)
        result = now.last if observation is None else observation.result
        notification = Notification(
            event=Event.DOWN,
            time=state.last_time or 0.0,
            probe=name,
            kind=None if result is None else result.kind,
            endpoint=None if result is None else result.endpoint,
            status=state.status.value,
            message="" if result is None else result.message,
            outage_start=state.since,
            position=state.outage_failures,
        )
        log.info("%s: still down after its dependency recovered; alerting on its own", name)
        self._send_down(name, notification)

    # --- state -----------------------------------------------------------------------------

    def _is_down(self, name: str) -> bool:
        return self._tracker().state(name).status is Status.DOWN

    def _failing(self, name: str) -> bool:
        last = self._tracker().now(name).last
        return self._is_down(name) or (last is not None and last.status is Status.DOWN)

    def folded_into(self, name: str) -> str | None:
        """The dependency whose alert `name`'s alerts go with now (for the API), or None."""
        return self._folded_into.get(name)
