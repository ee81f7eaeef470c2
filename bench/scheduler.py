"""Scheduler benchmark: how many probes one process keeps on time, and what a check costs.

Run:  .venv/bin/python bench/scheduler.py            (full: 5,000 probes at 30 s)
      .venv/bin/python bench/scheduler.py --quick    (a smaller, shorter run)

Targets run in a separate process (bench/targets.py) on 127.0.0.1, so their CPU is not ours.
It prints, each measured in this one run:
  1. httpx's own floor: CPU per GET on one shared AsyncClient without keep-alive (nothing of
     ours), both as a tight loop (50 in flight) and paced at the rate [2] runs at
  2. our CPU per HTTP check and per TCP check: the whole App (scheduler, tracker, SQLite store
     writer) running only that kind, process CPU time (all threads) / checks
  3. the target load: N probes (HTTP and TCP mixed) at a fixed interval for a few intervals:
     checks/s achieved vs due, schedule lag (actual start - due) p50/p99/max, peak RSS,
     store rows written/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import start_targets
from probe.app import App
from probe.assembly import load_config
from probe.core.scheduler import SchedulerStats


def write_config(folder: Path, http: int, tcp: int, interval: str, ports: tuple[int, int]) -> Path:
    http_port, tcp_port = ports
    lines = [
        "settings:",
        f"  probe: {{interval: {interval}, timeout: 5s, concurrency: 256}}",
        "  store: {path: probe.db}",
        "  http: {port: 0}",
        "  log: {level: error}",
    ]
    if http:
        lines.append("http:")
        lines += [
            f"  - {{name: h{i}, url: 'http://127.0.0.1:{http_port}/p{i}'}}" for i in range(http)
        ]
    if tcp:
        lines.append("tcp:")
        lines += [f"  - {{name: t{i}, host: '127.0.0.1:{tcp_port}'}}" for i in range(tcp)]
    path = folder / f"bench-{http}-{tcp}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def httpx_floor(port: int, requests: int, concurrency: int) -> float:
    """CPU seconds per GET for httpx alone: shared client, keep-alive off, like our probers."""
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            response = await client.get(f"http://127.0.0.1:{port}/p{i}")
            await response.aread()

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up included below
    await client.aclose()
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    queue = list(range(requests))
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu0
    await client.aclose()
    return cpu / requests


async def httpx_paced_floor(port: int, probes: int, interval: float, seconds: float) -> float:
    """CPU seconds per GET for httpx alone, paced like our probes: `probes` loops each doing a
    GET every `interval`, first ones spread over the first interval. Pacing costs CPU of its
    own (the loop wakes per request instead of once per many), so this is the like-for-like
    floor for our checks; the unpaced one above is the best case."""
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    done = 0
    failed: list[str] = []

    async def one(i: int) -> None:
        nonlocal done
        due = start + interval * i / probes
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() - start >= seconds:
                return
            try:
                response = await client.get(f"http://127.0.0.1:{port}/p{i}")
                await response.aread()
                done += 1
            except httpx.HTTPError as exc:
                failed.append(type(exc).__name__)
            due += interval

    cpu0 = time.process_time()
    await asyncio.gather(*(one(i) for i in range(probes)))
    cpu = time.process_time() - cpu0
    await client.aclose()
    if failed:
        print(f"    (paced floor: {len(failed)} GETs failed: {sorted(set(failed))})")
    return cpu / max(done, 1)


async def run_app(
    config_path: Path, seconds: float
) -> tuple[SchedulerStats, float, float, int, float]:
    """Run the real App for `seconds`; returns stats, CPU s, wall s until the stop was asked
    for, rows written, and how long the stop took (in-flight checks, the final status page)."""
    config = load_config(config_path)
    stats = SchedulerStats(keep_lag=True)
    app = App(config, stats=stats)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    asked = 0.0

    async def stop_later() -> None:
        nonlocal asked
        await asyncio.sleep(seconds)
        asked = time.perf_counter()
        app.request_stop()

    stopper = asyncio.create_task(stop_later())
    await app.run()
    await stopper
    rows = app.store.rows_written if app.store is not None else 0
    ended = time.perf_counter()
    return stats, time.process_time() - cpu0, asked - wall0, rows, ended - asked


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--probes", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--intervals", type=float, default=3.0, help="how many intervals to run")
    args = parser.parse_args()
    if args.quick:
        args.probes, args.interval, args.intervals = 1000, 10.0, 2.0

    proc, http_port, tcp_port = start_targets()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
            python = sys.version.split()[0]
            print(f"machine: {os.cpu_count()} cores, Python {python}, httpx {httpx.__version__}")

            floor = await httpx_floor(http_port, 3000, 50)
            print(f"\n[1] httpx floor: {floor * 1e3:.3f} ms CPU per GET (3,000 GETs, 50 in flight)")
            paced = await httpx_paced_floor(http_port, 1000, 5.0, 20.0)
            print(
                f"    httpx paced floor: {paced * 1e3:.3f} ms CPU per GET "
                "(1,000 loops each GET every 5s for 20s, like [2])"
            )

            per_kind = {}
            for kind, (h, t) in {"http": (1000, 0), "tcp": (0, 1000)}.items():
                cfg = write_config(folder, h, t, "5s", (http_port, tcp_port))
                stats, cpu, wall, _, _ = await run_app(cfg, 20.0)
                per_kind[kind] = cpu / max(stats.checks, 1)
                print(
                    f"[2] our {kind.upper()} check: {per_kind[kind] * 1e3:.3f} ms CPU per check "
                    f"({stats.checks} checks of 1,000 probes at 5s in {wall:.0f}s, whole process)"
                )
            print(
                f"    our HTTP check vs httpx floor: {per_kind['http'] / floor:.2f}x, "
                f"vs paced floor: {per_kind['http'] / paced:.2f}x (target <= 1.25x)"
            )

            http_n = args.probes * 4 // 5
            tcp_n = args.probes - http_n
            cfg = write_config(folder, http_n, tcp_n, f"{args.interval}s", (http_port, tcp_port))
            seconds = args.interval * args.intervals
            stats, cpu, wall, rows, stopping = await run_app(cfg, seconds)
            due = args.probes / args.interval
            lags = stats.lag_samples
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"\n[3] {args.probes} probes ({http_n} HTTP, {tcp_n} TCP) every {args.interval:g}s "
                f"for {wall:.0f}s:"
            )
            print(f"    checks/s achieved {stats.checks / wall:.1f} vs due {due:.1f}")
            print(
                f"    schedule lag p50 {pct(lags, 0.5) * 1e3:.1f} ms, "
                f"p99 {pct(lags, 0.99) * 1e3:.1f} ms, "
                f"max {max(lags, default=float('nan')) * 1e3:.1f} ms (target p99 < 100 ms)"
            )
            print(f"    skipped ticks {stats.skipped}, stragglers {stats.stragglers}")
            print(f"    stop took {stopping:.1f} s (in-flight checks, the final status pages)")
            total = wall + stopping
            print(
                f"    CPU {cpu:.1f}s over {total:.0f}s wall with the stop"
                f" ({100 * cpu / total:.0f}% of one core)"
            )
            print(f"    peak RSS {rss_mb:.0f} MB (target < 300 MB; whole run, all phases)")
            print(f"    store rows written {rows / wall:.0f}/s ({rows} rows)")
            if lags:
                print(f"    mean lag {statistics.fmean(lags) * 1e3:.1f} ms over {len(lags)} checks")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
