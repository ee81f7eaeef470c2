from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import ValidationError

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers._net import split_host_port
from probe.probers.base import SharedResources
from probe.probers.tcp import TCPProber, TCPSpec
from tests.support.probers import fail_name_resolution


def prober(host: str, resources: SharedResources) -> TCPProber:
    return TCPProber(TCPSpec(name="tcp", host=host, timeout="2s"), resources)


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the prober hangs up


async def test_open_port_is_up(raw_server, resources):
    server = await raw_server(idle)
    ctx = CheckContext()
    outcome = await prober(server.address, resources).check(ctx)
    assert outcome.ok
    assert outcome.message == f"connected to {server.address}"
    assert outcome.details["peer"] == server.address
    assert ctx.phase == "connect"


async def test_connection_is_closed_right_away(raw_server, resources):
    closed = asyncio.Event()

    async def wait_for_eof(reader, writer):
        await reader.read()
        closed.set()

    server = await raw_server(wait_for_eof)
    await prober(server.address, resources).check(CheckContext())
    async with asyncio.timeout(2):
        await closed.wait()


async def test_closed_port_is_refused(closed_port, resources):
    with pytest.raises(ProbeError) as caught:
        await prober(f"127.0.0.1:{closed_port}", resources).check(CheckContext())
    assert caught.value.message == "connection refused"
    assert caught.value.details["peer"] == f"127.0.0.1:{closed_port}"


async def test_ipv6_loopback(raw_server, resources, ipv6_loopback):
    server = await raw_server(idle, host=ipv6_loopback)
    outcome = await prober(f"[::1]:{server.port}", resources).check(CheckContext())
    assert outcome.ok
    assert outcome.details["peer"] == f"[::1]:{server.port}"


async def test_name_that_does_not_resolve(monkeypatch, resources):
    # getaddrinfo may ask a DNS server even for `.invalid`: fail it here, so nothing leaves.
    fail_name_resolution(monkeypatch)
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await prober("db.invalid:5432", resources).check(ctx)
    assert caught.value.message == "name resolution failed for host db.invalid"
    assert ctx.phase == "resolve"


async def test_every_resolved_address_is_tried(monkeypatch, raw_server, closed_port, resources):
    server = await raw_server(idle)
    loop = asyncio.get_running_loop()

    async def two_addresses(host, port, **kwargs):
        assert host == "svc.test"
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", closed_port)),
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", server.port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    outcome = await prober(f"svc.test:{server.port}", resources).check(CheckContext())
    assert outcome.ok
    assert outcome.details["peer"] == server.address


# --- conditions (judged by the runner, through run_check) ----------------------------------


def judged(host: str, resources: SharedResources, *conditions: str) -> TCPProber:
    spec = TCPSpec(name="tcp", host=host, timeout="2s", conditions=list(conditions))
    return TCPProber(spec, resources)


async def test_connected_false_on_a_closed_port_is_up(closed_port, resources):
    closed = judged(f"127.0.0.1:{closed_port}", resources, "[CONNECTED] == false")
    result = (await run_check(closed)).result
    assert result.status is Status.UP
    assert result.message == "connection refused, as the conditions expect"
    assert "failed_conditions" not in result.details


async def test_connected_false_on_an_open_port_is_down(raw_server, resources):
    server = await raw_server(idle)
    result = (await run_check(judged(server.address, resources, "[CONNECTED] == false"))).result
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [CONNECTED] (true) == false"


async def test_ip_is_the_address_connected_to(raw_server, resources):
    server = await raw_server(idle)
    ctx = CheckContext()
    await prober(server.address, resources).check(ctx)
    assert ctx.facts["IP"] == "127.0.0.1"
    up = judged(server.address, resources, "[IP] == 127.0.0.1", "[RESPONSE_TIME] < 2000")
    result = (await run_check(up)).result
    assert result.status is Status.UP, result.message
    down = judged(server.address, resources, "[IP] == 10.0.0.1")
    result = (await run_check(down)).result
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [IP] (127.0.0.1) == 10.0.0.1"


async def test_ip_of_the_address_that_answered(monkeypatch, raw_server, closed_port, resources):
    server = await raw_server(idle)
    loop = asyncio.get_running_loop()

    async def two_addresses(host, port, **kwargs):
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", ("127.0.0.2", closed_port)),
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", server.port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    ctx = CheckContext()
    assert (await prober(f"svc.test:{server.port}", resources).check(ctx)).ok
    assert ctx.facts["IP"] == "127.0.0.1"


def test_tcp_has_only_the_common_placeholders():
    spec = TCPSpec(name="t", host="127.0.0.1:1", conditions=["[IP] == ::1", "[STATUS] == 200"])
    ((index, message),) = spec.condition_problems()
    assert index == 1
    assert message.startswith(
        "[STATUS] is not a placeholder of tcp probes (they have [CONNECTED], [IP], [RESPONSE_TIME])"
    )


@pytest.mark.slow
async def test_hard_timeout_during_connect_leaves_no_socket(open_fds, resources):
    # A connect that never completes, without leaving the machine: a listener whose accept
    # queue is full drops further SYNs, so the connect waits for the scheduler's timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        await asyncio.sleep(0.05)
        before = open_fds()
        ctx = CheckContext()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await prober(f"127.0.0.1:{port}", resources).check(ctx)
        assert ctx.phase == "connect"
        assert open_fds() == before
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db.lan:5432", ("db.lan", 5432)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:6379", ("::1", 6379)),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
        ("tcp://cache.lan:11211", ("cache.lan", 11211)),
        ("https://web.lan", ("web.lan", 443)),
        ("  db.lan:1  ", ("db.lan", 1)),
    ],
)
def test_host_port_forms(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("db.lan", "missing port"),
        ("db.lan:", "is not a number"),
        ("db.lan:abc", "is not a number"),
        ("db.lan:0", "not in 1-65535"),
        ("db.lan:65536", "not in 1-65535"),
        (":80", "missing host"),
        ("::1:80", "needs brackets"),
        ("[::1", "[v6addr]:port"),
        ("[::1]", "missing port"),
        ("[db.lan]:80", "not an IPv6 address"),
        ("db lan:80", "not a host name"),
        ("redis://cache.lan", "no port"),
        ("", "empty host"),
    ],
)
def test_bad_host_is_a_validation_error(text, needle):
    with pytest.raises(ValidationError) as caught:
        TCPSpec(name="tcp", host=text)
    assert needle in str(caught.value)


def test_spec_keys():
    spec = TCPSpec(name="tcp", host="db.lan:5432")
    assert spec.endpoint() == "db.lan:5432"
    assert TCPSpec.kind == "tcp"
    assert "proxy" in TCPSpec.easeprobe_ignored
    url_spec = TCPSpec(name="tcp", host="tcp://user:pw@db.lan:5432")
    assert url_spec.endpoint() == "tcp://db.lan:5432"
