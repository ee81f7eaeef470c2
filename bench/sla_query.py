"""What the SLA reads cost with 1,000 probes and 90 days of history in the store.

Run:  .venv/bin/python bench/sla_query.py [--probes N] [--days D] [--repeat R] [--no-before]

A fresh store in a temporary directory gets D days of rollups for N probes, written straight
into SQLite by bench/history.py (one hourly row per probe and hour with a latency histogram,
1% of hours partly down, and the daily rows the writer keeps alongside). Then, each the
median of R runs over all N probes:
  sla_many      24h, 7d, 30d, 90d and all (what the status page and API refresh)
  daily_uptime  90 days of per-day uptime (the status page's bars)
"after" reads whole UTC days from rollups_daily and the edge hours from rollups_hourly;
"before" forces every hour to come from rollups_hourly, as the store did before schema 3.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from history import arguments, fill_and_say  # bench/history.py

from probe.store import Store, queries
from probe.store.sla import DAY

WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "90d": 90 * 86400.0}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000.0


def hourly_only(names: list[str], start: float, end: float) -> dict[str, Any]:
    params = _real_params(names, start, end)
    params["day_from"] = params["day_to"] = end
    return params


_real_params = queries.window_params


def run(store: Store, names: list[str], now: float, repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    windows = {**WINDOWS, "all": now}
    for label, length in windows.items():
        out[f"sla_many {label}"] = median_ms(
            lambda length=length: store.sla_many(names, now - length, now), repeat
        )
    out["daily_uptime 90 days"] = median_ms(
        lambda: store.daily_uptime(names, now - 89 * DAY, 90), repeat
    )
    return out


def main() -> None:
    parser = arguments(__doc__, repeat=3)
    parser.add_argument("--no-before", action="store_true", help="skip the hourly-only run")
    args = parser.parse_args()
    now = time.time()
    names = [f"probe-{p:04d}" for p in range(args.probes)]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        fill_and_say(path, args.probes, args.days, now)
        store = Store.open(path)
        try:
            after = run(store, names, now, args.repeat)
            before: dict[str, float] = {}
            if not args.no_before:
                queries.window_params = hourly_only  # type: ignore[assignment]
                try:
                    before = run(store, names, now, 1)
                finally:
                    queries.window_params = _real_params
        finally:
            store.close_sync()
    print(f"{'':28} {'after':>10} {'before':>10}  (ms, {args.probes} probes)")
    for label, ms in after.items():
        old = f"{before[label]:10.1f}" if label in before else f"{'-':>10}"
        print(f"{label:28} {ms:10.1f} {old}")
    print("before: every hour from rollups_hourly (one run; daily_uptime reads only daily rows)")


if __name__ == "__main__":
    main()
