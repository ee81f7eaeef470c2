"""What the Prometheus metrics cost with 1,000 probes and 90 days of history in the store.

Run:  .venv/bin/python bench/metrics.py [--probes N] [--days D] [--repeat R]

A fresh store in a temporary directory gets D days of history for N probes, written straight
into SQLite by bench/history.py (hourly and daily rollups, transitions, the last results),
so that only reading is timed. Then, each the
median of R runs:
  SLA       the one SLACache computation (24h/7d/30d/90d and all, every probe) that the
            metrics share with the status page and the API. It runs in a worker thread, as
            often as readers want it (probe.store.sla_cache.refresh_pause), never per scrape.
  scrape    GET /metrics' work over the registry (every probe fed one result through the
            tracker, SLA ratios from the cache, notification counters present):
            probe.metrics.exposition (the fast path, what the web layer serves) and plain
            prometheus_client.generate_latest (the same samples, formatted by it).
  observe   StatusTracker.observe per result: all that App._on_result pays per check for
            every reader of "now" (metrics, page, API), since none keeps a copy.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from history import arguments, fill_and_say  # bench/history.py
from prometheus_client import CollectorRegistry, generate_latest

from probe.core.result import Result, Status
from probe.core.tracker import Policy, StatusTracker
from probe.metrics import SeriesLabels, exposition, probe_metrics
from probe.notify.metrics import notify_metrics
from probe.store import Store
from probe.store.sla_cache import SLACache


def median_time(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = arguments(__doc__, repeat=5)
    args = parser.parse_args()
    now = time.time()
    infos = [
        SeriesLabels(
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
        fill_and_say(path, args.probes, args.days, now)
        registry = CollectorRegistry()
        notify_metrics(registry).count("slack", "sent")
        metrics = probe_metrics(registry, infos)
        tracker = StatusTracker()
        store = Store.open(path)
        try:
            sla = SLACache(store, [info.name for info in infos], clock=lambda: now)

            def compute() -> None:
                sla.invalidate()
                asyncio.run(sla.figures())

            refresh = median_time(compute, args.repeat)
        finally:
            store.close_sync()
        metrics.attach(tracker, sla)

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
                http_status=200,
                cert_expiry=1.8e9,
            )
            for p, info in enumerate(infos)
        ]
        policy = Policy(interval=60)
        began = time.perf_counter()
        for _ in range(10):
            for r in results:
                tracker.observe(r, policy)
        record = (time.perf_counter() - began) / (10 * len(results))
        scrape = median_time(lambda: exposition(registry), args.repeat)
        scrape_plain = median_time(lambda: generate_latest(registry), args.repeat)
        size = len(exposition(registry))
    print(
        f"SLA      {refresh * 1000:8.1f} ms  (5 windows x {args.probes} probes, in a thread;"
        " shared with the page and the API)"
    )
    print(f"scrape   {scrape * 1000:8.1f} ms  probe.metrics.exposition ({size:,} bytes)")
    print(f"scrape   {scrape_plain * 1000:8.1f} ms  prometheus_client.generate_latest")
    print(f"observe  {record * 1e6:8.2f} us per result (StatusTracker.observe)")


if __name__ == "__main__":
    main()
