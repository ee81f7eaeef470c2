"""A store holding N probes' D days of history, written straight into SQLite for benchmarks
that time reading: filling it through the writer would take most of an hour at 1,000 x 90.

What it holds, per probe `probe-NNNN`:
  rollups_hourly   one row per hour, 60 checks, mean 100 ms, a latency histogram; 1% of
                   hours have 10 minutes down (staggered across probes)
  rollups_daily    the sums per UTC day, as the writer keeps them alongside (schema 3)
  transitions      a down and an up transition for each of those outages
  results          the last result (every 50th probe down, the rest up)
  probe_state      the tracker's state after it
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from probe.store import Store
from probe.store.sla import BUCKETS_MS, HOUR, day_start, hour_start

COLUMNS = (
    "probe, {key}, checks_up, checks_down, time_up, time_down, latency_sum, latency_count,"
    " latency_min, latency_max, histogram, measured_from, measured_to"
)
OUTAGE_S = 600.0


def arguments(doc: str, *, repeat: int) -> argparse.ArgumentParser:
    """The options every store benchmark takes: --probes, --days, --repeat."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser


def probe_name(p: int) -> str:
    return f"probe-{p:04d}"


def fill(path: Path, probes: int, days: int, now: float) -> tuple[int, int]:
    """Fill a new store at `path`; returns (hourly rows, daily rows)."""
    Store.open(path).close_sync()  # the schema, by the store itself
    conn = sqlite3.connect(path)
    first = hour_start(now) - days * 24 * HOUR
    hist = [0] * len(BUCKETS_MS)
    hist[6], hist[7] = 50, 10
    histogram = json.dumps(hist)
    hourly_sql = (
        f"INSERT INTO rollups_hourly ({COLUMNS.format(key='hour')})"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    daily_sql = (
        f"INSERT INTO rollups_daily ({COLUMNS.format(key='day')})"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    hourly_rows = daily_rows = 0
    with conn:
        for p in range(probes):
            name = probe_name(p)
            batch = []
            changes = []
            per_day: dict[int, list[Any]] = {}
            for h in range(days * 24 + 1):
                hour = first + h * HOUR
                down = OUTAGE_S if (p + h) % 100 == 0 else 0.0
                if down:
                    changes.append((name, hour + 60.0, "up", "down", "connection refused"))
                    changes.append((name, hour + 60.0 + down, "down", "up", "status 200"))
                measured = (float(hour), float(hour + HOUR))
                batch.append(
                    (name, hour, 60, 0, HOUR - down, down, 6.0, 60, 0.05, 0.2, histogram, *measured)
                )
                d = per_day.get(day_start(hour))
                if d is None:
                    d = per_day[day_start(hour)] = [0, 0, 0.0, 0.0, 0.0, 0, [0] * len(hist)]
                    d += [float(hour), 0.0]
                d[0] += 60
                d[2] += HOUR - down
                d[3] += down
                d[4] += 6.0
                d[5] += 60
                d[6] = [a + b for a, b in zip(d[6], hist, strict=True)]
                d[8] = float(hour + HOUR)
            conn.executemany(hourly_sql, batch)
            daily = [
                (name, day, *d[:6], 0.05, 0.2, json.dumps(d[6]), d[7], d[8])
                for day, d in per_day.items()
            ]
            conn.executemany(daily_sql, daily)
            conn.executemany(
                "INSERT INTO transitions (probe, time, previous, current, message)"
                " VALUES (?,?,?,?,?)",
                [c for c in changes if c[1] < now],
            )
            _last_result(conn, p, now)
            hourly_rows += len(batch)
            daily_rows += len(daily)
    conn.close()
    return hourly_rows, daily_rows


def fill_and_say(path: Path, probes: int, days: int, now: float) -> None:
    """`fill`, then one line saying what the store holds and how long filling took."""
    began = time.perf_counter()
    hourly, daily = fill(path, probes, days, now)
    print(
        f"{probes} probes, {days} days: {hourly:,} hourly and {daily:,} daily rollups"
        f" (filled in {time.perf_counter() - began:.1f} s), SQLite {sqlite3.sqlite_version}"
    )


def _last_result(conn: sqlite3.Connection, p: int, now: float) -> None:
    down = p % 50 == 0
    status = "down" if down else "up"
    conn.execute(
        "INSERT INTO results (probe, kind, endpoint, time, status, latency, message, details)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            probe_name(p),
            "http",
            f"https://service-{p:04d}.example.test/health",
            now - 5.0,
            status,
            None if down else 0.1,
            "connection refused" if down else "status 200",
            json.dumps({} if down else {"status_code": 200}),
        ),
    )
    conn.execute(
        "INSERT INTO probe_state (probe, status, since, ok_streak, fail_streak, last_time,"
        " outage_failures, alerts_sent, next_alert, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            *(probe_name(p), status, now - 3600.0, 0 if down else 60, 60 if down else 0),
            *(now - 5.0, 60 if down else 0, 1 if down else 0, None, now),
        ),
    )
