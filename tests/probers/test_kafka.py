"""The kafka prober against a Kafka wire-protocol responder (tests/support/kafka_peer.py), on
loopback: no Kafka broker can be installed here, so these test the prober's protocol use
(ApiVersions, Metadata, SASL PLAIN, TLS), its messages and its resource hygiene, not a real
broker's behaviour. The responder itself is checked against kafka-python's decoder."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import struct
import time
import warnings
from functools import partial
from pathlib import Path

import pytest
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError, ProbeError
from probe.probers.kafka import KafkaProber, KafkaSpec
from tests.support import probers as scenarios
from tests.support.cli import REPO, spawn_probe
from tests.support.kafka_peer import (
    API_METADATA,
    API_SASL_AUTHENTICATE,
    API_SASL_HANDSHAKE,
    API_VERSIONS,
    Broker,
    KafkaPeer,
    Topic,
    encode_metadata_body,
)
from tests.support.probers import Kind, server_tls_files

KAFKA = Kind(KafkaProber, KafkaSpec, {"name": "kafka", "driver": "kafka", "timeout": "2s"})
make = KAFKA.make
failure = KAFKA.failure

TOPICS = [
    Topic("orders", partitions=3),
    Topic("payments", partitions=2, leaderless=frozenset({1})),
    Topic("secret-stuff", error_code=29),  # TOPIC_AUTHORIZATION_FAILED
    Topic("__consumer_offsets", partitions=1, internal=True),
]
PASSWORD = "s3cret-Pw-1"


@pytest.fixture
async def peer():
    async with KafkaPeer(topics=TOPICS) as server:
        yield server


@pytest.fixture
async def sasl_peer():
    async with KafkaPeer(topics=TOPICS, users={"app": PASSWORD}) as server:
        yield server


# --- up ---------------------------------------------------------------------------------------


async def test_up_reads_every_topic(peer, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=peer.address).check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message == "metadata: 1 broker, 4 topics"
    assert outcome.details["brokers"] == 1
    assert outcome.details["topics"] == 4
    assert outcome.details["controller_id"] == 1
    assert outcome.details["cluster_id"] == "probe-test-cluster"
    assert ctx.facts == {"IP": "127.0.0.1", "BROKERS": 1, "TOPICS": 4}
    assert ctx.details["peer"] == peer.address
    # ApiVersions first (v0, as aiokafka negotiates), then Metadata at the version it chose.
    assert peer.requests == [(API_VERSIONS, 0), (API_METADATA, 5)]
    assert peer.client_ids == {"probe"}


async def test_up_with_topics_asks_only_for_them_and_never_creates(peer, resources):
    outcome = await KAFKA.check(resources, host=peer.address, topics=["orders"])
    assert outcome.ok, outcome.message
    assert outcome.message == "metadata: 1 broker, 1 topic; 1 topic as expected"
    assert outcome.details["topics_checked"] == 1


async def test_each_topic_reason(peer, resources):
    async def down(name: str) -> str:
        outcome = await KAFKA.check(resources, host=peer.address, topics=[name])
        assert not outcome.ok
        return outcome.message

    assert await down("nope") == 'topic "nope": does not exist'
    assert await down("payments") == 'topic "payments": partition 1 has no leader'
    assert await down("secret-stuff") == 'topic "secret-stuff": not authorized to describe it'
    both = await KAFKA.check(resources, host=peer.address, topics=["nope", "payments", "orders"])
    assert both.message == 'topic "nope": does not exist (and 1 more)'
    assert both.details["topic_problems"] == [
        'topic "nope": does not exist',
        'topic "payments": partition 1 has no leader',
    ]
    result = (await run_check(make(resources, host=peer.address, topics=["nope"]))).result
    assert result.status is Status.DOWN


async def test_a_broker_that_has_no_leader_for_a_whole_topic(resources):
    async with KafkaPeer(topics=[Topic("t", partitions=2, leaderless=frozenset({0, 1}))]) as p:
        outcome = await KAFKA.check(resources, host=p.address, topics=["t"])
    assert outcome.message == 'topic "t": partition 0 has no leader'


async def test_conditions_read_brokers_and_topics(resources):
    brokers = [Broker(1, "127.0.0.1", 9092), Broker(2, "127.0.0.1", 9093)]
    async with KafkaPeer(topics=TOPICS, brokers=brokers, controller_id=2) as p:
        up = make(resources, host=p.address, conditions=["[BROKERS] >= 2", "[TOPICS] == 4"])
        result = (await run_check(up)).result
        assert result.status is Status.UP, result.message
        assert result.details["controller_id"] == 2
        three = make(resources, host=p.address, conditions=["[BROKERS] >= 3"])
        result = (await run_check(three)).result
        assert result.status is Status.DOWN
        assert result.message == "condition failed: [BROKERS] (2) >= 3"


# --- down -------------------------------------------------------------------------------------


async def test_connection_refused(closed_port, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=f"127.0.0.1:{closed_port}").check(ctx)
    assert caught.value.message == "connection refused"
    assert ctx.phase == "connect"


async def test_name_that_does_not_resolve(monkeypatch, resources):
    scenarios.fail_name_resolution(monkeypatch)
    error = await failure(resources, host="kafka.invalid:9092")
    assert error.message == "name resolution failed for host kafka.invalid"


async def test_timeout_bounds_the_whole_check(resources, open_fds):
    """A peer that accepts and never answers: the scheduler's timeout, within its bound."""
    async with KafkaPeer(mode="silent") as silent:
        before = open_fds()
        prober = make(resources, host=silent.address, timeout="0.5s")
        run = await scenarios.timed_run(prober, within=0.5 + 0.5)
        assert run.straggler is None
        assert run.result.status is Status.DOWN
        assert run.result.message == "timeout after 500ms during ApiVersions"
        await scenarios.settle(open_fds, before)


async def test_its_own_timers_bound_a_check_run_without_the_scheduler(resources):
    async with KafkaPeer(mode="silent") as silent:
        started = time.monotonic()
        error = await failure(resources, host=silent.address, timeout="0.2s")
        assert time.monotonic() - started < 0.2 + 1.0 + 0.5  # the margin left to the scheduler
    assert error.message == "timed out during ApiVersions"


async def test_sasl_ok(sasl_peer, resources):
    outcome = await KAFKA.check(
        resources, host=sasl_peer.address, username="app", password=PASSWORD
    )
    assert outcome.ok, outcome.message
    assert sasl_peer.requests == [
        (API_VERSIONS, 0),
        (API_SASL_HANDSHAKE, 1),
        (API_SASL_AUTHENTICATE, 1),
        (API_METADATA, 5),
    ]


async def test_sasl_wrong_password_never_shows_it(sasl_peer, resources, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Pw-9"
    prober = make(resources, host=sasl_peer.address, username="app", password=wrong)
    error = await scenarios.failure(prober)
    assert error.message == (
        "SASL authentication failed: Authentication failed: Invalid username or password"
    )
    await scenarios.assert_password_hidden(prober, wrong)
    good = make(resources, host=sasl_peer.address, username="app", password=PASSWORD)
    assert (await good.check(CheckContext())).ok
    assert caplog.records  # aiokafka's debug lines were captured ...
    for record in caplog.records:  # ... and none holds either password
        assert wrong not in record.getMessage()
        assert PASSWORD not in record.getMessage()


async def test_sasl_mechanism_the_broker_does_not_enable(sasl_peer, resources):
    error = await failure(
        resources,
        host=sasl_peer.address,
        username="app",
        password=PASSWORD,
        sasl="SCRAM-SHA-256",
    )
    assert error.message == "SASL: the broker does not enable SCRAM-SHA-256"


async def test_sasl_listener_without_credentials(sasl_peer, resources):
    error = await failure(resources, host=sasl_peer.address)
    assert error.message == (
        "the broker closed the connection at the Metadata request"
        " (does the listener need SASL? set username and password)"
    )


async def test_credentials_on_a_listener_without_sasl(peer, resources):
    error = await failure(resources, host=peer.address, username="app", password=PASSWORD)
    assert error.message == "SASL: this listener does not take SASL (remove username and password?)"


@pytest.fixture
def tls_files(tmp_path: Path) -> scenarios.ServerTLS:
    return server_tls_files(tmp_path, "127.0.0.1")


async def test_tls_with_its_ca_and_with_another(tls_files, resources):
    context = _server_context(tls_files)
    async with KafkaPeer(topics=TOPICS, ssl_context=context) as tls_peer:
        outcome = await KAFKA.check(resources, host=tls_peer.address, ca=tls_files.ca_file)
        assert outcome.ok, outcome.message
        error = await failure(resources, host=tls_peer.address, ca=tls_files.other_ca_file)
        assert error.message == "TLS: certificate signed by an unknown authority"
        insecure = await KAFKA.check(resources, host=tls_peer.address, insecure=True)
        assert insecure.ok
        # A plaintext client on the TLS listener: the listener drops it.
        plain = await failure(resources, host=tls_peer.address, timeout="1s")
        assert plain.message.startswith("not a Kafka broker (it closed the connection")


async def test_sasl_over_tls(tls_files, resources):
    context = _server_context(tls_files)
    async with KafkaPeer(users={"app": PASSWORD}, ssl_context=context) as tls_peer:
        outcome = await KAFKA.check(
            resources,
            host=tls_peer.address,
            ca=tls_files.ca_file,
            username="app",
            password=PASSWORD,
        )
        assert outcome.ok, outcome.message


def _server_context(files: scenarios.ServerTLS) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context


async def test_a_ca_file_that_cannot_be_loaded(peer, bad_ca_file, resources):
    error = await failure(resources, host=peer.address, ca=bad_ca_file)
    assert error.message.startswith("TLS: cannot load the certificates:")


async def test_garbage_peer_is_not_a_kafka_broker(resources):
    async with KafkaPeer(mode="garbage") as garbage:
        run = await scenarios.timed_run(make(resources, host=garbage.address), within=1.5)
    assert run.result.status is Status.DOWN
    assert run.result.message == "not a Kafka broker (invalid reply to ApiVersions)"


async def test_http_server_is_not_a_kafka_broker(resources):
    async with KafkaPeer(mode="http") as http:
        error = await failure(resources, host=http.address)
    assert error.message == (
        "not a Kafka broker (it closed the connection without answering;"
        " a TLS listener needs ca or insecure)"
    )


async def test_peer_that_closes_at_once(resources):
    async with KafkaPeer(mode="close") as closing:
        run = await scenarios.timed_run(make(resources, host=closing.address), within=1.5)
    assert run.result.status is Status.DOWN
    assert run.result.message == (
        "not a Kafka broker (it closed the connection without answering;"
        " a TLS listener needs ca or insecure)"
    )


async def test_outage_and_recovery_through_a_proxy(peer, resources):
    cut = {
        "connection reset by peer",
        "not a Kafka broker (it closed the connection without answering;"
        " a TLS listener needs ca or insecure)",
    }
    await scenarios.assert_outage_and_recovery(
        peer.address, partial(make, resources), cut, timeout="1s"
    )


async def test_cancelled_check_leaves_no_socket(resources, open_fds):
    async with KafkaPeer(mode="silent") as silent:
        before = open_fds()
        ctx = await scenarios.cancelled(make(resources, host=silent.address), 0.2)
        assert ctx.phase == "ApiVersions"
        await scenarios.settle(open_fds, before + 1)


async def test_no_descriptor_leak_over_a_thousand_checks(peer, closed_port, resources, open_fds):
    good = make(resources, host=peer.address, topics=["orders"])
    refused = make(resources, host=f"127.0.0.1:{closed_port}")
    await scenarios.assert_no_leaks_mixing(open_fds, good, [refused], every=10, rounds=1000)


# --- the responder, checked by a second implementation -----------------------------------------


def _kafka_python_metadata():
    """kafka-python's MetadataResponse (its import warns of importlib.resources.read_text,
    which the test suite's warning filter turns into an error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.protocol.metadata import MetadataResponse

    return MetadataResponse


@pytest.mark.parametrize("version", range(13))
def test_the_responder_metadata_decodes_with_kafka_python(version):
    brokers = [Broker(1, "b1.example", 9092, rack="r1"), Broker(2, "b2.example", 9093)]
    topics = [
        Topic("orders", partitions=2, leaderless=frozenset({1})),
        Topic("gone", partitions=0, error_code=3),
    ]
    body = encode_metadata_body(version, brokers, topics, cluster_id="c-1", controller_id=2)
    decoded = _kafka_python_metadata()[version].decode(body)
    assert [(b.node_id, b.host, b.port) for b in decoded.brokers] == [
        (1, "b1.example", 9092),
        (2, "b2.example", 9093),
    ]
    if version >= 1:
        assert decoded.brokers[0].rack == "r1"
        assert decoded.controller_id == 2
    if version >= 2:
        assert decoded.cluster_id == "c-1"
    orders, gone = decoded.topics
    assert (orders.name, orders.error_code) == ("orders", 0)
    assert (gone.name, gone.error_code, len(gone.partitions)) == ("gone", 3, 0)
    leaders = [(p.partition_index, p.leader_id, p.error_code) for p in orders.partitions]
    assert leaders == [(0, 1, 0), (1, -1, 5)]
    if version >= 10:
        assert orders.topic_id == topics[0].topic_id


async def test_the_responder_answers_apiversions_v3_flexibly():
    """ApiVersions v3 (flexible body, header v0 reply), spoken by hand: aiokafka asks v0."""
    async with KafkaPeer() as p:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        client_id = b"t"
        body = b"\x02x" + b"\x021" + b"\x00"  # compact strings "x", "1"; no tags
        header = struct.pack(">hhih", 18, 3, 7, len(client_id)) + client_id + b"\x00"
        writer.write(struct.pack(">i", len(header) + len(body)) + header + body)
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        reply = await reader.readexactly(size)
        writer.close()
    correlation, error = struct.unpack_from(">ih", reply)
    assert (correlation, error) == (7, 0)
    assert reply[6] == 4 + 1  # a compact array of the four APIs
    assert reply[-1] == 0  # the body's empty tagged fields


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1:9092", "query": "x"}, "the kafka driver runs no query; use topics:"),
        ({"host": "127.0.0.1:9092", "database": "d"}, "has no databases; use topics:"),
        ({"host": "127.0.0.1:9092", "data": {"a": "b"}}, "reads no keys; use topics:"),
        ({"host": "127.0.0.1:9092", "password": "pw"}, "password needs a username"),
        ({"host": "127.0.0.1:9092", "username": "u"}, "username needs a password"),
        ({"host": "127.0.0.1:9092", "sasl": "plain"}, "sasl needs username and password"),
        ({"host": "127.0.0.1:9092", "sasl": "gssapi", "username": "u"}, "not a SASL mechanism"),
        ({"host": "127.0.0.1:9092", "topics": ["a b"]}, "is not a Kafka topic name"),
        ({"host": "127.0.0.1:9092", "topics": ["a", "a"]}, 'topic "a" is listed twice'),
        ({"host": "kafka://127.0.0.1:9092"}, "host: use host:port"),
        ({"host": "127.0.0.1"}, "missing port"),
        ({"dsn": "kafka://127.0.0.1:9092"}, "takes no dsn"),
        ({}, "host is required"),
    ],
)
def test_invalid_specs(keys, needle):
    scenarios.assert_config_error(KafkaSpec, keys, needle, name="k", driver="kafka")


def test_sasl_defaults_to_plain_and_takes_any_case():
    spec = KafkaSpec(name="k", driver="kafka", host="h:1", username="u", password="p")
    assert spec.mechanism == "PLAIN"
    spec = KafkaSpec(
        name="k", driver="kafka", host="h:1", username="u", password="p", sasl="SCRAM-SHA-512"
    )
    assert spec.mechanism == "SCRAM-SHA-512"
    assert KafkaSpec(name="k", driver="kafka", host="h:1").mechanism is None


def test_a_bad_key_is_a_located_config_error(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n  - name: k\n    driver: kafka\n    host: 127.0.0.1:9092\n    data: {a: b}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert f"{path}:2:5: client[0]: the kafka driver reads no keys" in str(problem)


def test_conditions_may_read_only_brokers_topics_and_the_common(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n  - name: k\n    driver: kafka\n    host: 127.0.0.1:9092\n"
        "    conditions: ['[VERSION] == 3']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "[VERSION]" in str(caught.value.problems[0])


def test_endpoint_is_the_host():
    spec = KafkaSpec(name="k", driver="kafka", host="127.0.0.1:9092")
    assert spec.endpoint() == "127.0.0.1:9092"
    with pytest.raises(ValidationError):
        KafkaSpec(name="k", driver="redis", host="127.0.0.1:9092")


async def test_probe_check_accepts_easeprobe_manual_example(tmp_path: Path):
    """EaseProbe's manual example passes `probe check` (the config check: nothing is
    dialled), its mTLS files standing where the example's /path/to/ would be."""
    files = server_tls_files(tmp_path, "localhost")
    (tmp_path / "probes.yaml").write_text(
        "client:\n"
        "  - name: Kafka Native Client (local)\n"
        '    driver: "kafka"\n'
        '    host: "localhost:9093"\n'
        "    # mTLS - Optional\n"
        f"    ca: {files.ca_file}\n"
        f"    cert: {files.cert}\n"
        f"    key: {files.key}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await spawn_probe("check", "-c", "probes.yaml", cwd=tmp_path, env=env)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
