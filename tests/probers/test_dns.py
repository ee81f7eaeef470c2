"""The dns prober against a private dnsmasq (tests/support/dnsmasq.py) answering a zone of
our own on a free loopback port: records of every kind, NXDOMAIN, REFUSED, wrong answers,
a silent port, a refused one, outages through the TCP proxy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.base import SharedResources
from probe.probers.dns import DNSProber, DNSSpec
from tests.support import probers as scenarios
from tests.support.dnsmasq import PrivateDnsmasq


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDnsmasq]:
    with PrivateDnsmasq(tmp_path_factory.mktemp("dnsmasq")) as server:
        yield server


def make(resources: SharedResources, server: str, **keys: Any) -> DNSProber:
    keys.setdefault("name", "dns")
    keys.setdefault("timeout", "2s")
    keys.setdefault("query", "www.probe.test")
    if "host" in keys:  # the shared scenarios say `host`
        server = keys.pop("host")
    return DNSProber(DNSSpec(server=server, **keys), resources)


@pytest.fixture
def silent_udp() -> Iterator[str]:
    """A UDP port that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("keys", "answers"),
    [
        ({}, ["10.0.0.1", "10.0.0.2"]),
        ({"type": "AAAA"}, ["fd00::1"]),
        ({"query": "alias.probe.test"}, ["10.0.0.1", "10.0.0.2"]),  # the CNAME followed
        ({"query": "alias.probe.test", "type": "cname"}, ["www.probe.test"]),
        ({"query": "probe.test", "type": "MX"}, ["10 mail.probe.test"]),
        ({"query": "probe.test", "type": "TXT"}, ["v=spf1 -all"]),
        ({"query": "_sip._tcp.probe.test", "type": "SRV"}, ["10 5 5060 sip.probe.test"]),
        ({"query": "10.0.0.1", "type": "PTR"}, ["www.probe.test"]),
        ({"transport": "tcp"}, ["10.0.0.1", "10.0.0.2"]),
    ],
)
async def test_records_are_up(dnsmasq, resources, keys, answers):
    ctx = CheckContext()
    outcome = await make(resources, dnsmasq.address, **keys).check(ctx)
    assert outcome.ok, outcome.message
    assert sorted(outcome.details["answers"]) == answers
    assert outcome.details["rcode"] == "NOERROR"
    assert outcome.details["server"] == dnsmasq.address
    assert outcome.message.startswith(f"NOERROR, {len(answers)} answer")
    assert ctx.facts["DNS_RCODE"] == "NOERROR"
    assert sorted(ctx.facts["BODY"].split("\n")) == answers
    assert ctx.facts["IP"] == "127.0.0.1"
    assert ctx.phase == "query"


async def test_a_truncated_answer_is_asked_again_over_tcp(dnsmasq, resources):
    big = "a" * 200 + "b" * 200 + "c" * 200
    prober = make(resources, dnsmasq.address, query="big.probe.test", type="TXT")
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.details["answers"] == [big]
    assert outcome.details["truncated_over_udp"] is True


async def test_expected_answers(dnsmasq, resources):
    good = {"contain": ["10.0.0.2"], "not_contain": ["10.0.0.9"], "equal": ["10.0.0.2", "10.0.0.1"]}
    assert (await make(resources, dnsmasq.address, answers=good).check(CheckContext())).ok
    # Addresses compare as addresses, names without case or final dot.
    six = make(resources, dnsmasq.address, type="AAAA", answers={"equal": ["FD00:0::1"]})
    assert (await six.check(CheckContext())).ok
    mx = make(
        resources, dnsmasq.address, query="probe.test", type="MX",
        answers={"contain": ["10 MAIL.probe.test."]},
    )  # fmt: skip
    assert (await mx.check(CheckContext())).ok


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"contain": ["10.0.0.9"]}, 'answers lack "10.0.0.9" (got 10.0.0.1, 10.0.0.2)'),
        ({"not_contain": ["10.0.0.2"]}, 'answers include "10.0.0.2" (got 10.0.0.1, 10.0.0.2)'),
        ({"equal": ["10.0.0.1"]}, "answers differ from 10.0.0.1 (got 10.0.0.1, 10.0.0.2)"),
    ],
)
async def test_wrong_answers_are_down(dnsmasq, resources, answers, message):
    prober = make(resources, dnsmasq.address, answers=answers)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    # dnsmasq may give the two records in either order
    assert result.message in (message, message.replace("10.0.0.1, 10.0.0.2", "10.0.0.2, 10.0.0.1"))


async def test_nxdomain_and_refused(dnsmasq, resources):
    nx = make(resources, dnsmasq.address, query="nope.probe.test")
    result = (await run_check(nx)).result
    assert result.status is Status.DOWN
    assert result.message == "rcode NXDOMAIN, expected NOERROR"
    assert result.details["answers"] == []
    # A name that must not exist: NXDOMAIN expected is up.
    gone = make(resources, dnsmasq.address, query="nope.probe.test", rcode="nxdomain")
    assert (await gone.check(CheckContext())).ok
    # Outside its zone (and with nowhere to forward) dnsmasq refuses.
    outside = make(resources, dnsmasq.address, query="outside.invalid", recursion=False)
    result = (await run_check(outside)).result
    assert result.message == "rcode REFUSED, expected NOERROR"


async def test_no_answer_is_up_unless_answers_are_expected(dnsmasq, resources):
    prober = make(resources, dnsmasq.address, query="probe.test", type="NS")
    outcome = await prober.check(CheckContext())
    assert outcome.ok
    assert outcome.message == f"NOERROR, no NS answer from {dnsmasq.address}"
    expected = {"contain": ["ns1.probe.test"]}
    prober = make(resources, dnsmasq.address, query="probe.test", type="NS", answers=expected)
    result = (await run_check(prober)).result
    assert result.message == 'answers lack "ns1.probe.test" (got no answer)'


async def test_conditions_read_rcode_body_and_count(dnsmasq, resources):
    up = make(
        resources,
        dnsmasq.address,
        type="AAAA",
        conditions=["[DNS_RCODE] == NOERROR", "[BODY] == fd00::1", "[ANSWER_COUNT] == 1"],
    )
    assert (await run_check(up)).result.status is Status.UP
    down = make(resources, dnsmasq.address, type="AAAA", conditions=["[BODY] == fd00::2"])
    result = (await run_check(down)).result
    assert result.status is Status.DOWN
    assert "fd00::1" in result.message


async def test_silent_udp_port_times_out(resources, silent_udp, open_fds):
    prober = make(resources, silent_udp, timeout="500ms")
    before = open_fds()
    run = await scenarios.timed_run(prober, within=2.0)
    assert run.straggler is None
    assert run.result.status is Status.DOWN
    assert run.result.message == "timeout after 500ms during query"
    # Cut off by a shorter timeout (as the scheduler does): the socket is closed all the same.
    await scenarios.cancelled(prober, 0.1)
    await scenarios.settle(open_fds, before)


async def test_silent_tcp_port_times_out(dnsmasq, resources, open_fds):
    tcp = partial(make, resources, dnsmasq.address, transport="tcp")
    await scenarios.assert_silent_port_times_out(dnsmasq.address, tcp, "query", open_fds=open_fds)


async def test_tcp_refused_and_outage(dnsmasq, resources, closed_port):
    error = await scenarios.failure(make(resources, f"127.0.0.1:{closed_port}", transport="tcp"))
    assert error.message == "connection refused"
    assert error.details["server"] == f"127.0.0.1:{closed_port}"
    tcp = partial(make, resources, dnsmasq.address, transport="tcp")
    await scenarios.assert_outage_and_recovery(
        dnsmasq.address,
        tcp,
        {"connection reset by peer", "connection closed by the server during query"},
    )


async def test_no_descriptor_leak_over_1000_checks(dnsmasq, resources, open_fds):
    prober = make(resources, dnsmasq.address)
    await scenarios.assert_no_descriptor_leak(prober, open_fds, rounds=1000)
    nx = make(resources, dnsmasq.address, query="nope.probe.test")
    await scenarios.assert_no_descriptor_leak(nx, open_fds, status=Status.DOWN, rounds=100)


def test_endpoint_and_the_system_server():
    spec = DNSSpec(name="d", query="www.probe.test", type="mx", server="[::1]:5353")
    assert spec.endpoint() == "www.probe.test MX @[::1]:5353"
    system = DNSProber(DNSSpec(name="d", query="www.probe.test"), SharedResources())
    assert system.endpoint == "www.probe.test A"
    # Only read, never asked: the machine's nameserver is not on loopback.
    host, port = system._where()
    assert port == 53 and host


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"type": "HINFO"}, "Input should be"),
        ({"server": "a b"}, "is not a DNS server"),
        ({"server": "127.0.0.1:99999"}, "the port must be 1-65535"),
        ({"rcode": "NOPE"}, 'unknown rcode "NOPE"'),
        ({"transport": "quic"}, "Input should be"),
        ({"answers": {"contain": ["not-an-ip"]}}, "is not an A record's address"),
        ({"answers": {"bogus": []}}, "Extra inputs are not permitted"),
        ({"query": "10.0.0.1"}, "ask its name with type: PTR"),
        ({"query": "a..b"}, "is not a DNS name"),
    ],
)
def test_bad_spec(keys, needle):
    keys.setdefault("query", "www.probe.test")
    with pytest.raises(ValidationError) as caught:
        DNSSpec(name="d", **keys)
    assert needle in str(caught.value)


def test_config_file_loads_and_errors_are_located(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "dns:\n"
        "  - name: www\n"
        "    query: www.example.com\n"
        "    type: A\n"
        '    server: "127.0.0.1:53"\n'
        "    transport: tcp\n"
        "    answers:\n"
        '      contain: ["10.0.0.1"]\n'
        '    conditions: ["[DNS_RCODE] == NOERROR", "[BODY] == pat(*10.0.0.1*)"]\n'
    )
    (spec,) = load_config(path, environ={}).probes
    assert isinstance(spec, DNSSpec) and spec.kind == "dns"
    path.write_text("dns:\n  - name: www\n    query: www.example.com\n    type: AXFR\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(f"{path}:4:11: dns[0].type:")
    path.write_text(
        "dns:\n  - name: www\n    query: w.example.com\n    conditions: ['[STATUS] == 200']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "[STATUS] is not a placeholder of dns probes" in str(caught.value)


async def test_the_whole_check_is_bounded(resources, silent_udp):
    # A long dnspython timeout still ends with the scheduler's.
    prober = make(resources, silent_udp, timeout="300ms")
    async with asyncio.timeout(2):
        result = (await run_check(prober)).result
    assert result.message == "timeout after 300ms during query"
