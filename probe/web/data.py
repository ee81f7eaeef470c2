"""What the web layer shows, read from the store and cached.

The status page, the JSON API and the badges all read per-probe summaries: the probe's
status, its last result and its SLA over each window. Computing those for 1,000 probes is a
few SQL queries over the rollups; it runs in a thread (never on the event loop) and at most
once per `max_age` seconds however many requests come in, so the API answers from memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from probe.core.result import Result, Status
from probe.core.tracker import ProbeState, Transition
from probe.store.sla import HourRollup, SLAFigures, window_bounds

__all__ = ["WINDOWS", "ProbeInfo", "ProbeSummary", "StatusSource", "StoreReader"]

# The windows every summary carries (the status page's columns, the API's `windows`).
WINDOWS = ("24h", "7d", "30d", "90d")


class StoreReader(Protocol):
    """The store's read side, as the web layer uses it."""

    def load_states(self) -> dict[str, ProbeState]: ...
    def last_results(self, name: str, limit: int) -> list[Result]: ...
    def transitions(self, name: str, since: float, until: float) -> list[Transition]: ...
    def sla_many(self, names: Sequence[str], start: float, end: float) -> dict[str, SLAFigures]: ...
    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]: ...


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """A configured probe as the web layer knows it (from the config, never from probers)."""

    name: str
    kind: str
    endpoint: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    info: ProbeInfo
    status: Status
    since: float | None
    last: Result | None
    windows: Mapping[str, SLAFigures]
    total: SLAFigures  # since the first record (EaseProbe's cumulative figures)


class StatusSource:
    """Summaries of every configured probe, recomputed at most every `max_age` seconds."""

    def __init__(
        self,
        store: StoreReader,
        probes: Sequence[ProbeInfo],
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

    def now(self) -> float:
        return self._clock()

    @property
    def store(self) -> StoreReader:
        """The store this source reads (the status page reads its rollups too)."""
        return self._store

    def info(self, name: str) -> ProbeInfo | None:
        return self._by_name.get(name)

    async def summaries(self) -> list[ProbeSummary]:
        async with self._lock:  # one computation at a time; the others wait for its result
            now = self._clock()
            if self._cached is None or now - self._cached_at >= self._max_age:
                self._cached = await asyncio.to_thread(self._compute, now)
                self._cached_at = now
            return self._cached

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
