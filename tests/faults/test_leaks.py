"""1,000 fault cycles leave nothing behind: open file descriptors and asyncio tasks return to
their baseline, and the resident memory grows by no more than a loose bound. The faults are
those of the other modules (silent, slowloris, resets, short and endless bodies, redirect
loops, bad certificates, a silent TLS port, a refused port), with 200 ms timeouts, checked
through the scheduler's `run_check` 50 at a time."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme

from probe.core.result import Status
from probe.probers.base import Prober, SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.tcp import TCPProber, TCPSpec
from probe.probers.tls import TLSProber, TLSSpec
from tests.faults import servers
from tests.faults.servers import FaultServer, timed_check

pytestmark = pytest.mark.slow

_overruns = servers.overrun_report("leaks")

CYCLES = 1000
AT_ONCE = 50
TIMEOUT = "200ms"
SLACK = 1.5


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def settle(limit: int, *, rounds: int = 250) -> int:
    """Wait (bounded) for the servers' and transports' closes to land; the count then."""
    count = open_fds()
    for _ in range(rounds):
        gc.collect()
        count = open_fds()
        if count <= limit:
            break
        await asyncio.sleep(0.02)
    return count


async def tasks_settle(limit: int, *, rounds: int = 250) -> int:
    count = len(asyncio.all_tasks())
    for _ in range(rounds):
        count = len(asyncio.all_tasks())
        if count <= limit:
            break
        await asyncio.sleep(0.02)
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_a_thousand_fault_cycles_leak_no_descriptor_or_task(tmp_path, fault_figures):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    expired = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    old = {
        "not_before": datetime(2019, 1, 1, tzinfo=UTC),
        "not_after": datetime(2020, 1, 1, tzinfo=UTC),
    }
    ca.issue_cert("127.0.0.1", **old).configure_cert(expired)
    self_signed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(self_signed)

    behaviours = [
        FaultServer(servers.silent),
        FaultServer(servers.slowloris(0.05)),
        FaultServer(servers.reset_mid_headers),
        FaultServer(servers.short_body),
        FaultServer(servers.endless_chunked),
        FaultServer(servers.redirect_loop),
        FaultServer(servers.healthy, expired),
        FaultServer(servers.healthy, self_signed),
    ]
    for server in behaviours:
        await server.start()
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening: refused, and ours for the test
    closed_port = refused.getsockname()[1]

    resources = SharedResources()
    silent, slow, reset, short, endless, loop, bad_cert, untrusted = behaviours

    def http(server: FaultServer, **keys: Any) -> Prober[Any]:
        spec = HTTPSpec(name="h", url=server.url(), timeout=TIMEOUT, **keys)
        return HTTPProber(spec, resources)

    makers: list[Callable[[], Prober[Any]]] = [
        lambda: http(silent),
        lambda: http(slow),
        lambda: http(reset),
        lambda: http(short),
        lambda: http(endless, contain="never", max_body="64KiB"),
        lambda: http(loop),
        lambda: http(untrusted, ca=ca_file),
        lambda: HTTPProber(
            HTTPSpec(name="h", url=silent.url("/", "https"), timeout=TIMEOUT), resources
        ),
        lambda: TLSProber(
            TLSSpec(name="t", host=bad_cert.address, root_ca_pem_path=ca_file, timeout=TIMEOUT),
            resources,
        ),
        lambda: TCPProber(
            TCPSpec(name="c", host=f"127.0.0.1:{closed_port}", timeout=TIMEOUT), resources
        ),
    ]
    probers = [make() for make in makers]

    async def cycles(count: int) -> tuple[int, float]:
        """`count` checks, AT_ONCE at a time, each down; the longest overrun seen."""
        downs, longest = 0, 0.0
        for start in range(0, count, AT_ONCE):
            batch = [probers[i % len(probers)] for i in range(start, start + AT_ONCE)]
            timed = await asyncio.gather(*(timed_check(p, "leaks: mixed faults") for p in batch))
            for one in timed:
                assert one.result.status is Status.DOWN, one.result.message
                assert one.elapsed < one.timeout + SLACK
                assert not one.straggler
                downs += 1
                longest = max(longest, one.overrun)
        return downs, longest

    try:
        await cycles(len(probers) * 2)  # warm up: shared clients, TLS contexts, imports
        await asyncio.sleep(0.3)
        fds_before = await settle(0, rounds=10)
        tasks_before = await tasks_settle(0, rounds=10)
        rss_before = rss_mb()

        downs, longest = await cycles(CYCLES)

        fds_after = await settle(fds_before + 2)
        tasks_after = await tasks_settle(tasks_before)
        rss_after = rss_mb()
    finally:
        for server in behaviours:
            await server.stop()
        refused.close()
        await resources.aclose()

    fault_figures.add(
        f"leaks: {downs} fault checks (10 kinds, {TIMEOUT} timeouts, {AT_ONCE} at once), "
        f"longest overrun {longest * 1000:.1f} ms; fds {fds_before} -> {fds_after}, tasks "
        f"{tasks_before} -> {tasks_after}, RSS {rss_before:.1f} -> {rss_after:.1f} MB"
    )
    assert downs == CYCLES
    assert fds_after <= fds_before + 2
    assert tasks_after <= tasks_before
    assert rss_after - rss_before < 50
