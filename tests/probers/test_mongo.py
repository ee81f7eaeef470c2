"""The mongo prober: real PyMongo over real sockets against MockupDB, MongoDB's wire-protocol
test server (tests/support/mongo_peer.py), which answers `hello`, `ping`, SCRAM-SHA-256 (the
proof checked against the password), X.509 `authenticate` and `find`.

What this does NOT test, because no MongoDB server can be installed here: a real mongod's
replies (its hello fields, its error texts), replica-set discovery and failover, query
operators. What it does test is everything on our side of the wire: the phases, every failure
reason, TLS with server and client certificates, secrets kept out of the output, timeouts and
descriptors.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers.mongo import MongoProber, MongoSpec
from tests.support import probers as scenarios
from tests.support.cli import REPO, spawn_probe
from tests.support.mongo_peer import MongoPeer
from tests.support.probers import Kind, server_tls_files

MONGO = Kind(MongoProber, MongoSpec, {"name": "db", "driver": "mongo", "timeout": "2s"})
make = MONGO.make
failure = MONGO.failure
PASSWORD = "s3cret-Pa55"
USERS = {"app": PASSWORD}
DOCUMENTS = {"shop:orders": [{"_id": 1, "state": "open", "n": 3}], "shop:empty": []}


@pytest.fixture(scope="module")
def peer() -> Iterator[MongoPeer]:
    with MongoPeer(users=USERS, documents=DOCUMENTS, forbidden=["shop:secret"]) as server:
        yield server


async def test_up_with_ping(peer, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=peer.address).check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message == "mongodb ok"
    assert outcome.details["wire_version"] == 21
    assert "ping" in peer.commands


async def test_data_found_and_not_found(peer, resources):
    found = await MONGO.check(
        resources, host=peer.address, data={"shop:orders": '{"state": "open", "n": 3}'}
    )
    assert found.ok, found.message
    assert found.message == "mongodb ok; 1 collection as expected"
    assert peer.filters[-1] == {"state": "open", "n": 3}  # the filter went out as written
    missing = await MONGO.check(
        resources, host=peer.address, data={"shop:orders": '{"state": "closed"}'}
    )
    assert not missing.ok
    assert missing.message == 'collection "shop.orders": no document matches {"state": "closed"}'
    # A blank filter asks for any document; Extended JSON ($numberLong) is parsed.
    empty = await MONGO.check(
        resources,
        host=peer.address,
        data={"shop:empty": "", "shop:orders": '{"n": {"$numberLong": "3"}}'},
    )
    assert empty.message == 'collection "shop.empty": no document matches {}'
    assert peer.filters[-1] == {"n": 3}


async def test_scram_login_and_wrong_password(peer, resources):
    good = await MONGO.check(resources, host=peer.address, username="app", password=PASSWORD)
    assert good.ok, good.message
    assert "saslContinue" in peer.commands  # the proof was checked by the peer
    wrong = make(resources, host=peer.address, username="app", password="not-" + PASSWORD)
    await scenarios.assert_authentication_failure(wrong, "app", "not-" + PASSWORD)
    await scenarios.assert_password_hidden(wrong, "not-" + PASSWORD)


async def test_credentials_in_the_dsn(peer, resources):
    dsn = f"mongodb://app:{PASSWORD}@{peer.address}/?authSource=admin"
    assert (await MONGO.check(resources, dsn=dsn)).ok
    wrong = make(resources, dsn=f"mongodb://app:nope-{PASSWORD}@{peer.address}/")
    await scenarios.assert_authentication_failure(wrong, "app", f"nope-{PASSWORD}")
    assert wrong.endpoint == f"mongodb://{peer.address}/"


async def test_a_command_error_is_reported(peer, resources):
    error = await failure(resources, host=peer.address, data={"shop:secret": "{}"})
    assert error.message == "not authorized: not authorized on shop to execute command"


async def test_connection_refused_at_once(closed_port, resources):
    run = await scenarios.timed_run(
        make(resources, host=f"127.0.0.1:{closed_port}", timeout="5s"), within=1.0
    )
    assert run.result.message == "connection refused"


async def test_port_that_accepts_and_never_speaks(peer, resources, open_fds):
    silent = scenarios.assert_silent_port_times_out
    await silent(peer.address, partial(make, resources), "connect", open_fds=open_fds)


async def test_not_a_mongodb_server(raw_server, resources):
    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await raw_server(http)
    run = await scenarios.timed_run(make(resources, host=server.address, timeout="3s"), within=2)
    assert run.result.status is Status.DOWN
    assert run.result.message.startswith("not a MongoDB server (Message length"), run.result.message


async def test_name_that_does_not_resolve(resources):
    error = await failure(resources, host="mongo.invalid:27017")
    assert error.message == "name resolution failed for host mongo.invalid"


async def test_outage_and_recovery_through_a_proxy(peer, resources):
    cut = {"connection reset by peer", "the server closed the connection"}
    await scenarios.assert_outage_and_recovery(peer.address, partial(make, resources), cut)


async def test_tls_server_and_client_certificates(tmp_path: Path, resources):
    files = server_tls_files(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    context.load_verify_locations(files.ca_file)  # the client's certificate: same test CA
    context.verify_mode = ssl.CERT_REQUIRED
    with MongoPeer(tls=context) as peer:
        # A client certificate and key in two files, as EaseProbe's cert/key: X.509 login.
        outcome = await MONGO.check(
            resources, host=peer.address, ca=files.ca_file, cert=files.cert, key=files.key
        )
        assert outcome.ok, outcome.message
        assert peer.x509_logins >= 1
        untrusted = await failure(
            resources, host=peer.address, ca=files.other_ca_file, cert=files.cert, key=files.key
        )
        assert untrusted.message.startswith("TLS: "), untrusted.message
        assert "certificate" in untrusted.message


async def test_cancelled_check_leaves_no_socket(peer, resources, open_fds):
    async with scenarios.proxy_to(peer.address) as proxy:
        proxy.stall()
        before = open_fds()
        ctx = await scenarios.cancelled(make(resources, host=proxy.address), 0.2)
        assert ctx.phase == "connect"
        proxy.restore()
        await scenarios.settle(open_fds, before + 1)


async def test_no_descriptor_leak_over_a_thousand_checks(peer, closed_port, resources, open_fds):
    good = make(resources, host=peer.address, data={"shop:orders": '{"state": "open"}'})
    refused = make(resources, host=f"127.0.0.1:{closed_port}")
    await scenarios.assert_no_leaks_mixing(open_fds, good, [refused], every=10, rounds=1000)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1:27017", "query": "db.x.find()"}, "the mongo driver runs no query"),
        ({"host": "127.0.0.1:27017", "password": "pw"}, "password needs a username"),
        ({"host": "127.0.0.1:27017", "username": "u"}, "username needs a password"),
        ({"host": "127.0.0.1:27017", "data": {"orders": "{}"}}, 'is not "database:collection"'),
        ({"host": "127.0.0.1:27017", "data": {"a:b:c": "{}"}}, 'is not "database:collection"'),
        ({"host": "127.0.0.1:27017", "data": {":c": "{}"}}, "needs a database and a collection"),
        ({"host": "127.0.0.1:27017", "data": {"a.b:c": "{}"}}, "a database name cannot hold"),
        ({"host": "127.0.0.1:27017", "data": {"a:c": "{x: }"}}, "not valid (Extended) JSON"),
        ({"host": "127.0.0.1:27017", "data": {"a:c": "[1]"}}, "must be a JSON object"),
        ({"dsn": "mysql://127.0.0.1"}, "dsn must start with mongodb://, mongodb+srv://"),
        ({"dsn": "mongodb://u:pw@127.0.0.1/?tls=maybe"}, "dsn: "),
        ({"dsn": "mongodb://u:pw@127.0.0.1/", "username": "v", "password": "x"}, "not both"),
        ({"host": "127.0.0.1"}, "missing port"),
        ({}, "host is required"),
    ],
)
def test_invalid_specs(keys, needle):
    scenarios.assert_config_error(MongoSpec, keys, needle, name="m", driver="mongo")


def test_a_dsn_error_never_repeats_the_password():
    message = scenarios.config_error_messages(
        MongoSpec, name="m", driver="mongo", dsn="mongodb://u:Hidden99@127.0.0.1/?tls=maybe"
    )
    assert "Hidden99" not in message


def test_a_bad_filter_is_a_located_config_error(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n"
        "  - name: db\n"
        "    driver: mongo\n"
        "    host: 127.0.0.1:27017\n"
        "    data:\n"
        "      'shop:orders': '{\"state\": }'\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert f"{path}:2:5: client[0]: " in str(problem)
    assert "not valid (Extended) JSON" in str(problem)


def test_endpoint_hides_the_password():
    spec = MongoSpec(
        name="m", driver="mongo", dsn="mongodb://u:pw9@db1:27017,db2:27017/?replicaSet=rs"
    )
    assert "pw9" not in spec.endpoint()
    assert MongoSpec(name="m", driver="mongo", host="127.0.0.1:27017").endpoint() == (
        "127.0.0.1:27017"
    )


async def test_probe_check_accepts_easeprobe_manual_example(tmp_path: Path):
    (tmp_path / "probes.yaml").write_text(
        "client:\n"
        "  - name: MongoDB Native Client (local)\n"
        '    driver: "mongo"\n'
        '    host: "localhost:27017"\n'
        '    username: "admin"\n'
        '    password: "abc123"\n'
        "    timeout: 5s\n"
        "    data: # Optional, find the specific value in the table\n"
        '      #  Usage: "database:collection" : "{JSON}"\n'
        '      "test:employee" : \'{"name":"Hao Chen"}\' # find the employee named "Hao Chen"\n'
        '      "test:product" : \'{"name":"EaseProbe"}\' # find the product named "EaseProbe"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await spawn_probe("check", "-c", "probes.yaml", cwd=tmp_path, env=env)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()


async def test_down_result_from_the_scheduler(peer, resources):
    prober = make(resources, host=peer.address, data={"shop:orders": '{"state": "gone"}'})
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message.startswith('collection "shop.orders"')
