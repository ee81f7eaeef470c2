"""Healthy probes keep their schedule beside misbehaving ones: 50 healthy HTTP probes and, in
the second run, 12 more (about 20%) against the servers of tests/faults/servers.py, in one real
Scheduler. The healthy probes' lag (start - due) is reported for both runs; only correctness
is asserted (every healthy check made, up, none skipped)."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from typing import Any

import pytest

from probe.conditions import Condition
from probe.core.check import CheckContext
from probe.core.result import Result, Status
from probe.core.scheduler import Scheduler, SchedulerStats
from probe.probers.base import Prober, SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from tests.faults import servers
from tests.faults.servers import FaultServer

pytestmark = pytest.mark.slow

HEALTHY = 50
INTERVAL = 0.5
TIMEOUT = "400ms"  # below the interval: a fault never makes its own probe skip a tick
RUN = 3.0
BAD = [
    servers.silent,
    servers.slowloris(0.1),
    servers.reset_mid_headers,
    servers.short_body,
    servers.endless_chunked,
    servers.redirect_loop,
]


class HealthyLag(SchedulerStats):
    """The scheduler's own lag figures, those of the healthy probes picked out: the lag is
    recorded just before the check's coroutine is made (`run_check`), with nothing in
    between, so `Tagged.check` can take it for its probe."""

    def __init__(self) -> None:
        super().__init__(keep_lag=True)
        self.last = 0.0
        self.healthy: list[float] = []

    def record_lag(self, lag: float) -> None:
        SchedulerStats.record_lag(self, lag)
        self.last = lag


class Tagged:
    """A real prober, its checks' lag noted when it is a healthy one."""

    def __init__(self, prober: Prober[Any], stats: HealthyLag, *, healthy: bool) -> None:
        self._prober = prober
        self._stats = stats
        self._healthy = healthy

    name = property(lambda self: self._prober.name)
    kind = property(lambda self: self._prober.kind)
    endpoint = property(lambda self: self._prober.endpoint)
    interval = property(lambda self: self._prober.interval)
    timeout = property(lambda self: self._prober.timeout)

    @property
    def conditions(self) -> Sequence[Condition]:
        return self._prober.conditions

    def check(self, ctx: CheckContext) -> Any:  # not async: runs as run_check makes the task
        if self._healthy:
            self._stats.healthy.append(self._stats.last)
        checking: Any = self._prober.check(ctx)
        return checking


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(with_faults: bool) -> tuple[HealthyLag, list[Result], set[str]]:
    resources = SharedResources()
    stats = HealthyLag()
    healthy_server = await FaultServer(servers.healthy).start()
    bad_servers = [await FaultServer(b).start() for b in BAD] if with_faults else []
    probes: list[Tagged] = []
    for i in range(HEALTHY):
        spec = HTTPSpec(name=f"ok-{i}", url=healthy_server.url(f"/{i}"), timeout=TIMEOUT)
        probes.append(Tagged(HTTPProber(spec, resources), stats, healthy=True))
    for i in range(12 if with_faults else 0):
        server = bad_servers[i % len(bad_servers)]
        spec = HTTPSpec(
            name=f"bad-{i}", url=server.url(), timeout=TIMEOUT, max_body="64KiB", contain="never"
        )
        probes.append(Tagged(HTTPProber(spec, resources), stats, healthy=False))
    for tagged in probes:
        object.__setattr__(tagged._prober.spec, "interval", INTERVAL)
    results: list[Result] = []
    scheduler = Scheduler(probes, results.append, stats=stats)
    scheduler.start()
    try:
        await asyncio.sleep(RUN)
    finally:
        await scheduler.stop(grace=1)
        for server in [healthy_server, *bad_servers]:
            await server.stop()
        await resources.aclose()
    return stats, results, {p.name for p in probes if p.name.startswith("ok-")}


async def test_healthy_probes_keep_their_schedule_beside_misbehaving_ones(fault_figures):
    figures = []
    for with_faults in (False, True):
        stats, results, healthy = await run(with_faults)
        ok = [r for r in results if r.name in healthy]
        per_probe = {name: sum(r.name == name for r in ok) for name in healthy}
        # Every healthy probe checked on every tick of the run (the first ones spread over the
        # first interval), each check up.
        assert min(per_probe.values()) >= int(RUN / INTERVAL) - 1, per_probe
        assert all(r.status is Status.UP for r in ok), {r.message for r in ok}
        assert stats.skipped == 0
        assert stats.stragglers == 0
        if with_faults:
            bad = [r for r in results if r.name not in healthy]
            assert bad and all(r.status is Status.DOWN for r in bad)
        lags = stats.healthy
        figures.append(
            f"{'with 20% misbehaving' if with_faults else 'none misbehaving'}: "
            f"{len(lags)} healthy checks, lag p50 {statistics.median(lags) * 1000:.1f} ms, "
            f"p99 {percentile(lags, 0.99) * 1000:.1f} ms"
        )
    fault_figures.add(
        f"schedule, {HEALTHY} healthy HTTP probes every 500 ms: " + "; ".join(figures)
    )
