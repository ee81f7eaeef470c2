"""The memcache prober against a real memcached: Debian's binary, a private instance on a free
loopback port per test module (tests/support/memcached_server.py), keys set by the test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError, ProbeError
from probe.probers.memcache import MemcacheProber, MemcacheSpec
from tests.support import probers as scenarios
from tests.support.cli import REPO, spawn_probe
from tests.support.memcached_server import PrivateMemcached
from tests.support.probers import Kind

MEMCACHE = Kind(MemcacheProber, MemcacheSpec, {"name": "mc", "driver": "memcache", "timeout": "2s"})
make = MEMCACHE.make
failure = MEMCACHE.failure


@pytest.fixture(scope="module")
def memcached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMemcached]:
    with PrivateMemcached(tmp_path_factory.mktemp("memcached")) as server:
        yield server


@pytest.fixture(scope="module")
def keys(memcached: PrivateMemcached) -> dict[str, str]:
    """Keys of this module (a unique prefix): "mode" holds "active", "flagged" holds "x" with
    client flags set (as other clients store serialized values), "missing" is never set."""
    prefix = f"probe:{uuid.uuid4().hex[:8]}:"
    names = {name: prefix + name for name in ("mode", "flagged", "missing", "empty")}
    memcached.set(names["mode"], "active")
    memcached.set(names["flagged"], "x", flags=4)
    memcached.set(names["empty"], "")
    return names


async def test_up_with_the_version(memcached, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=memcached.address).check(ctx)
    assert outcome.ok, outcome.message
    version = outcome.details["version"]
    assert outcome.message == f"memcached {version}"
    assert version[0].isdigit()
    assert ctx.facts["VERSION"] == version
    assert ctx.facts["IP"] == "127.0.0.1"


async def test_data_that_matches(memcached, keys, resources):
    data = {keys["mode"]: "active", keys["flagged"]: "x", keys["empty"]: ""}
    outcome = await MEMCACHE.check(resources, host=memcached.address, data=data)
    assert outcome.ok, outcome.message
    assert outcome.message.endswith("; 3 keys as expected")
    assert outcome.details["keys_checked"] == 3


async def test_wrong_value_and_missing_key(memcached, keys, resources):
    mode, missing = keys["mode"], keys["missing"]
    wrong = await MEMCACHE.check(resources, host=memcached.address, data={mode: "passive"})
    assert not wrong.ok
    assert wrong.message == f'key "{mode}": expected "passive", got "active"'
    gone = await MEMCACHE.check(resources, host=memcached.address, data={missing: "v"})
    assert gone.message == f'key "{missing}": expected "v", got nothing'
    # EaseProbe: a blank expected value asks only that the key exist.
    exists = await MEMCACHE.check(resources, host=memcached.address, data={missing: " "})
    assert exists.message == f'key "{missing}": expected to exist, got nothing'
    both = await MEMCACHE.check(
        resources, host=memcached.address, data={mode: "passive", missing: "v"}
    )
    assert both.message == f'key "{mode}": expected "passive", got "active" (and 1 more)'
    assert both.details["mismatches"] == 2
    result = (await run_check(make(resources, host=memcached.address, data={mode: "no"}))).result
    assert result.status is Status.DOWN


async def test_conditions_read_version_and_values(memcached, keys, resources):
    mode, missing = keys["mode"], keys["missing"]
    prober = make(
        resources,
        host=memcached.address,
        data={mode: "active"},
        conditions=[f"[VALUE].{mode} == active", "len([VERSION]) > 2"],
    )
    assert (await run_check(prober)).result.status is Status.UP
    down = make(
        resources, host=memcached.address, data={mode: "active"}, conditions=["[VERSION] == 0.1"]
    )
    assert (await run_check(down)).result.status is Status.DOWN
    absent = make(
        resources,
        host=memcached.address,
        data={missing: ""},
        conditions=[f"has([VALUE].{missing}) == false"],
    )
    result = (await run_check(absent)).result
    assert result.status is Status.DOWN  # data's own comparison still applies
    assert result.message == f'key "{missing}": expected to exist, got nothing'


async def test_connection_refused(closed_port, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=f"127.0.0.1:{closed_port}").check(ctx)
    assert caught.value.message == "connection refused"
    assert ctx.phase == "connect"


async def test_outage_and_recovery_through_a_proxy(memcached, resources):
    cut = {"connection reset by peer", "the server closed the connection"}
    await scenarios.assert_outage_and_recovery(
        memcached.address, partial(make, resources), cut, timeout="1s"
    )


async def test_port_that_accepts_and_never_speaks(memcached, keys, resources, open_fds):
    silent = scenarios.assert_silent_port_times_out
    await silent(memcached.address, partial(make, resources), "version", open_fds=open_fds)


async def test_server_that_closes_mid_line_ends_the_check(raw_server, resources):
    """aiomcache spins forever here (see probers/memcache.py): the check must end, at once."""

    async def half(reader, writer):
        await reader.read(100)
        writer.write(b"VERS")
        await writer.drain()
        writer.close()

    server = await raw_server(half)
    run = await scenarios.timed_run(make(resources, host=server.address), within=1.5)
    assert run.result.message == "the server closed the connection"


async def test_not_a_memcached_server(raw_server, resources):
    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await raw_server(http)
    error = await failure(resources, host=server.address)
    assert error.message == "not a memcached server (unexpected reply to version)"

    async def error_reply(reader, writer):
        await reader.read(100)
        writer.write(b"SERVER_ERROR out of memory\r\n")
        await writer.drain()

    server = await raw_server(error_reply)
    assert (await failure(resources, host=server.address)).message == (
        "memcached error: out of memory"
    )


async def test_name_that_does_not_resolve(monkeypatch, resources):
    scenarios.fail_name_resolution(monkeypatch)
    error = await failure(resources, host="cache.invalid:11211")
    assert error.message == "name resolution failed for host cache.invalid"


async def test_cancelled_check_leaves_no_socket(memcached, resources, open_fds):
    async with scenarios.proxy_to(memcached.address) as proxy:
        proxy.stall()
        before = open_fds()
        ctx = await scenarios.cancelled(make(resources, host=proxy.address), 0.2)
        assert ctx.phase == "version"
        proxy.restore()
        await scenarios.settle(open_fds, before + 1)  # the proxy may still hold its side


async def test_no_descriptor_leak_over_a_thousand_checks(
    memcached, keys, closed_port, resources, open_fds
):
    good = make(resources, host=memcached.address, data={keys["mode"]: "active"})
    refused = make(resources, host=f"127.0.0.1:{closed_port}")
    await scenarios.assert_no_leaks_mixing(open_fds, good, [refused], every=10, rounds=1000)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1:11211", "query": "stats"}, "the memcache driver runs no query"),
        ({"host": "127.0.0.1:11211", "password": "pw"}, "has no authentication"),
        ({"host": "127.0.0.1:11211", "username": "u"}, "has no authentication"),
        ({"host": "127.0.0.1:11211", "insecure": True}, "has no TLS"),
        ({"host": "127.0.0.1:11211", "database": "1"}, "has no databases"),
        ({"host": "127.0.0.1:11211", "data": {"a b": "x"}}, "whitespace or control"),
        ({"host": "127.0.0.1:11211", "data": {"": "x"}}, 'key "" is empty'),
        ({"host": "127.0.0.1:11211", "data": {"k" * 251: "x"}}, "longer than memcached's 250"),
        ({"host": "127.0.0.1"}, "missing port"),
        ({"dsn": "memcache://127.0.0.1:11211"}, "takes no dsn"),
        ({}, "host is required"),
    ],
)
def test_invalid_specs(keys, needle):
    scenarios.assert_config_error(MemcacheSpec, keys, needle, name="c", driver="memcache")


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("    tls: true\n", ':6:5: client[0].tls: unknown key "tls"'),
        ("    password: pw\n", ":2:5: client[0]: the memcache driver has no authentication"),
        ("    conditions: ['[VALUE].app:mod == x']\n", ":6:18: client[0].conditions[0]:"),
    ],
)
def test_a_bad_key_is_a_located_config_error(tmp_path: Path, line: str, where: str):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n"
        "  - name: cache\n"
        "    driver: memcache\n"
        "    host: 127.0.0.1:11211\n"
        "    data: {app:mode: active}\n" + line
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert f"{path}{where}" in str(problem)
    assert "pw" not in str(problem).replace("password", "")


def test_endpoint_is_the_host():
    spec = MemcacheSpec(name="c", driver="memcache", host="127.0.0.1:11211")
    assert spec.endpoint() == "127.0.0.1:11211"
    with pytest.raises(ValidationError):
        MemcacheSpec(name="c", driver="redis", host="127.0.0.1:11211")


async def test_probe_check_accepts_easeprobe_manual_example(tmp_path: Path):
    (tmp_path / "probes.yaml").write_text(
        "client:\n"
        "  - name: Memcache Native Client (local)\n"
        '    driver: "memcache"\n'
        '    host: "localhost:11211"\n'
        "    timeout: 5s\n"
        "    data:         # Optional\n"
        "      key: val    # Check that key exists and its value is val\n"
        '      "namespace:key": val # Namespaced keys enclosed in "\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await spawn_probe("check", "-c", "probes.yaml", cwd=tmp_path, env=env)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
