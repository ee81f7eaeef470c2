"""Capacity: does `probe run` keep every check on time at a given rate, and at what cost?

Run:  .venv/bin/python bench/capacity.py --rate 2000 [--interval 10] [--workers 2]
          [--seconds 40] [--tcp-share 0] [--web]
e.g.  the issue's lines:
      bench/capacity.py --rate 2000 --workers 2                       (no collapse)
      bench/capacity.py --rate 833 --interval 60 --tcp-share 20 --workers 2 --web --seconds 150
                                                   (50,000 probes, 80% HTTP, 20% TCP, page on)

The real App runs in this process (as `probe run` does, `settings.probe.workers` included)
over rate x interval probes, checking a local nginx (Debian's nginx-light, when installed;
otherwise bench/targets.py's Python server), loopback only. From the second interval on (the
first spreads the probes' first checks) it counts:
  checks done vs due     every due check runs: the ratio should be 1.00 (+- 0.01)
  schedule lag           actual start - due time, p50 / p99 / max, every process's checks
  CPU per check          this process plus its worker processes (user + system), the target
                         server not counted
  peak RSS               this process, and the largest worker
  store                  results the store holds for the run vs checks done (kept up when
                         equal), rows written/s, and how long the final flush took
  web (--web)            a separate process asks for the status page and /api/v1/sla every
                         second while the probes run: p50 / p99 / max per endpoint
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import free_port, start_targets
from probe.app import App
from probe.assembly import load_config
from probe.core.scheduler import SchedulerStats

TICKS = os.sysconf("SC_CLK_TCK")

POLLER = """
import http.client, json, sys, time
port, seconds, paths = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
times = {path: [] for path in paths}
end = time.monotonic() + seconds
while time.monotonic() < end:
    for path in paths:
        began = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                times[path].append(time.perf_counter() - began)
        except OSError:
            pass
    time.sleep(1.0)
print(json.dumps(times))
"""


def start_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """nginx answering `200 ok` on a free port, or None when nginx is not installed."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        return None
    port = free_port()
    (folder / "nginx.conf").write_text(
        f"worker_processes 1; pid {folder}/nginx.pid; error_log {folder}/nginx.err;"
        " daemon off;\nevents { worker_connections 16384; }\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:{port} backlog=4096;"
        ' location / { return 200 "ok\\n"; } } }\n'
    )
    process = subprocess.Popen(
        [nginx, "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    return None


def write_config(
    folder: Path, probes: int, tcp_share: int, interval: float, workers: int, port: int
) -> Path:
    tcp = probes * tcp_share // 100
    http = probes - tcp
    lines = [
        "settings:",
        f"  probe: {{interval: {interval:g}s, timeout: 5s, workers: {workers}}}",
        f"  store: {{path: {folder}/probe.db}}",
        f"  http: {{port: {free_port()}}}",
        "  log: {level: error}",
    ]
    if http:
        lines.append("http:")
        lines += [f"  - {{name: h{i}, url: 'http://127.0.0.1:{port}/p{i}'}}" for i in range(http)]
    if tcp:
        lines.append("tcp:")
        lines += [f"  - {{name: t{i}, host: '127.0.0.1:{port}'}}" for i in range(tcp)]
    path = folder / "capacity.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_pids() -> list[int]:
    """This process's children that are probe workers."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"probe.shards" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                continue
    return pids


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stored_between(store: Path, start: float, end: float) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM results WHERE time >= ? AND time < ?", (start, end)
        ).fetchone()
    return int(row[0])


async def measure(args: argparse.Namespace, folder: Path, port: int) -> None:
    probes = round(args.rate * args.interval)
    config = load_config(
        write_config(folder, probes, args.tcp_share, args.interval, args.workers, port)
    )
    stats = SchedulerStats(keep_lag=True)
    app = App(config, stats=stats)
    run = asyncio.create_task(app.run())
    loop = asyncio.get_running_loop()
    await asyncio.sleep(args.interval)  # the first interval spreads the first checks
    poller = None
    if args.web:
        while app.http_port is None:
            await asyncio.sleep(0.1)
        paths = ["/", "/api/v1/sla"]
        poller = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            POLLER,
            str(app.http_port),
            str(args.seconds),
            *paths,
            stdout=asyncio.subprocess.PIPE,
        )
    pids = worker_pids()
    checks0, lags0 = stats.checks, len(stats.lag_samples)
    cpu0 = time.process_time() + sum(cpu_of(pid) for pid in pids)
    wall0, began = loop.time(), time.time()
    worker_rss = 0.0
    while loop.time() - wall0 < args.seconds:
        await asyncio.sleep(1.0)
        worker_rss = max([worker_rss, *(rss_mb(pid) for pid in pids)])
    wall = loop.time() - wall0
    ended = time.time()
    cpu = time.process_time() + sum(cpu_of(pid) for pid in pids) - cpu0
    checks = stats.checks - checks0
    lags = stats.lag_samples[lags0:]
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    web = None
    if poller is not None:
        out, _ = await poller.communicate()
        import json

        web = json.loads(out)
    asked = loop.time()
    app.request_stop()
    await run
    stopping = loop.time() - asked
    stored = stored_between(folder / "probe.db", began, ended)
    rows = app.store.rows_written if app.store is not None else 0
    due = args.rate * wall
    kinds = f"{100 - args.tcp_share}% HTTP, {args.tcp_share}% TCP"
    print(
        f"{probes} probes ({kinds}) every {args.interval:g}s = {args.rate:g} checks/s due; "
        f"workers {args.workers}; measured {wall:.0f}s after the first interval"
    )
    print(f"  checks done / due    {checks} / {due:.0f} = {checks / due:.3f}")
    p50, p99 = pct(lags, 0.5) * 1e3, pct(lags, 0.99) * 1e3
    print(
        f"  schedule lag         p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
        f" max {max(lags, default=float('nan')) * 1e3:.1f} ms ({len(lags)} checks)"
    )
    print(
        f"  CPU                  {cpu / max(checks, 1) * 1e6:.0f} us per check, "
        f"{100 * cpu / wall:.0f}% of one core (this process + {len(pids)} worker(s))"
    )
    print(
        f"  peak RSS             {main_rss:.0f} MB main process, {worker_rss:.0f} MB largest worker"
    )
    print(
        f"  store                {stored} results stored for {checks} checks done in the window;"
        f" {rows / (wall + args.interval):.0f} rows/s; final flush and stop {stopping:.1f}s"
    )
    if web is not None:
        for path, times in web.items():
            w50, w99 = pct(times, 0.5) * 1e3, pct(times, 0.99) * 1e3
            print(
                f"  web {path:<16} p50 {w50:.0f} ms, p99 {w99:.0f} ms,"
                f" max {max(times, default=float('nan')) * 1e3:.0f} ms ({len(times)} requests)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="checks per second due")
    parser.add_argument("--interval", type=float, default=10.0, help="every probe's interval (s)")
    parser.add_argument("--workers", type=int, default=1, help="settings.probe.workers")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured after 1 interval")
    parser.add_argument("--tcp-share", type=int, default=0, help="percent of TCP probes")
    parser.add_argument("--web", action="store_true", help="poll the page and /api/v1/sla")
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nginx = start_nginx(folder)
        if nginx is not None:
            target, port = nginx
            print("target: nginx (one worker process)")
        else:
            target, port, _ = start_targets()  # type: ignore[assignment]
            print("target: bench/targets.py (nginx is not installed)")
        try:
            asyncio.run(measure(args, folder, port))
        finally:
            target.terminate()
            target.wait(10)


if __name__ == "__main__":
    main()
