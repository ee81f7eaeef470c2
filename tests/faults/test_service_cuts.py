"""PostgreSQL, MariaDB and Redis connections cut, stalled and restored while a real Scheduler
checks them through a TCPProxy (tests/support/proxy.py): up, then down with a connection
message within the timeout once cut, up again once restored, and a timeout message once the
proxy accepts and never speaks. The shared servers are never stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from probe.core.result import Result, Status
from probe.core.scheduler import Scheduler, SchedulerStats
from probe.probers.base import Prober, SharedResources
from probe.probers.redis import RedisProber, RedisSpec
from tests.faults import servers
from tests.faults.servers import OVERRUNS
from tests.support.proxy import TCPProxy
from tests.support.services import require_service
from tests.support.sql import MYSQL, POSTGRES, SQL_CUT

pytestmark = pytest.mark.slow

_overruns = servers.overrun_report("service cuts")

INTERVAL = 0.25
TIMEOUT = 1.0
SLACK = 1.5
REDIS_CUT = frozenset({"connection reset by peer", "the server closed the connection"})


def _address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def postgres(resources: SharedResources, host: str) -> Prober[Any]:
    prober: Prober[Any] = POSTGRES.make(POSTGRES.server(), resources, host=host, timeout="1s")
    return prober


def mysql(resources: SharedResources, host: str) -> Prober[Any]:
    prober: Prober[Any] = MYSQL.make(MYSQL.server(), resources, host=host, timeout="1s")
    return prober


def redis(resources: SharedResources, host: str) -> Prober[Any]:
    spec = RedisSpec(name="cache", driver="redis", host=host, timeout="1s")
    return RedisProber(spec, resources)


# service -> (the shared server's host:port, how a prober is made, what a cut may say)
SERVICES: dict[str, tuple[Callable[[], str], Callable[..., Prober[Any]], frozenset[str]]] = {
    "postgres": (lambda: POSTGRES.server()["address"], postgres, SQL_CUT),
    "mysql": (lambda: MYSQL.server()["address"], mysql, SQL_CUT),
    "redis": (lambda: _address(require_service("redis")), redis, REDIS_CUT),
}


class Watch:
    """The results of one probe as the scheduler hands them over, each with the time it took
    (from its start to its delivery)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Result, float]] = []
        self._new = asyncio.Event()

    def __call__(self, result: Result) -> None:
        self.seen.append((result, time.time() - result.time.timestamp()))
        self._new.set()

    async def next_where(
        self, predicate: Callable[[Result], bool], *, within: float
    ) -> tuple[Result, float]:
        """The first result from now on that `predicate` accepts."""
        start = len(self.seen)
        async with asyncio.timeout(within):
            while True:
                for result, took in self.seen[start:]:
                    if predicate(result):
                        return result, took
                start = len(self.seen)
                self._new.clear()
                await self._new.wait()


@pytest.fixture
async def resources() -> AsyncIterator[SharedResources]:
    shared = SharedResources()
    yield shared
    await shared.aclose()


@pytest.mark.parametrize("service", list(SERVICES))
async def test_cut_stall_and_restore_under_a_running_scheduler(service, resources, fault_figures):
    upstream, make, cut_messages = SERVICES[service]
    host, port = upstream().rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        prober = make(resources, proxy.address)
        object.__setattr__(prober.spec, "interval", INTERVAL)  # faster than config allows
        watch = Watch()
        stats = SchedulerStats()
        scheduler = Scheduler([prober], watch, stats=stats)
        scheduler.start()
        try:
            first, _ = await watch.next_where(lambda r: True, within=5)
            assert first.status is Status.UP, first.message

            proxy.cut()
            down, took = await watch.next_where(lambda r: r.status is Status.DOWN, within=5)
            OVERRUNS.note(f"{service}: cut", max(0.0, took - TIMEOUT))
            fault_figures.add(f"{service} cut: down in {took * 1000:.0f} ms: {down.message}")
            assert down.message in cut_messages
            assert took < TIMEOUT + SLACK

            proxy.restore()
            await watch.next_where(lambda r: r.status is Status.UP, within=5)

            proxy.stall()
            timed_out, took = await watch.next_where(lambda r: r.status is Status.DOWN, within=5)
            OVERRUNS.note(f"{service}: stall", max(0.0, took - TIMEOUT))
            fault_figures.add(
                f"{service} stall: down in {took * 1000:.0f} ms (timeout 1000 ms, overrun "
                f"{max(0.0, took - TIMEOUT) * 1000:.1f} ms): {timed_out.message}"
            )
            assert timed_out.message.startswith("timeout after 1s during ")
            assert took < TIMEOUT + SLACK

            proxy.restore()
            await watch.next_where(lambda r: r.status is Status.UP, within=5)
        finally:
            await scheduler.stop(grace=2)
    assert stats.stragglers == 0
