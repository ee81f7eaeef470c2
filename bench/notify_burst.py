"""Alert burst benchmark: 1,000 probes go down at once. How long until every notification is
delivered to a local webhook, and does probing keep its schedule meanwhile?

Run:  .venv/bin/python bench/notify_burst.py             (1,000 probes)
      .venv/bin/python bench/notify_burst.py --probes 300 --interval 1   (a smaller run)

The webhook receiver runs in another process (this file with `receiver`), on 127.0.0.1: an
aiohttp server answering 200, recording when each notification arrived. The TCP target the
probes check is bench/targets.py's, also in its own process. Loopback only.

It prints:
  [1] the dispatcher alone: 1,000 notifications queued in one go (each written to the SQLite
      outbox before it is sent, 32 sends at a time, keep-alive on): time until all are
      delivered, and the rate;
  [2] the whole App: 1,000 TCP probes up, then their target is killed, so every probe goes down
      within one interval: time from the kill until every down notification was delivered,
      the delay from each alert decision to its arrival at the webhook (p50/p99/max), and the
      schedule lag of the checks during the burst (SchedulerStats; core target p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.targets import free_port, start_targets
from probe.app import App, notify_client
from probe.assembly import load_config
from probe.config import Settings
from probe.core.scheduler import SchedulerStats
from probe.notify.base import Event, Notification, NotifyContext
from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics
from probe.notify.templates import Templates
from probe.notify.webhook import WebhookNotifier, WebhookSpec
from probe.store import Store

# --------------------------------------------------------------------------- receiver process


async def _receive(port: int) -> None:
    from aiohttp import web

    arrivals: list[tuple[float, float]] = []  # (arrived, notification time)

    async def hook(request: web.Request) -> web.Response:
        doc = await request.json()
        arrivals.append((time.time(), float(doc.get("timestamp") or 0.0)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps(arrivals), flush=True)
    await runner.cleanup()


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "receiver", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, f"http://127.0.0.1:{port}/hook"


def stop_receiver(proc: subprocess.Popen[str]) -> list[tuple[float, float]]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return [tuple(x) for x in json.loads(out.strip().splitlines()[-1])]


# --------------------------------------------------------------------------- measurements


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def dispatcher_alone(url: str, count: int, folder: Path) -> tuple[float, float, int]:
    store = Store.open(folder / "alone.db")
    await store.start()
    metrics = NotifyMetrics(CollectorRegistry())
    async with notify_client(Settings()) as client:
        spec = WebhookSpec.model_validate({"name": "hook", "url": url})
        context = NotifyContext(http=client, templates=Templates(), timeout=10.0, dry=False)
        dispatcher = Dispatcher([WebhookNotifier(spec, context)], store, metrics=metrics)
        await dispatcher.start()
        now = time.time()
        start, cpu0 = time.perf_counter(), time.process_time()
        for i in range(count):
            n = Notification(
                event=Event.DOWN,
                time=now,
                probe=f"t{i}",
                kind="tcp",
                endpoint="127.0.0.1:1",
                status="down",
                message="connection refused",
                position=1,
            )
            dispatcher.notify(n, [])
        await dispatcher.drain()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        await dispatcher.stop()
    delivered = store.outbox_count("delivered")
    await store.close()
    return elapsed, cpu, delivered


def write_config(folder: Path, probes: int, interval: float, tcp_port: int, url: str) -> Path:
    lines = [
        "settings:",
        f"  probe: {{interval: {interval}s, timeout: 1s, concurrency: 256}}",
        "  store: {path: probe.db}",
        "  http: {port: 0}",
        "  log: {level: error}",
        "notify:",
        "  webhook:",
        f"    - {{name: hook, url: '{url}'}}",
        "tcp:",
    ]
    lines += [f"  - {{name: t{i}, host: '127.0.0.1:{tcp_port}'}}" for i in range(probes)]
    path = folder / "burst.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def whole_app(
    config: Path, targets: subprocess.Popen[str], probes: int, interval: float
) -> dict[str, float]:
    stats = SchedulerStats(keep_lag=True)
    registry = CollectorRegistry()
    app = App(load_config(config), stats=stats, registry=registry)
    run = asyncio.create_task(app.run())
    await asyncio.sleep(interval * 1.5)  # every probe checked once: all up
    lag_before = len(stats.lag_samples)
    targets.terminate()  # the port closes: every probe's next check is refused
    targets.wait(timeout=10)
    killed = time.perf_counter()
    deadline = killed + interval + 60
    metrics = app.metrics
    while metrics.value("hook", "sent") < probes and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    all_sent = time.perf_counter() - killed
    await asyncio.sleep(interval * 0.5)
    burst_lags = stats.lag_samples[lag_before:]
    app.request_stop()
    await run
    return {
        "all_sent": all_sent,
        "sent": metrics.value("hook", "sent"),
        "lag_p50": pct(burst_lags, 0.5),
        "lag_p99": pct(burst_lags, 0.99),
        "lag_max": max(burst_lags, default=float("nan")),
        "checks": len(burst_lags),
        "skipped": stats.skipped,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    receiver, url = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, cpu, delivered = await dispatcher_alone(url, args.probes, Path(tmp))
        arrivals = stop_receiver(receiver)
        print(
            f"\n[1] dispatcher alone: {delivered}/{args.probes} notifications delivered in "
            f"{elapsed * 1e3:.0f} ms ({delivered / elapsed:.0f}/s; outbox write before each "
            f"send, 32 in flight, the App's HTTP client); the receiver got {len(arrivals)}"
        )
        print(
            f"    CPU of this process (all threads): {cpu / max(delivered, 1) * 1e3:.2f} ms"
            " per notification"
        )
    finally:
        if receiver.poll() is None:
            receiver.kill()

    receiver, url = start_receiver()
    targets, _, tcp_port = start_targets()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            config = write_config(Path(tmp), args.probes, args.interval, tcp_port, url)
            figures = await whole_app(config, targets, args.probes, args.interval)
        arrivals = stop_receiver(receiver)
    finally:
        for proc in (receiver, targets):
            if proc.poll() is None:
                proc.kill()
    delays = [arrived - decided for arrived, decided in arrivals]
    print(
        f"\n[2] whole App: {args.probes} TCP probes every {args.interval:g}s, target killed: "
        f"{figures['sent']:.0f} down notifications delivered {figures['all_sent']:.2f}s after "
        f"the kill (the downs themselves spread over one interval, {args.interval:g}s)"
    )
    print(
        f"    alert decision -> webhook: p50 {pct(delays, 0.5) * 1e3:.1f} ms, "
        f"p99 {pct(delays, 0.99) * 1e3:.1f} ms, max {max(delays, default=0) * 1e3:.1f} ms "
        f"({len(arrivals)} received)"
    )
    print(
        f"    schedule lag during the burst: p50 {figures['lag_p50'] * 1e3:.1f} ms, "
        f"p99 {figures['lag_p99'] * 1e3:.1f} ms, max {figures['lag_max'] * 1e3:.1f} ms over "
        f"{figures['checks']:.0f} checks (target p99 < 100 ms); skipped ticks "
        f"{figures['skipped']:.0f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "receiver":
        asyncio.run(_receive(int(sys.argv[2])))
    else:
        asyncio.run(main())
