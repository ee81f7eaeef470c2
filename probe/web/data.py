"""What the web layer shows: every configured probe's status, last result and SLA figures.

The status page, the JSON API and the badges all read per-probe summaries. Each one joins two
sources that the web layer reads and never keeps copies of:
- "now" (status, since when, last result): the running App's StatusTracker, the one owner of
  live state, so a probe that goes down shows down on the next request; without a running App
  (`probe report`, tests) the same view read from the store alongside each SLA computation;
- the SLA windows: the one SLACache (probe.store.sla_cache), computed in a thread and shared
  with the Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from probe.core.result import Result, Status
from probe.core.tracker import ProbeNow, ProbeState, StatusTracker, Transition
from probe.store.sla import HourRollup, SLAFigures
from probe.store.sla_cache import SUMMARY_WINDOWS, SLACache, SLASnapshot

__all__ = [
    "WINDOWS",
    "ConfiguredProbe",
    "LiveReader",
    "MaintenanceReader",
    "ProbeSummary",
    "StatusSource",
    "StoreReader",
    "read_now",
]

# The windows every summary carries (the status page's columns, the API's `windows`).
WINDOWS = SUMMARY_WINDOWS


class StoreReader(Protocol):
    """The store's read side, as the web layer uses it."""

    def load_states(self) -> dict[str, ProbeState]: ...
    def last_results(self, name: str, limit: int) -> list[Result]: ...
    def transitions(self, name: str, since: float, until: float) -> list[Transition]: ...
    def sla_many(self, names: Sequence[str], start: float, end: float) -> dict[str, SLAFigures]: ...
    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]: ...
    def daily_uptime(
        self, names: Sequence[str], start_day: float, days: int
    ) -> dict[str, list[float | None]]: ...
    def hourly_latency(
        self, names: Sequence[str], start: float, end: float
    ) -> dict[str, list[tuple[int, float]]]: ...
    def transitions_many(
        self, names: Sequence[str], since: float, until: float
    ) -> dict[str, list[Transition]]: ...


class LiveReader(Protocol):
    """Where "now" is read (probe.core.tracker.StatusTracker)."""

    @property
    def version(self) -> int: ...
    def now(self, name: str) -> ProbeNow: ...
    def changed_since(self, version: int) -> list[str]: ...


class MaintenanceReader(Protocol):
    """The maintenance windows probes are in now (the App's gate)."""

    @property
    def version(self) -> int: ...
    def window(self, name: str) -> tuple[str, float | None] | None: ...


def read_now(store: StoreReader, names: Sequence[str]) -> StatusTracker:
    """A tracker holding what the store knows of now: each probe's saved state and its last
    stored result (blocking: run it in a thread). The App starts from it; a StatusSource
    without a running App reads through it."""
    last: dict[str, Result] = {}
    for name in names:
        newest = store.last_results(name, 1)
        if newest:
            last[name] = newest[0]
    return StatusTracker(store.load_states(), last)


@dataclass(frozen=True, slots=True)
class ConfiguredProbe:
    """A configured probe as the web layer knows it (from the config, never from probers)."""

    name: str
    kind: str
    endpoint: str
    labels: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    info: ConfiguredProbe
    status: Status
    since: float | None
    last: Result | None
    windows: Mapping[str, SLAFigures]
    total: SLAFigures  # since the first record (EaseProbe's cumulative figures)
    flapping: bool = False  # changing status too often: alerts silenced (settings.probe.flap)
    degraded: str | None = None  # up, but failing its `degraded` conditions: which
    # The maintenance window the probe is in (its name, its end), or None.
    maintenance: tuple[str, float | None] | None = None


class StatusSource:
    """Summaries of every configured probe, in configuration order.

    `live`: the running App's tracker; without one, "now" is read from the store whenever the
    SLA figures are computed. `sla`: the shared SLA cache; without one, a cache of this
    source's own (`timezone`, `max_age` and `clock` are its settings).
    """

    def __init__(
        self,
        store: StoreReader,
        probes: Sequence[ConfiguredProbe],
        *,
        live: LiveReader | None = None,
        sla: SLACache | None = None,
        maintenance: MaintenanceReader | None = None,
        folded_into: Callable[[str], str | None] | None = None,
        timezone: str = "UTC",
        max_age: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`folded_into`: the dependency whose alert a probe's alerts go with now
        (`depends_on`), for the API; None when they go out on their own."""
        self._store = store
        self._folded_into = folded_into
        self.probes = list(probes)
        self._by_name = {p.name: p for p in self.probes}
        self._index = {p.name: index for index, p in enumerate(self.probes)}
        self._clock = clock
        names = [p.name for p in self.probes]
        self.sla = sla or SLACache(store, names, timezone=timezone, max_age=max_age, clock=clock)
        self._live = live
        self._maintenance = maintenance
        self._stored: StatusTracker | None = None  # "now" from the store, without `live`
        self._stored_for = -1  # the SLA generation `_stored` was read with
        self._stored_lock = asyncio.Lock()
        self._view: list[ProbeSummary] = []
        self._view_key: tuple[int, int, int, int] | None = None

    def now(self) -> float:
        return self._clock()

    @property
    def generation(self) -> int:
        """Counts computations of the SLA figures (the page's caches key on it)."""
        return self.sla.generation

    def invalidate(self) -> None:
        """Drop the cached figures: the next reader computes them anew (the final status
        page at stop shows the final state, not one up to `max_age` old)."""
        self.sla.invalidate()
        self._view_key = None

    @property
    def store(self) -> StoreReader:
        """The store this source reads (the status page reads its rollups too)."""
        return self._store

    def info(self, name: str) -> ConfiguredProbe | None:
        return self._by_name.get(name)

    def folded_into(self, name: str) -> str | None:
        """The dependency whose alert `name`'s alerts go with now, or None."""
        return None if self._folded_into is None else self._folded_into(name)

    async def summaries(self) -> list[ProbeSummary]:
        """Every probe's summary, in configuration order. The list is shared: do not change it."""
        snapshot = await self.sla.figures()
        live = self._live or await self._stored_now(snapshot.generation)
        windows = self._maintenance
        key = (snapshot.generation, id(live), windows.version if windows else 0, live.version)
        if key == self._view_key:
            return self._view
        if self._view_key is not None and self._view_key[:3] == key[:3]:
            # Same figures, same source: only the probes that changed since are made anew
            # (a new list: a reader may still hold the last one).
            view = list(self._view)
            for name in live.changed_since(self._view_key[3]):
                index = self._index.get(name)
                if index is not None:
                    view[index] = self._summary(self.probes[index], live, snapshot, windows)
        else:
            view = [self._summary(info, live, snapshot, windows) for info in self.probes]
        self._view, self._view_key = view, key
        return self._view

    @staticmethod
    def _summary(
        info: ConfiguredProbe,
        live: LiveReader,
        snapshot: SLASnapshot,
        windows: MaintenanceReader | None = None,
    ) -> ProbeSummary:
        now = live.now(info.name)
        return ProbeSummary(
            info=info,
            status=now.state.status,
            since=now.state.since,
            last=now.last,
            windows={w: snapshot.of(info.name, w) for w in WINDOWS},
            total=snapshot.of(info.name, "all"),
            flapping=now.state.flapping,
            degraded=now.state.degraded,
            maintenance=None if windows is None else windows.window(info.name),
        )

    async def _stored_now(self, generation: int) -> StatusTracker:
        async with self._stored_lock:  # one read at a time; the others share its result
            if self._stored is None or self._stored_for != generation:
                names = [p.name for p in self.probes]
                self._stored = await asyncio.to_thread(read_now, self._store, names)
                self._stored_for = generation
            return self._stored

    async def summary(self, name: str) -> ProbeSummary | None:
        for item in await self.summaries():
            if item.info.name == name:
                return item
        return None

    async def detail(self, name: str, *, results: int = 50, days: int = 90) -> dict[str, Any]:
        """Recent results and the status changes of the last `days`, read now."""
        now = self._clock()

        def read() -> tuple[list[Result], list[Transition]]:
            return (
                self._store.last_results(name, results),
                self._store.transitions(name, now - days * 86400.0, now + 1),
            )

        last, changes = await asyncio.to_thread(read)
        return {"results": last, "transitions": changes}
