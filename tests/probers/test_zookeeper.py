"""The zookeeper prober against a real ZooKeeper (Debian's package), started privately for this
module on free loopback ports: a plain client port and a TLS one (tests/support/zookeeper.py).
The znodes the checks read are created here; outages and silent ports go through a TCPProxy.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.zookeeper import ZooKeeperProber, ZooKeeperSpec
from tests.support import probers as scenarios
from tests.support.probers import Kind, assert_no_secret, config_error_messages
from tests.support.zookeeper import PrivateZooKeeper

PASSWORD = "zk-" + secrets.token_hex(8)
WRONG = "wrong-" + secrets.token_hex(8)

ZK = Kind(ZooKeeperProber, ZooKeeperSpec, {"name": "zk", "driver": "zookeeper", "timeout": "2s"})
make, failure = ZK.make, ZK.failure
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateZooKeeper]:
    with PrivateZooKeeper(tmp_path_factory.mktemp("zookeeper"), tls=True) as server:
        server.create("/probe", "")
        server.create("/probe/status", "ok")
        server.create("/probe/empty", "")
        server.create("/probe/secret", "hidden", digest=("app", PASSWORD))
        yield server


async def test_session_and_root_read_is_up(zookeeper, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=zookeeper.address).check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message == f"session opened on {zookeeper.address}; / read"
    assert outcome.details["peer"] == zookeeper.address
    assert outcome.details["session_timeout_ms"] > 0
    assert ctx.phase == "close"


async def test_data_as_expected_and_conditions(zookeeper, resources):
    data = {"/probe/status": "ok", "/probe/empty": ""}
    prober = make(
        resources,
        host=zookeeper.address,
        data=data,
        conditions=['[VALUE]."/probe/status" == ok'],
    )
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    assert result.message.endswith("; 2 znodes as expected")


async def test_wrong_value_and_missing_znode_are_down(zookeeper, resources):
    outcome = await make(resources, host=zookeeper.address, data={"/probe/status": "no"}).check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == 'znode "/probe/status": expected "no", got "ok"'
    outcome = await make(
        resources, host=zookeeper.address, data={"/probe/missing": "x", "/probe/status": "ok"}
    ).check(CheckContext())
    assert not outcome.ok
    assert outcome.message == 'znode "/probe/missing" does not exist'


async def test_digest_identity(zookeeper, resources):
    keys = {"host": zookeeper.address, "data": {"/probe/secret": "hidden"}, "username": "app"}
    assert (await make(resources, **keys, password=PASSWORD).check(CheckContext())).ok
    wrong = make(resources, **keys, password=WRONG)
    result = (await run_check(wrong)).result
    assert result.status is Status.DOWN
    assert result.message == (
        'not allowed to read znode "/probe/secret" as user "app" '
        "(wrong password, or the ACL denies it)"
    )
    assert_no_secret(result, wrong, WRONG, PASSWORD)
    assert WRONG not in repr(wrong.spec)
    anonymous = await make(resources, host=zookeeper.address, data={"/probe/secret": "x"}).check(
        CheckContext()
    )
    assert anonymous.message == 'not allowed to read znode "/probe/secret" (its ACL)'


async def test_tls_port(zookeeper, resources):
    outcome = await make(resources, host=zookeeper.tls_address, ca=zookeeper.ca_file).check(
        CheckContext()
    )
    assert outcome.ok, outcome.message
    error = await failure(resources, host=zookeeper.tls_address, ca=zookeeper.other_ca_file)
    assert error.message.startswith("TLS: ")
    assert (
        await make(resources, host=zookeeper.tls_address, insecure=True).check(CheckContext())
    ).ok


async def test_refused(closed_port, resources):
    error = await failure(resources, host=f"127.0.0.1:{closed_port}")
    assert error.message == "connection refused"


async def test_outage_and_recovery(zookeeper, resources):
    down = {
        "connection reset by peer",
        "the server closed the connection (is it serving requests?)",
    }
    await scenarios.assert_outage_and_recovery(zookeeper.address, partial(make, resources), down)


async def test_silent_port_times_out(zookeeper, resources, open_fds):
    await scenarios.assert_silent_port_times_out(
        zookeeper.address, partial(make, resources), "session", open_fds=open_fds
    )


async def test_not_a_zookeeper_server(raw_server, resources):
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = await raw_server(http)
    error = await failure(resources, host=server.address)
    assert error.message == "not a ZooKeeper server (invalid reply)"


async def test_no_descriptor_leak(zookeeper, resources, open_fds):
    prober = make(resources, host=zookeeper.address, data={"/probe/status": "ok"})
    await scenarios.assert_no_descriptor_leak(prober, open_fds, rounds=1000, pause=0.1)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"data": {"probe": "x"}}, '"probe" is not a znode path'),
        ({"username": "app"}, "username and password go together"),
        ({"query": "x"}, "the zookeeper driver runs no query"),
        ({"host": "zk://127.0.0.1:2181"}, "host: use host:port"),
    ],
)
def test_invalid_keys(keys, needle):
    keys.setdefault("host", "127.0.0.1:2181")
    assert needle in config_error_messages(ZooKeeperSpec, name="z", driver="zookeeper", **keys)


def test_bad_key_is_a_located_config_error(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n  - name: z\n    driver: zookeeper\n    host: 127.0.0.1:2181\n"
        "    data:\n      relative/path: x\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:6:7: client[0].data:" in str(caught.value)
    assert "is not a znode path" in str(caught.value)


@pytest.mark.slow
def test_probe_check_accepts_the_easeprobe_manual_example(tmp_path):
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("placeholder\n")
    path = tmp_path / "probes.yaml"
    path.write_text(
        """
client:
  - name: Zookeeper Native Client
    driver: "zookeeper"
    host: "localhost:2181"
    timeout: 5s
    data:
      "/path/to/key": "value"
    # mTLS
    ca: ca.crt
    cert: client.crt
    key: client.key
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "probe", "check", "-c", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "probes: 1 (zookeeper: 1)" in done.stdout
