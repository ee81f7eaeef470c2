"""A fleet of probes with a history, for the status page at scale: its tests and the README's
screenshots (scripts/screenshots.py).

`fleet_probes(n)` names n probes as a team would (services in groups, kinds and endpoints
on loopback or .test names), and `fill_fleet` writes their history through the real store
writer: one check every `step` seconds for `days` days, each probe with its own latency, a
few outages in its past, and at the end some probes down, some degraded (up but slow).
Deterministic: the same n gives the same fleet. `served_fleet` does both in a new store and
serves its status page with the real web server on loopback.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from probe.core.result import Result, Status
from probe.core.tracker import Policy, StatusTracker
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource
from probe.web.render import StatusPage
from probe.web.server import create_app, start_server

DAY = 86400.0

_GROUPS: dict[str, list[tuple[str, str]]] = {
    "web": [("storefront", "http"), ("checkout", "http"), ("docs site", "http"), ("cdn", "http")],
    "api": [
        ("orders api", "http"),
        ("billing api", "http"),
        ("auth api", "http"),
        ("search api", "http"),
        ("inventory api", "grpc"),
    ],
    "databases": [
        ("postgres primary", "postgres"),
        ("postgres replica", "postgres"),
        ("mariadb", "mysql"),
        ("mongo", "mongo"),
    ],
    "queues": [("kafka", "kafka"), ("mqtt broker", "mqtt"), ("job runner", "push")],
    "cache": [("redis", "redis"), ("memcached", "memcache")],
    "infra": [("etcd", "etcd"), ("dns", "dns"), ("bastion ssh", "ssh"), ("tls cert", "tls")],
}
_REGIONS = ["eu-1", "eu-2", "us-1", "us-2", "ap-1", "sa-1", "af-1", "me-1"]


def fleet_probes(n: int) -> list[ConfiguredProbe]:
    """n probes across the groups; past the first round each service gets a region."""
    services = [(group, name, kind) for group, items in _GROUPS.items() for name, kind in items]
    probes = []
    for i in range(n):
        group, name, kind = services[i % len(services)]
        round_ = i // len(services)
        if n > len(services):
            name = f"{name} {_REGIONS[round_ % len(_REGIONS)]}"
            if round_ >= len(_REGIONS):
                name += f"-{round_ // len(_REGIONS) + 1}"
        host = name.replace(" ", "-")
        endpoint = f"https://{host}.example.test/health" if kind == "http" else f"{host}:443"
        probes.append(ConfiguredProbe(name, kind, endpoint, {"group": group}))
    return probes


def is_down(i: int) -> bool:
    """Probe i's status at the end of its history: down now."""
    return i % 23 == 7


def is_degraded(i: int) -> bool:
    return not is_down(i) and i % 19 == 4


def _outage(i: int, t: float, start: float) -> bool:
    """Probe i's past outages: every 11th probe a bad day, others a short dip now and then."""
    day = int((t - start) // DAY)
    minute = (t - start) % DAY / 60
    if i % 11 == 2 and day % 29 == 5:
        return minute < 300  # five hours down
    if (day * 7 + i) % 41 == 0:
        return 600 <= minute < 640
    return False


async def fill_fleet(
    store: Store, probes: list[ConfiguredProbe], *, now: float, days: int, step: float
) -> None:
    """Write `days` days of checks every `step` seconds for `probes`, ending at `now`."""
    tracker = StatusTracker()
    policy = Policy(interval=step)
    start = now - days * DAY
    steps = int(days * DAY // step)
    for i, probe in enumerate(probes):
        base = 0.02 + (i * 37 % 250) / 1000
        for k in range(steps + 1):
            t = start + k * step
            last = k == steps
            down = ((last or k == steps - 1) and is_down(i)) or _outage(i, t, start)
            latency = base * (1 + 0.3 * math.sin(t / 7200 + i))
            degraded = None
            if last and is_degraded(i):
                latency *= 8
                degraded = f"latency {latency * 1000:.0f} ms > {base * 3000:.0f} ms"
            result = Result(
                name=probe.name,
                kind=probe.kind,
                endpoint=probe.endpoint,
                status=Status.DOWN if down else Status.UP,
                latency=None if down else latency,
                message="connection refused" if down else "status 200",
                time=datetime.fromtimestamp(t, UTC),
                degraded=degraded,
            )
            store.submit(tracker.observe(result, policy))
        if i % 10 == 9:
            await store.flush()
    await store.flush()


@dataclass(frozen=True)
class ServedFleet:
    url: str  # the status page
    page: StatusPage  # the one the server renders (for static files of the same page)


@contextlib.asynccontextmanager
async def served_fleet(
    folder: Path, count: int, *, now: float, days: int, step: float, title: str = "Fleet"
) -> AsyncIterator[ServedFleet]:
    """`count` probes' history in a new store in `folder`, their page served on loopback."""
    store = Store.open(folder / f"fleet-{count}.db", clock=lambda: now)
    await store.start()
    try:
        probes = fleet_probes(count)
        await fill_fleet(store, probes, now=now, days=days, step=step)
        source = StatusSource(store, probes, clock=lambda: now)
        page = StatusPage(source, title=title)
        runner, port = await start_server(create_app(source, page=page), "127.0.0.1", 0)
        try:
            yield ServedFleet(f"http://127.0.0.1:{port}/", page)
        finally:
            await runner.cleanup()
    finally:
        await store.close()
