"""What the web layer shows, read from the store and cached.

The status page, the JSON API and the badges all read per-probe summaries: the probe's
status, its last result and its SLA over each window. The SLA part costs a few SQL queries
over the rollups (about a second at 1,000 probes x 90 days): it runs in a thread, never on
the event loop, in the background while the App runs (`keep_fresh`), so requests answer from
memory. Status and last result are pushed in by the App per result (`record`) and are live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from probe.core.result import Result, Status
from probe.core.tracker import ProbeState, Transition
from probe.store.sla import HourRollup, SLAFigures, window_bounds

__all__ = ["WINDOWS", "ConfiguredProbe", "ProbeSummary", "StatusSource", "StoreReader"]

log = logging.getLogger("probe.web")

# The windows every summary carries (the status page's columns, the API's `windows`).
WINDOWS = ("24h", "7d", "30d", "90d")


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


@dataclass(frozen=True, slots=True)
class ConfiguredProbe:
    """A configured probe as the web layer knows it (from the config, never from probers)."""

    name: str
    kind: str
    endpoint: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    info: ConfiguredProbe
    status: Status
    since: float | None
    last: Result | None
    windows: Mapping[str, SLAFigures]
    total: SLAFigures  # since the first record (EaseProbe's cumulative figures)


def refresh_pause(took: float, max_age: float) -> float:
    """Seconds between two background computations that took `took` seconds: as often as
    costs at most ~1% of the time (a small store's figures stay within seconds of the
    truth), at least every 2 s, and never so seldom that a reader finds them `max_age` old.
    (The work runs in a thread but holds the GIL between SQL calls: every busy second of it
    delays the checks' event loop.)"""
    return max(0.5, min(max(2.0, 100.0 * took), 0.8 * max_age))


Live = dict[str, tuple[Status, "float | None", Result]]


def _with_live(item: ProbeSummary, live: Live) -> ProbeSummary:
    entry = live.get(item.info.name)
    if entry is None:
        return item
    status, since, last = entry
    if item.last is not None and item.last.time > last.time:
        return item  # the store knows a newer result (another writer): keep it
    return replace(item, status=status, since=since, last=last)


class StatusSource:
    """Summaries of every configured probe.

    The SLA windows are computed from the store at most every `max_age` seconds (in a
    thread); each probe's status and last result are live when the running App `record`s
    every result here, so a probe that goes down shows down on the next request, not up to
    `max_age` later.
    """

    def __init__(
        self,
        store: StoreReader,
        probes: Sequence[ConfiguredProbe],
        *,
        timezone: str = "UTC",
        max_age: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.probes = list(probes)
        self._by_name = {p.name: p for p in self.probes}
        self._tz = ZoneInfo(timezone)
        self._max_age = max_age
        self._clock = clock
        self._cached: list[ProbeSummary] | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()
        self._live: Live = {}
        self._wanted = True  # read since the last computation (the first one is wanted)
        self._merged: list[ProbeSummary] | None = None  # _cached with _live applied
        self._live_version = 0  # counts record() calls
        self.generation = 0  # counts computations of the windows (page caches key on it)

    def now(self) -> float:
        return self._clock()

    def record(self, result: Result, state: ProbeState) -> None:
        """A result the App just got and the probe's state after it: shown from now on."""
        if result.name in self._by_name:
            self._live[result.name] = (state.status, state.since, result)
            self._live_version += 1
            self._merged = None

    async def keep_fresh(self) -> None:
        """Recompute the summaries before they expire, for ever (a task the app runs):
        requests then always find a fresh cache and never wait for the computation, which
        over 1,000 probes and 90 days takes about a second of SQL (see `refresh_pause`)."""
        while True:
            took = 0.0
            if self._wanted:  # nobody looked since the last computation: spare the work
                began = time.perf_counter()
                try:
                    async with self._lock:
                        await self._recompute()
                except Exception as exc:  # a store error may pass; requests report their own
                    log.warning("status summaries not refreshed: %s", exc)
                took = time.perf_counter() - began
            await asyncio.sleep(refresh_pause(took, self._max_age))

    def invalidate(self) -> None:
        """Drop the cached summaries: the next reader computes them anew (the final status
        page at stop shows the final state, not one up to `max_age` old)."""
        self._cached = None
        self._merged = None

    @property
    def store(self) -> StoreReader:
        """The store this source reads (the status page reads its rollups too)."""
        return self._store

    def info(self, name: str) -> ConfiguredProbe | None:
        return self._by_name.get(name)

    async def summaries(self) -> list[ProbeSummary]:
        """Every probe's summary, in configuration order. The list is shared: do not change it."""
        async with self._lock:  # one computation at a time; the others wait for its result
            self._wanted = True
            if self._cached is None or self._clock() - self._cached_at >= self._max_age:
                await self._recompute()
            cached = self._cached
            assert cached is not None
            if self._merged is None:
                live, version = dict(self._live), self._live_version  # results keep arriving
                merged = await asyncio.to_thread(lambda: [_with_live(i, live) for i in cached])
                # Kept only if no result came in meanwhile: else the next reader would be
                # served this older state until yet another result arrived.
                if self._cached is cached and self._live_version == version:
                    self._merged = merged
                return merged
            return self._merged

    async def _recompute(self) -> None:
        now = self._clock()
        self._cached = await asyncio.to_thread(self._compute, now)
        self._cached_at = now
        self._wanted = False  # only once done: a failed computation is still wanted
        self._merged = None
        self.generation += 1

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

    def _compute(self, now: float) -> list[ProbeSummary]:
        names = [p.name for p in self.probes]
        moment = datetime.fromtimestamp(now, UTC)
        windows: dict[str, dict[str, SLAFigures]] = {}
        for window in (*WINDOWS, "all"):
            start, end = window_bounds(window, moment, self._tz)
            windows[window] = self._store.sla_many(names, start, end)
        states = self._store.load_states()
        summaries = []
        for info in self.probes:
            state = states.get(info.name)
            last = self._store.last_results(info.name, 1)
            summaries.append(
                ProbeSummary(
                    info=info,
                    status=state.status if state else Status.UNKNOWN,
                    since=state.since if state else None,
                    last=last[0] if last else None,
                    windows={w: windows[w].get(info.name, SLAFigures()) for w in WINDOWS},
                    total=windows["all"].get(info.name, SLAFigures()),
                )
            )
        return summaries
