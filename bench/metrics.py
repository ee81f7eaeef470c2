"""What the Prometheus metrics cost with 1,000 probes and 90 days of history in the store.

Run:  .venv/bin/python bench/metrics.py [--probes N] [--days D] [--repeat R]

A fresh store in a temporary directory gets D days of hourly rollups for N probes (the rows
90 days of checks leave: one per probe and hour, each with a latency histogram; 1% of hours
partly down), and the daily rollups summing them, written straight into SQLite, so that only
reading is timed. Then, each the
median of R runs:
  refresh   ProbeMetrics.refresh_sla: the four SLA windows (24h/7d/30d/90d) of every probe
            from the store. It runs in a worker thread every settings.http.refresh, never on
            the event loop or per scrape, but it holds the store's read lock meanwhile.
  scrape    GET /metrics' work over the registry (every probe fed one result, SLA ratios
            loaded, notification counters present): probe.metrics.exposition (the fast path,
            what the web layer should serve) and plain prometheus_client.generate_latest
            (the same samples, formatted by prometheus-client).
  record    ProbeMetrics.record per result: what App._on_result pays per check.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from probe.core.result import Result, Status
from probe.metrics import ProbeInfo, exposition, probe_metrics
from probe.notify.metrics import notify_metrics
from probe.store import Store
from probe.store.sla import BUCKETS_MS, HOUR, day_start, hour_start


def fill(path: Path, probes: int, days: int, now: float) -> int:
    Store.open(path).close_sync()  # schema
    conn = sqlite3.connect(path)
    first = hour_start(now) - days * 24 * HOUR
    hist = [0] * len(BUCKETS_MS)
    hist[6], hist[7] = 50, 10
    histogram = json.dumps(hist)
    rows = 0
    with conn:
        for p in range(probes):
            name = f"probe-{p:04d}"
            batch = []
            for h in range(days * 24 + 1):
                hour = first + h * HOUR
                down = 600.0 if (p + h) % 100 == 0 else 0.0
                measured = (float(hour), float(hour + HOUR))
                batch.append(
                    (name, hour, 60, 0, HOUR - down, down, 6.0, 60, 0.05, 0.2, histogram, *measured)
                )
            conn.executemany(
                "INSERT INTO rollups_hourly (probe, hour, checks_up, checks_down, time_up,"
                " time_down, latency_sum, latency_count, latency_min, latency_max, histogram,"
                " measured_from, measured_to) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                batch,
            )
            rows += len(batch)
            # The daily rows the writer keeps alongside (schema 3): the sums per UTC day.
            per_day: dict[int, list[tuple[Any, ...]]] = {}
            for row in batch:
                per_day.setdefault(day_start(row[1]), []).append(row)
            conn.executemany(
                "INSERT INTO rollups_daily (probe, day, checks_up, checks_down, time_up,"
                " time_down, latency_sum, latency_count, latency_min, latency_max, histogram,"
                " measured_from, measured_to) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        name,
                        day,
                        *(sum(r[i] for r in hours) for i in range(2, 8)),
                        0.05,
                        0.2,
                        json.dumps([c * len(hours) for c in hist]),
                        hours[0][11],
                        hours[-1][12],
                    )
                    for day, hours in per_day.items()
                ],
            )
    conn.close()
    return rows


def median_time(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = time.time()
    infos = [
        ProbeInfo(
            f"probe-{p:04d}",
            "http",
            f"https://service-{p:04d}.example.test/health",
            {"group": f"g{p % 10}", "team": f"t{p % 7}"} if p % 2 else {"env": "prod"},
        )
        for p in range(args.probes)
    ]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        began = time.perf_counter()
        rows = fill(path, args.probes, args.days, now)
        print(
            f"{args.probes} probes, {args.days} days, {rows:,} hourly rollups"
            f" (filled in {time.perf_counter() - began:.1f} s), SQLite {sqlite3.sqlite_version}"
        )
        registry = CollectorRegistry()
        notify_metrics(registry).count("slack", "sent")
        metrics = probe_metrics(registry, infos)
        store = Store.open(path)
        try:
            refresh = median_time(lambda: metrics.refresh_sla(store, now), args.repeat)
        finally:
            store.close_sync()

        results = [
            Result(
                name=info.name,
                kind="http",
                endpoint=info.endpoint,
                status=Status.UP if p % 50 else Status.DOWN,
                latency=0.05 + p / 10000,
                message="status 200",
                time=datetime.fromtimestamp(now, UTC),
                details={"status_code": 200, "not_after": "2027-01-01T00:00:00Z"},
            )
            for p, info in enumerate(infos)
        ]
        began = time.perf_counter()
        for _ in range(10):
            for r in results:
                metrics.record(r)
        record = (time.perf_counter() - began) / (10 * len(results))
        scrape = median_time(lambda: exposition(registry), args.repeat)
        scrape_plain = median_time(lambda: generate_latest(registry), args.repeat)
        size = len(exposition(registry))
    print(
        f"refresh  {refresh * 1000:8.1f} ms  (4 windows x {args.probes} probes, in a thread,"
        " every settings.http.refresh)"
    )
    print(f"scrape   {scrape * 1000:8.1f} ms  probe.metrics.exposition ({size:,} bytes)")
    print(f"scrape   {scrape_plain * 1000:8.1f} ms  prometheus_client.generate_latest")
    print(f"record   {record * 1e6:8.2f} us per result")


if __name__ == "__main__":
    main()
