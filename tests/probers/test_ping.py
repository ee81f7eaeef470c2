"""The ping prober against the kernel's own echo replies on loopback (127.0.0.1, ::1).

Raw sockets (`privileged: true`) need root, which the tests have here. What must not be
changed on the machine itself (a loopback that answers nothing, a ping_group_range that
admits root's group) is set inside a network namespace of the test's own
(tests/support/netns.py), where the checks run in a child process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.ping import PingProber, PingSpec
from tests.support.netns import in_new_netns
from tests.support.probers import (
    Kind,
    assert_no_descriptor_leak,
    cancelled,
    config_error_messages,
    fail_name_resolution,
)

PING = Kind(
    PingProber,
    PingSpec,
    {"name": "ping", "privileged": True, "timeout": "2s", "packet_interval": "20ms"},
)
make = PING.make

REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")


def unprivileged_allowed() -> bool:
    """Whether this machine's ping_group_range admits our group (Debian's default, "1 0",
    admits none)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except (OSError, ValueError):
        return False
    return low <= os.getgid() <= high


@needs_root
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost"])
async def test_loopback_answers(host, resources, ipv6_loopback):
    ctx = CheckContext()
    outcome = await make(resources, host=host, packet_interval="20ms").check(ctx)
    assert outcome.ok, outcome.message
    address = outcome.details["address"]
    assert address in ("127.0.0.1", "::1")
    assert outcome.message.startswith(f"3/3 replies from {address}, rtt min/avg/max ")
    assert outcome.details["mode"] == "raw"
    assert outcome.details["received"] == 3
    assert ctx.facts["PACKET_LOSS"] == 0
    assert ctx.facts["PACKETS_SENT"] == ctx.facts["PACKETS_RECEIVED"] == 3
    assert 0 < ctx.facts["RTT_MIN"] <= ctx.facts["RTT_AVG"] <= ctx.facts["RTT_MAX"]
    assert ctx.facts["IP"] == address
    assert ctx.phase == "ping"


@needs_root
async def test_conditions_read_the_readings(resources):
    prober = make(
        resources,
        host="127.0.0.1",
        count=2,
        packet_interval="20ms",
        conditions=["[PACKET_LOSS] == 0", "[RTT_MAX] < 1000", "[PACKETS_RECEIVED] == 2"],
    )
    up = (await run_check(prober)).result
    assert up.status is Status.UP, up.message
    prober = make(resources, host="127.0.0.1", count=1, conditions=["[PACKETS_SENT] > 1"])
    down = (await run_check(prober)).result
    assert down.status is Status.DOWN
    assert "[PACKETS_SENT] (1) > 1" in down.message


async def test_unprivileged_on_this_machine(resources):
    """Datagram ICMP works where ping_group_range admits our group, and otherwise says
    which setting to change (never a Python error)."""
    prober = make(resources, host="127.0.0.1", privileged=False, packet_interval="20ms")
    if unprivileged_allowed():
        outcome = await prober.check(CheckContext())
        assert outcome.ok and outcome.details["mode"] == "datagram"
        return
    error = await PING.failure(resources, host="127.0.0.1", privileged=False)
    assert error.message == (
        "unprivileged ping is not allowed here (net.ipv4.ping_group_range excludes this "
        "group); use privileged: true or widen the range"
    )
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == error.message


@pytest.mark.slow
def test_unprivileged_where_the_kernel_allows_it():
    results = in_new_netns("unprivileged")
    assert [r["status"] for r in results] == ["up", "up"], results
    assert [r["details"]["mode"] for r in results] == ["datagram", "datagram"]
    assert results[1]["message"].startswith("3/3 replies from ::1")


@pytest.mark.slow
def test_silence_is_down_within_the_timeout():
    """Loopback silenced (the namespace's echo_ignore_all): every request lost, said as
    such before the 1s timeout strikes."""
    v4, v6 = in_new_netns("silent")
    assert v4["status"] == v6["status"] == "down"
    assert v4["message"] == "no reply from 127.0.0.123 (2 sent)"
    assert v6["message"] == "no reply from ::1 (2 sent)"
    assert v4["details"]["loss"] == 100.0


@pytest.mark.slow
def test_partial_loss_against_the_lost_threshold():
    """One of two requests unanswered: down with `lost: 0` (EaseProbe's default), up with
    `lost: 0.5` (EaseProbe: down only when the loss is *more* than lost x 100%)."""
    strict, tolerant = in_new_netns("partial")
    assert strict["status"] == "down"
    assert strict["message"].startswith(
        "1 of 2 packets lost (50%), more than lost: 0 allows; rtt min/avg/max "
    )
    assert tolerant["status"] == "up"
    assert tolerant["message"].endswith("ms (50% lost, within lost: 0.5)")


@needs_root
async def test_cancelled_check_leaves_no_socket(resources, open_fds):
    prober = make(resources, host="127.0.0.1", count=3, packet_interval="1s", timeout="5s")
    before = open_fds()
    ctx = await cancelled(prober, after=0.3)
    assert ctx.phase == "ping"
    await asyncio.sleep(0)
    assert open_fds() == before


@needs_root
async def test_no_descriptor_leak(resources, open_fds):
    prober = make(resources, host="127.0.0.1", count=1)
    await assert_no_descriptor_leak(prober, open_fds, rounds=1000)


async def test_unresolvable_name_is_down(resources, monkeypatch):
    fail_name_resolution(monkeypatch)  # nothing is asked of a DNS server
    error = await PING.failure(resources, host="nothing.invalid")
    assert error.message == "name resolution failed for host nothing.invalid"


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1:80"}, "ping takes a host without a port"),
        ({"host": "http://x/"}, "is not a host name or an IP address"),
        ({"host": "127.0.0.1", "lost": 1.5}, "less than or equal to 1"),
        ({"host": "127.0.0.1", "count": 0}, "greater than or equal to 1"),
        ({"host": "127.0.0.1", "packet_interval": "1ms"}, "packet_interval must be at least"),
        ({"host": "127.0.0.1", "count": 10, "timeout": "5s"}, "leaving no time for replies"),
    ],
)
def test_invalid_keys(keys, needle):
    assert needle in config_error_messages(PingSpec, name="p", **keys)


def test_bad_key_is_a_located_config_error(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text("ping:\n  - name: p\n    host: 127.0.0.1\n    lost: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "probes.yaml:4:" in str(caught.value)
    assert "lost" in str(caught.value)


@pytest.mark.slow
def test_probe_check_accepts_the_easeprobe_manual_example(tmp_path):
    """The Manual's ping section, as written there: loaded, and `probe check` says OK."""
    path = tmp_path / "probes.yaml"
    path.write_text(
        """
ping:
  - name: Localhost
    host: 127.0.0.1
    count: 5 # number of packets to send, default: 3
    lost: 0.2 # 20% lost percentage threshold, down if the loss is greater, default: 0
    privileged: true # if true, ping with icmp, otherwise udp, default: false
    # Optional
    timeout: 10s # default is 30 seconds
    interval: 2m # default is 60 seconds
"""
    )
    config = load_config(path)
    (spec,) = config.probes
    assert isinstance(spec, PingSpec)
    assert (spec.host, spec.count, spec.lost, spec.privileged) == ("127.0.0.1", 5, 0.2, True)
    assert spec.endpoint() == "127.0.0.1"
    done = subprocess.run(
        [sys.executable, "-m", "probe", "check", "-c", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "probes: 1 (ping: 1)" in done.stdout
