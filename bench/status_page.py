"""What the status page, /api/v1/sla and /metrics cost with 1,000 probes and 90 days of history.

Run:  .venv/bin/python bench/status_page.py [--probes N] [--days D] [--repeat R]

A fresh store gets D days of history for N probes (bench/history.py: hourly and daily
rollups, transitions, last results and states), then the real web server (aiohttp, as
`probe run` starts it) is asked over loopback HTTP by httpx in a child process (so that the
client's work is not counted as the server's):

  seeded         the App's start: the tracker read from the store (states, last results)
  SLA cache      the one SLA computation (5 windows for every probe) that the page, the API
                 and /metrics share: what the App's background task repeats
                 (probe.store.sla_cache.refresh_pause); no request waits for it
  GET /          a page of 100 probes: the first time (the page's details read from the
                 store), then cached (the median of R), plain and gzipped; also page 5
                 and ?status=down (sizes are bytes on the wire)
  /api/v1/sla    all N probes in one answer (?sz=N), the median of R
  /metrics       the Prometheus exposition (every probe's last stored result, as the
                 seeded tracker holds it; SLA ratios from the same cache)
  static files   write_status_files: every page of 100 to a temporary directory
  stall          the longest the event loop was late (a 5 ms ticker) during each of them

Targets (issue 5): each request under 200 ms, a page under 1 MB.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from history import arguments, fill_and_say, probe_name  # bench/history.py
from prometheus_client import CollectorRegistry

from probe.core.tracker import StatusTracker
from probe.metrics import SeriesLabels, probe_metrics
from probe.store import Store
from probe.store.sla_cache import SLACache
from probe.web.data import ConfiguredProbe, StatusSource, read_now
from probe.web.render import StatusPage, write_status_files
from probe.web.server import create_app, start_server


class LoopLag:
    """The longest a 5 ms sleep overslept while running: how long the loop was blocked."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - began - 0.005)

    def take(self) -> str:
        """The worst lag since the last take, as a column."""
        worst, self.worst = self.worst, 0.0
        return f"  stall {worst * 1000:5.1f} ms"

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


# The client runs in its own process: its decoding would otherwise count as the server's
# stall. It prints the median time of `times` GETs (ms) and the bytes on the wire.
_CLIENT = """
import statistics, sys, time, httpx
url, times, encoding = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with httpx.Client(timeout=60, headers={"Accept-Encoding": encoding}) as client:
    client.get(httpx.URL(url).copy_with(path="/healthz", query=None))  # connect first
    took = []
    for _ in range(times):
        began = time.perf_counter()
        with client.stream("GET", url) as response:
            response.raise_for_status()
            wire = sum(len(chunk) for chunk in response.iter_raw())
        took.append((time.perf_counter() - began) * 1000.0)
print(statistics.median(took), wire)
"""


async def client_get(url: str, times: int, encoding: str) -> tuple[float, int]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, url, str(times), encoding, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"client failed for {url}")
    ms, size = out.split()
    return float(ms), int(size)


async def timed(fn: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    began = time.perf_counter()
    value = await fn()
    return (time.perf_counter() - began) * 1000.0, value


def infos(probes: int) -> list[ConfiguredProbe]:
    return [
        ConfiguredProbe(
            probe_name(p),
            "http",
            f"https://service-{p:04d}.example.test/health",
            {"group": f"team-{p % 10}"} if p % 2 else {},
        )
        for p in range(probes)
    ]


def metrics_registry(
    probes: list[ConfiguredProbe], tracker: StatusTracker, sla: SLACache
) -> CollectorRegistry:
    """The App's metrics at start: each probe's last stored result (through the tracker, as
    seeded) and the SLA ratios of the shared cache."""
    registry = CollectorRegistry()
    metrics = probe_metrics(
        registry, [SeriesLabels(p.name, p.kind, p.endpoint, dict(p.labels)) for p in probes]
    )
    metrics.attach(tracker, sla)
    return registry


async def run(path: Path, probes: int, repeat: int, now: float) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    store = Store.open(path)
    configured = infos(probes)
    # As the App wires them: the tracker (seeded from the store) owns "now", one SLA cache.
    names = [p.name for p in configured]
    began = time.perf_counter()
    tracker = await asyncio.to_thread(read_now, store, names)
    seeded_ms = (time.perf_counter() - began) * 1000.0
    sla = SLACache(store, names, max_age=3600)
    source = StatusSource(store, configured, live=tracker, sla=sla)
    page = StatusPage(source, title="Bench")
    registry = metrics_registry(configured, tracker, sla)
    runner, port = await start_server(
        create_app(source, registry=registry, page=page), "127.0.0.1", 0
    )
    base = f"http://127.0.0.1:{port}"
    try:
        rows.append(("tracker seeded from the store (at start)", f"{seeded_ms:8.1f} ms"))
        with LoopLag() as lag:
            ms, _ = await timed(source.summaries)
            rows.append(("SLA cache (in the background)", f"{ms:8.1f} ms"))
            lag.take()
            cases = [
                ("GET / page 1 of 100, first (reads details)", "/", 1, "identity"),
                ("GET / page 1 of 100, cached", "/", repeat, "identity"),
                ("GET / page 1, gzip", "/", repeat, "gzip"),
                ("GET /?pg=5, first", "/?pg=5", 1, "identity"),
                ("GET /?status=down", "/?status=down", repeat, "identity"),
                (f"GET /api/v1/sla, all {probes}", f"/api/v1/sla?sz={probes}", repeat, "identity"),
                ("GET /metrics", "/metrics", repeat, "identity"),
            ]
            for label, url, times, encoding in cases:
                ms, size = await client_get(base + url, times, encoding)
                rows.append((label, f"{ms:8.1f} ms{lag.take()}  {size:,} B"))
            with tempfile.TemporaryDirectory() as site:
                ms, written = await timed(
                    lambda: write_status_files(page, Path(site) / "status.html")
                )
                assert isinstance(written, list)
                rows.append((f"static files ({len(written)} pages)", f"{ms:8.1f} ms{lag.take()}"))
    finally:
        await runner.cleanup()
        await store.close()
    return rows


def main() -> None:
    parser = arguments(__doc__, repeat=5)
    args = parser.parse_args()
    now = time.time()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        fill_and_say(path, args.probes, args.days, now)
        rows = asyncio.run(run(path, args.probes, args.repeat, now))
    for label, figure in rows:
        print(f"{label:46} {figure}")


if __name__ == "__main__":
    main()
