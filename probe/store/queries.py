"""The store's reads: one read-only connection behind a lock, and the SLA window queries.

Reads run on the caller's thread (the web layer runs them in a thread pool) over their own
read-only connection; WAL lets them run while the writer commits. The SLA figures are
computed in SQL: whole UTC days inside a window come from the daily rollups, only the hours of
the partial days at its edges from the hourly ones, so a status page over 1,000 probes and 90
days never pulls millions of rows into Python.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probe.core.result import Result, Status
from probe.core.tracker import ProbeState, Transition
from probe.errors import StoreError
from probe.store.base import OutboxRow, OutboxState
from probe.store.columns import read_alert_state, sum_histograms
from probe.store.errors import as_store_error
from probe.store.outbox import COUNT_IN_STATE, check_state, pending_query
from probe.store.sla import (
    DAY,
    HourRollup,
    SLAFigures,
    day_start,
    hour_start,
    percentile_from_histogram,
)

__all__ = ["StoreReader", "window_params"]

log = logging.getLogger("probe.store")

# The read queries take their probes as one JSON array, :names: one statement (one prepared
# statement in SQLite's cache) serves any number of names, with no placeholder list to build.
_NAMED = "probe IN (SELECT value FROM json_each(:names))"


def _window_rows(daily: str, hourly: str, *, hourly_from: str) -> str:
    """The `rows` of an SLA query over [:start, :end) (parameters from `window_params`):
    the `daily` columns of rollups_daily and the `hourly` ones of rollups_hourly.

    Whole UTC days inside the window, [:day_from, :day_to), come from rollups_daily (every hour
    of them is wholly inside, so nothing is prorated and all is counted); the hours outside
    that range (the partial days at both ends) come from rollups_hourly, the first end from
    `hourly_from` on. Without a whole day, :day_from = :day_to = :end. Each end is its own
    SELECT: with an OR of the two ranges SQLite walks every hour of a probe.
    """
    return f"""
WITH rows AS (
    SELECT {daily} FROM rollups_daily
    WHERE {_NAMED} AND day >= :day_from AND day < :day_to
    UNION ALL
    SELECT {hourly} FROM rollups_hourly
    WHERE {_NAMED} AND hour >= {hourly_from} AND hour < :day_from
    UNION ALL
    SELECT {hourly} FROM rollups_hourly
    WHERE {_NAMED} AND hour >= :day_to AND hour < :end
)"""


# The edge arithmetic of `probe.store.sla.figures_from_rollups`: an edge hour's times count by
# the part of its measured span inside the window (`frac`), its checks and latencies only if it
# starts inside (`counted`); so the hours are read from the one holding :start (:first_hour).
_SLA_TIMES = (
    _window_rows(
        daily="""probe, time_up, time_down, checks_up + checks_down AS checks, checks_down,
           latency_min, latency_max, 1.0 AS frac, 1 AS counted""",
        hourly="""probe, time_up, time_down, checks_up + checks_down, checks_down,
           latency_min, latency_max,
           CASE
               WHEN hour >= :start AND hour + 3600 <= :end THEN 1.0
               WHEN measured_from IS NULL OR measured_to IS NULL THEN 0.0
               WHEN measured_to <= measured_from
                   THEN measured_from >= :start AND measured_from < :end
               ELSE max(0.0, min(:end, measured_to) - max(:start, measured_from))
                    / (measured_to - measured_from)
           END,
           hour >= :start""",
        hourly_from=":first_hour",
    )
    + """
SELECT probe, sum(time_up * frac), sum(time_down * frac),
       sum(CASE WHEN counted THEN checks ELSE 0 END),
       min(CASE WHEN counted THEN latency_min END),
       max(CASE WHEN counted THEN latency_max END),
       sum(CASE WHEN counted THEN checks_down ELSE 0 END)
FROM rows GROUP BY probe
"""
)
# Histograms count like checks: only the hours starting inside the window (from :start).
# They come back joined per probe ("[..],[..]") and are summed in Python (`sum_histograms`):
# one json.loads per probe is several times faster than json_each.
_SLA_HISTOGRAMS = (
    _window_rows("probe, histogram", "probe, histogram", hourly_from=":start")
    + """
SELECT probe, group_concat(histogram) FROM rows GROUP BY probe
"""
)
_SLA_INCIDENTS = f"""
SELECT probe, count(*) FROM transitions
WHERE {_NAMED} AND current = 'down' AND time >= :start AND time < :end
GROUP BY probe
"""
_DAILY_UPTIME = f"""
SELECT probe, day, time_up, time_down FROM rollups_daily
WHERE {_NAMED} AND day >= :first AND day < :stop
"""


_HOURLY_LATENCY = f"""
SELECT probe, hour, latency_sum / latency_count FROM rollups_hourly
WHERE {_NAMED} AND hour >= :first AND hour < :stop
  AND latency_count > 0
ORDER BY probe, hour
"""

_TRANSITIONS_MANY = f"""
SELECT probe, time, previous, current, message FROM transitions
WHERE {_NAMED} AND time >= :since AND time < :until
ORDER BY probe, time, id
"""


def window_params(names: list[str], start: float, end: float) -> dict[str, Any]:
    """The parameters of the SLA queries for [start, end) (end > start)."""
    day_from: float = math.ceil(start / DAY) * DAY
    day_to: float = math.floor(end / DAY) * DAY
    if not day_from < day_to:
        day_from = day_to = end
    return {
        "names": json.dumps(names),
        "start": start,
        "end": end,
        "first_hour": hour_start(start),
        "day_from": day_from,
        "day_to": day_to,
    }


def _state_from_row(row: Sequence[Any]) -> ProbeState | None:
    """A probe_state row as the tracker's state, or None when a value is not one probe
    writes (a status not in Status, a text where a number belongs, a negative count)."""
    name, status, since, ok, fail, last_time, failures, alerts, next_alert, extra = row

    def number(value: Any) -> bool:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(name, str) or status not in _STATUS_VALUES:
        return None
    if not all(v is None or number(v) for v in (since, last_time)):
        return None
    if not all(count(v) for v in (ok, fail, failures, alerts)):
        return None
    if next_alert is not None and not count(next_alert):
        return None
    flapping, flap_times, expiry_warned, degraded = read_alert_state(extra)
    return ProbeState(
        name=name,
        status=Status(status),
        since=since,
        ok_streak=ok,
        fail_streak=fail,
        last_time=last_time,
        outage_failures=failures,
        alerts_sent=alerts,
        next_alert=next_alert,
        flapping=flapping,
        flap_times=flap_times,
        expiry_warned=expiry_warned,
        degraded=degraded,
    )


_STATUS_VALUES = frozenset(s.value for s in Status)


class StoreReader:
    """The store's read-only connection, the lock that serialises its use, and every read."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close the connection (idempotent); every later read raises StoreError."""
        self._closed = True
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """The rows of one statement; StoreError if it fails or the store is closed."""
        with self._lock:
            if self._closed:
                raise StoreError(str(self.path), "store is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise as_store_error(self.path, exc) from exc

    def load_states(self) -> dict[str, ProbeState]:
        """The tracker's last state per probe, to start a new StatusTracker where it stopped.
        A row with a value probe never writes (edited by hand, a damaged record) is skipped
        with a warning naming the probe: that probe starts afresh, the others as they were."""
        rows = self._query(
            "SELECT probe, status, since, ok_streak, fail_streak, last_time, outage_failures,"
            " alerts_sent, next_alert, alert_state FROM probe_state"
        )
        states = {}
        for row in rows:
            state = _state_from_row(row)
            if state is None:
                name = row[0] if isinstance(row[0], str) else repr(row[0])
                log.warning(
                    "store %s: the saved state of probe %s is not valid; it starts as unknown",
                    self.path,
                    json.dumps(name[:200], ensure_ascii=True),
                )
                continue
            states[state.name] = state
        return states

    def outbox_pending(self, now: float | None = None) -> list[OutboxRow]:
        """Pending outbox rows, oldest first; with `now`, only those due by then."""
        return [OutboxRow(*row) for row in self._query(*pending_query(now))]

    def outbox_count(self, state: OutboxState) -> int:
        """The number of outbox rows in `state`."""
        check_state(state)
        ((count,),) = self._query(COUNT_IN_STATE, (state,))
        return int(count)

    def last_results(self, name: str, limit: int) -> list[Result]:
        """The newest `limit` raw results of probe `name`, newest first."""
        if limit <= 0:
            return []
        rows = self._query(
            "SELECT probe, kind, endpoint, status, latency, message, time, details,"
            " http_status, cert_expiry"
            " FROM results WHERE probe = ? ORDER BY time DESC, id DESC LIMIT ?",
            (name, limit),
        )
        return [
            Result(
                name=row[0],
                kind=row[1],
                endpoint=row[2],
                status=Status(row[3]),
                latency=row[4],
                message=row[5],
                time=datetime.fromtimestamp(row[6], UTC),
                details=json.loads(row[7]),
                http_status=row[8],
                cert_expiry=row[9],
            )
            for row in rows
        ]

    def transitions(self, name: str, since: float, until: float) -> list[Transition]:
        """Status changes of probe `name` in [since, until), oldest first."""
        rows = self._query(
            "SELECT probe, time, previous, current, message FROM transitions"
            " WHERE probe = ? AND time >= ? AND time < ? ORDER BY time, id",
            (name, since, until),
        )
        return [Transition(r[0], r[1], Status(r[2]), Status(r[3]), r[4]) for r in rows]

    def transitions_many(
        self, names: Iterable[str], since: float, until: float
    ) -> dict[str, list[Transition]]:
        """`transitions` for every name in one query (an empty list for a name without any)."""
        wanted = list(dict.fromkeys(names))
        out: dict[str, list[Transition]] = {name: [] for name in wanted}
        if not wanted:
            return out
        params = {"names": json.dumps(wanted), "since": since, "until": until}
        for r in self._query(_TRANSITIONS_MANY, params):
            out[r[0]].append(Transition(r[0], r[1], Status(r[2]), Status(r[3]), r[4]))
        return out

    def hourly_latency(
        self, names: Iterable[str], start: float, end: float
    ) -> dict[str, list[tuple[int, float]]]:
        """(hour, mean latency in seconds) of each hour overlapping [start, end) that measured
        a latency, oldest first, for every name: the status page's 24h chart without reading
        (and JSON-decoding) whole hourly rollups."""
        wanted = list(dict.fromkeys(names))
        out: dict[str, list[tuple[int, float]]] = {name: [] for name in wanted}
        if not wanted or not end > start:
            return out
        params = {"names": json.dumps(wanted), "first": hour_start(start), "stop": end}
        for probe, hour, mean in self._query(_HOURLY_LATENCY, params):
            out[probe].append((int(hour), float(mean)))
        return out

    def probe_names(self) -> list[str]:
        """Every probe that has a stored state, sorted."""
        return [r[0] for r in self._query("SELECT probe FROM probe_state ORDER BY probe")]

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]:
        """The hourly rollups of probe `name` for hours overlapping [start, end), in order."""
        rows = self._query(
            "SELECT hour, checks_up, checks_down, time_up, time_down, latency_sum,"
            " latency_count, latency_min, latency_max, histogram, measured_from, measured_to"
            " FROM rollups_hourly"
            " WHERE probe = ? AND hour >= ? AND hour < ? ORDER BY hour",
            (name, hour_start(start), end),
        )
        return [
            HourRollup(
                hour=row[0],
                checks_up=row[1],
                checks_down=row[2],
                time_up=row[3],
                time_down=row[4],
                latency_sum=row[5],
                latency_count=row[6],
                latency_min=row[7],
                latency_max=row[8],
                histogram=tuple(json.loads(row[9])),
                measured_from=row[10],
                measured_to=row[11],
            )
            for row in rows
        ]

    def daily_uptime(
        self, names: Iterable[str], start_day: float, days: int
    ) -> dict[str, list[float | None]]:
        """Per UTC day, from the day holding `start_day` on for `days` days: the percentage of
        measured time that was up (None for a day without measured time), for every name."""
        wanted = list(dict.fromkeys(names))
        days = max(0, int(days))
        out: dict[str, list[float | None]] = {name: [None] * days for name in wanted}
        if not days or not wanted:
            return out
        first = day_start(start_day)
        params = {"names": json.dumps(wanted), "first": first, "stop": first + days * DAY}
        for probe, day, up, down in self._query(_DAILY_UPTIME, params):
            measured = float(up) + float(down)
            if measured > 0:
                out[probe][(int(day) - first) // DAY] = 100.0 * float(up) / measured
        return out

    def sla_many(self, names: Iterable[str], start: float, end: float) -> dict[str, SLAFigures]:
        """SLA figures over [start, end) for every name (zeros for a probe without data).

        The same arithmetic as `probe.store.sla.figures_from_rollups` (edge hours prorated
        by `edge_fraction`, checks counted for hours starting inside the window), done in SQL
        so that a status page over 1,000 probes and 90 days does not pull millions of rows
        into Python: whole UTC days inside the window are read from the daily rollups, only
        the hours of the partial days at both ends from the hourly ones. The three queries
        run in one read transaction: one snapshot.
        """
        wanted = list(dict.fromkeys(names))
        if not end > start:
            return {name: SLAFigures() for name in wanted}
        params = window_params(wanted, start, end)
        with self._lock:
            if self._closed:
                raise StoreError(str(self.path), "store is closed")
            try:
                self._conn.execute("BEGIN")
                try:
                    times = self._conn.execute(_SLA_TIMES, params).fetchall()
                    hists = self._conn.execute(_SLA_HISTOGRAMS, params).fetchall()
                    incidents = self._conn.execute(_SLA_INCIDENTS, params).fetchall()
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise as_store_error(self.path, exc) from exc
        buckets = {probe: sum_histograms(joined) for probe, joined in hists if joined}
        by_probe = {row[0]: row for row in times}
        down_events = dict(incidents)
        figures: dict[str, SLAFigures] = {}
        for name in wanted:
            row = by_probe.get(name)
            hist = buckets.get(name)
            lo = hi = None
            if row is not None:
                lo = None if row[4] is None else row[4] * 1000.0
                hi = None if row[5] is None else row[5] * 1000.0
            figures[name] = SLAFigures(
                up_s=float(row[1]) if row else 0.0,
                down_s=float(row[2]) if row else 0.0,
                checks=int(row[3]) if row else 0,
                checks_down=int(row[6]) if row else 0,
                incidents=int(down_events.get(name, 0)),
                p95_ms=percentile_from_histogram(hist, 0.95, lo=lo, hi=hi) if hist else None,
                p99_ms=percentile_from_histogram(hist, 0.99, lo=lo, hi=hi) if hist else None,
            )
        return figures
