"""HTTP servers that misbehave, against the real http prober run by the scheduler's
`run_check`: each check ends within its timeout (plus the cancel slack), down, with a message
that says what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from probe.core.result import Status
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from tests.faults import servers
from tests.faults.servers import FaultServer, timed_check

pytestmark = pytest.mark.slow

_overruns = servers.overrun_report("HTTP faults")

# What a check may take past its timeout: the scheduler's cancel and the loop's turn.
SLACK = 1.5


@pytest.fixture
async def resources() -> AsyncIterator[SharedResources]:
    shared = SharedResources()
    yield shared
    await shared.aclose()


def http(resources: SharedResources, url: str, **keys: object) -> HTTPProber:
    keys.setdefault("timeout", "1s")
    return HTTPProber(HTTPSpec(name="web", url=url, **keys), resources)


# (behaviour, spec keys, the message, the phase a timeout struck in or None)
FAULTS = {
    "accepts and never answers": (
        servers.silent,
        {},
        "timeout after 1s during waiting for the response",
        "waiting for the response",
    ),
    "slowloris (a byte every 0.3 s)": (
        servers.slowloris(0.3),
        {},
        "timeout after 1s during waiting for the response",
        "waiting for the response",
    ),
    "reset in the middle of the head": (
        servers.reset_mid_headers,
        {},
        "connection reset by peer",
        None,
    ),
    "closed in the middle of the body": (
        servers.short_body,
        {},
        "server closed the connection before the body was complete",
        None,
    ),
    "an endless chunked body, text looked for": (
        servers.endless_chunked,
        {"contain": "never-there", "max_body": "256KiB"},
        'body does not contain "never-there" (in the first 262144 bytes)',
        None,
    ),
    "a redirect loop": (
        servers.redirect_loop,
        {},
        "too many redirects (more than 10)",
        None,
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_misbehaving_server_is_down_within_the_timeout(fault, resources, fault_figures):
    behaviour, keys, message, phase = FAULTS[fault]
    async with FaultServer(behaviour) as server:
        prober = http(resources, server.url("/health"), **keys)
        timed = await timed_check(prober, f"http: {fault}")
    fault_figures.add(timed.line(f"http: {fault}"))
    assert timed.elapsed < prober.timeout + SLACK
    assert not timed.straggler
    assert timed.result.status is Status.DOWN
    assert timed.result.message == message
    if phase is not None:
        assert timed.result.details["phase"] == phase


async def test_an_endless_body_stops_at_the_body_cap(resources, fault_figures):
    # Nothing asked of the body: the check reads up to max_body, says it cut, and judges.
    async with FaultServer(servers.endless_chunked) as server:
        prober = http(resources, server.url(), max_body="256KiB")
        timed = await timed_check(prober, "http: an endless chunked body")
    fault_figures.add(timed.line("http: an endless chunked body"))
    assert timed.elapsed < prober.timeout
    assert timed.result.status is Status.UP
    assert timed.result.message == "status 200"
    assert timed.result.details["truncated"] is True
    assert timed.result.details["content_length"] == 256 * 1024


async def test_a_redirect_loop_stops_at_the_probe_s_limit(resources):
    async with FaultServer(servers.redirect_loop) as server:
        prober = http(resources, server.url("/a"), limit_redirects=True, max_redirects=3)
        timed = await timed_check(prober, "http: a redirect loop (max_redirects 3)")
        assert server.connections == 4  # the first request and 3 redirects, no more
    assert timed.result.status is Status.DOWN
    assert timed.result.message == "too many redirects (more than 3)"
