"""The one SLA cache: every probe's figures over the standard windows, computed in a thread.

The status page, the JSON API, the badges and the Prometheus metrics all show SLA figures over
the same windows (24h, 7d, 30d, 90d and since the first record). Computing them costs a few
SQL queries over the rollups, about a second at 1,000 probes x 90 days, so they are computed
once, off the event loop, and every reader takes the same snapshot:

- `figures()` waits for a computation only when the snapshot is older than `max_age` (or
  there is none): what a one-off reader (`probe report`, a test) wants;
- `latest()` never waits: the last snapshot, or None (what a metrics scrape wants);
- `keep_fresh()`, a task the running App owns, recomputes before the snapshot expires, so
  requests never wait, and skips the work while nobody reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from probe.store.sla import SLAFigures, window_bounds

__all__ = ["SUMMARY_WINDOWS", "SLACache", "SLASnapshot", "WindowReader", "refresh_pause"]

log = logging.getLogger("probe.store")

# The windows every reader shows (the page's columns, the API's `windows`, the metrics'
# `window` label); "all" (since the first record) is computed beside them.
SUMMARY_WINDOWS = ("24h", "7d", "30d", "90d")
_COMPUTED = (*SUMMARY_WINDOWS, "all")


class WindowReader(Protocol):
    """The store query the cache runs (probe.store.Store implements it)."""

    def sla_many(self, names: Sequence[str], start: float, end: float) -> dict[str, SLAFigures]: ...


@dataclass(frozen=True, slots=True)
class SLASnapshot:
    """Figures of every probe over every window, as of `at` (Unix seconds)."""

    at: float
    generation: int  # counts computations: readers that derive views from it key on this
    figures: Mapping[str, Mapping[str, SLAFigures]]  # probe -> window -> figures

    def of(self, name: str, window: str) -> SLAFigures:
        return self.figures.get(name, {}).get(window) or SLAFigures()


# Probes per SLA query of a background computation, and the pause after each.
_CHUNK = 500
_PAUSE = 0.002


def refresh_pause(took: float, max_age: float) -> float:
    """Seconds between two background computations that took `took` seconds: as often as
    costs at most ~1% of the time (a small store's figures stay within seconds of the
    truth), at least every 2 s, and never so seldom that a reader finds them `max_age` old,
    the next computation's own duration included (at 50,000 probes one takes seconds, and
    readers that found the figures expired waited for it). (The work runs in a thread but
    holds the GIL between SQL calls: every busy second of it delays the checks' event loop.)"""
    return max(0.5, min(max(2.0, 100.0 * took), 0.8 * max_age - took))


class SLACache:
    """SLA figures of `names` over SUMMARY_WINDOWS and "all", in `timezone`."""

    def __init__(
        self,
        reader: WindowReader,
        names: Sequence[str],
        *,
        timezone: str = "UTC",
        max_age: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self._names = list(dict.fromkeys(names))
        self._tz = ZoneInfo(timezone)
        self._max_age = max_age
        self._clock = clock
        self._snapshot: SLASnapshot | None = None
        self._generation = 0
        self._lock = asyncio.Lock()
        self._wanted = True  # read since the last computation (the first one is wanted)

    @property
    def generation(self) -> int:
        return self._generation

    def latest(self) -> SLASnapshot | None:
        """The last snapshot, however old, without waiting (None before the first)."""
        self._wanted = True
        return self._snapshot

    async def figures(self) -> SLASnapshot:
        """A snapshot at most `max_age` old: computed now (in a thread) if need be. Raises
        what the store raises when it has to compute and cannot."""
        async with self._lock:  # one computation at a time; the others wait for its result
            self._wanted = True
            snapshot = self._snapshot
            if snapshot is None or self._clock() - snapshot.at >= self._max_age:
                snapshot = await self._recompute()
            return snapshot

    def set_names(self, names: Sequence[str]) -> None:
        """The probes to compute from now on (a reload added or removed some); the next
        reader computes anew."""
        self._names = list(dict.fromkeys(names))
        self._snapshot = None

    def invalidate(self) -> None:
        """Drop the snapshot: the next `figures()` computes anew (the final status page at
        stop shows the final figures, not ones up to `max_age` old)."""
        self._snapshot = None

    async def keep_fresh(self) -> None:
        """Recompute before the snapshot expires, for ever (a task the App runs); a round
        that nobody read since the last computation is skipped."""
        while True:
            took = 0.0
            if self._wanted:
                began = time.perf_counter()
                try:
                    async with self._lock:
                        await self._recompute()
                except Exception as exc:  # a store error may pass; readers report their own
                    log.warning("SLA figures not refreshed: %s", exc)
                took = time.perf_counter() - began
            await asyncio.sleep(refresh_pause(took, self._max_age))

    async def _recompute(self) -> SLASnapshot:
        now = self._clock()
        figures = await asyncio.to_thread(self._compute, now)
        self._generation += 1
        self._snapshot = SLASnapshot(now, self._generation, figures)
        self._wanted = False  # only once done: a failed computation is still wanted
        return self._snapshot

    def _compute(self, now: float) -> dict[str, dict[str, SLAFigures]]:
        moment = datetime.fromtimestamp(now, UTC)
        names = self._names  # one list throughout: set_names may replace it meanwhile
        out: dict[str, dict[str, SLAFigures]] = {name: {} for name in names}
        for window in _COMPUTED:
            start, end = window_bounds(window, moment, self._tz)
            for first in range(0, len(names), _CHUNK):
                chunk = names[first : first + _CHUNK]
                for name, figures in self._reader.sla_many(chunk, start, end).items():
                    if name in out:
                        out[name][window] = figures
                # This thread holds the GIL between SQL calls; the event loop that runs the
                # checks waits for it at each turn. A pause between chunks lets the loop run
                # whole turns instead (50,000 probes: seconds of work, lag p99 0.6 s without).
                time.sleep(_PAUSE)
        return out
