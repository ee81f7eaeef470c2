"""The mqtt prober against real brokers.

The shared Mosquitto (PROBE_TEST_MQTT, default 127.0.0.1:1883) allows anonymous clients, so
it serves the healthy round trips, the outage (through a proxy the test controls) and the
leak count. Wrong passwords, ACLs and TLS need a broker configured otherwise: private
Mosquitto instances, started here on free loopback ports and terminated at the end.

There is no "unknown database" for MQTT; its counterpart, a topic the user may not use,
is the ACL case (the message never comes back).
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers._client import Target as _Target
from probe.probers.base import SharedResources
from probe.probers.mqtt import MQTTProber, MQTTSpec, _describe, _failed, _reason
from tests.support import probers as scenarios
from tests.support.mosquitto import PrivateMosquitto
from tests.support.probers import server_tls_files
from tests.support.services import require_service

PASSWORD = "mq-" + secrets.token_hex(8)
LIMITED_PASSWORD = "lim-" + secrets.token_hex(8)
ACL = """\
user probe
topic readwrite probe/#
topic readwrite custom/#

user limited
topic read probe/#
"""


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_broker() -> str:
    parts = urlsplit(require_service("mqtt"))
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """Passwords required (`allow_anonymous false`) and an ACL."""
    users = {"probe": PASSWORD, "limited": LIMITED_PASSWORD}
    with PrivateMosquitto(tmp_path_factory.mktemp("mqtt-auth"), users=users, acl=ACL) as broker:
        yield broker


@dataclass
class TLSBroker:
    broker: PrivateMosquitto
    ca_file: Path
    other_ca_file: Path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBroker]:
    """A TLS listener with a certificate for 127.0.0.1 only, from a CA of our own."""
    directory = tmp_path_factory.mktemp("mqtt-tls")
    files = server_tls_files(directory, "127.0.0.1")
    users = {"probe": PASSWORD}
    with PrivateMosquitto(directory / "broker", users=users, tls=(files.cert, files.key)) as broker:
        yield TLSBroker(broker, files.ca_file, files.other_ca_file)


@pytest.fixture
async def probers():
    """Probers made by a test, closed (their unfinished connects awaited) at its end."""
    made: list[MQTTProber] = []
    yield made
    for prober in made:
        await prober.aclose()


def make(resources: SharedResources, made: list[MQTTProber], **keys: object) -> MQTTProber:
    keys.setdefault("timeout", "2s")
    keys.setdefault("name", "bus")
    prober = MQTTProber(MQTTSpec(driver="mqtt", **keys), resources)
    made.append(prober)
    return prober


async def failure(resources, made, **keys: object) -> ProbeError:
    return await scenarios.failure(make(resources, made, **keys))


# --- healthy round trips --------------------------------------------------------------------


async def test_round_trip_through_the_shared_broker(shared_broker, resources, probers):
    ctx = CheckContext()
    outcome = await make(resources, probers, host=shared_broker).check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message.startswith("published to probe/bus and received it back in ")
    assert outcome.details["topic"] == "probe/bus"
    assert outcome.details["qos"] == 1
    assert outcome.details["round_trip_ms"] >= 0
    assert ctx.phase == "waiting for the published message"


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_every_qos(shared_broker, resources, probers, qos):
    outcome = await make(
        resources, probers, dsn=f"mqtt://{shared_broker}", qos=qos, topic="probe/tests/qos"
    ).check(CheckContext())
    assert outcome.ok
    assert outcome.details["qos"] == qos
    assert outcome.details["topic"] == "probe/tests/qos"


async def test_other_messages_on_the_topic_are_skipped(shared_broker, resources, probers):
    host, port = shared_broker.rsplit(":", 1)
    topic = f"probe/tests/busy-{secrets.token_hex(4)}"
    async with aiomqtt.Client(host, int(port)) as noisy:
        await noisy.publish(topic, b"retained noise", qos=1, retain=True)
        try:
            outcome = await make(resources, probers, host=shared_broker, topic=topic).check(
                CheckContext()
            )
        finally:
            await noisy.publish(topic, b"", qos=1, retain=True)  # clears the retained message
    assert outcome.ok


async def test_each_check_is_a_client_of_its_own(shared_broker, resources, probers):
    await scenarios.assert_a_connection_per_check(shared_broker, partial(make, resources, probers))


# --- conditions (judged by the runner, through run_check) ----------------------------------


async def test_response_time_condition_covers_the_round_trip(shared_broker, resources, probers):
    prober = make(resources, probers, host=shared_broker, conditions=["[RESPONSE_TIME] < 5000"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    # [RESPONSE_TIME] is the whole check: connect, subscribe, publish and the message back.
    round_trip = result.details["round_trip_ms"]
    assert result.latency is not None and result.latency * 1000 >= round_trip
    too_slow = make(resources, probers, host=shared_broker, conditions=["[RESPONSE_TIME] < 0"])
    result = (await run_check(too_slow)).result
    assert result.status is Status.DOWN
    assert result.message.startswith("condition failed: [RESPONSE_TIME] (")


async def test_ip_is_the_peer_of_pahos_socket(shared_broker, resources, probers):
    host = shared_broker.rsplit(":", 1)[0]
    ctx = CheckContext()
    assert (await make(resources, probers, host=shared_broker).check(ctx)).ok
    assert ctx.facts["IP"] == host
    prober = make(resources, probers, host=shared_broker, conditions=[f"[IP] == {host}"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message


async def test_ip_over_tls(tls_broker, resources, probers):
    broker = tls_broker.broker
    dsn = f"mqtts://probe:{PASSWORD}@{broker.address}"
    ctx = CheckContext()
    prober = make(resources, probers, dsn=dsn, ca=str(tls_broker.ca_file))
    assert (await prober.check(ctx)).ok
    assert ctx.facts["IP"] == "127.0.0.1"


async def test_connected_false_on_a_closed_port_is_up(closed_port, resources, probers):
    prober = make(
        resources, probers, host=f"127.0.0.1:{closed_port}", conditions=["[CONNECTED] == false"]
    )
    result = (await run_check(prober)).result
    assert result.status is Status.UP
    assert result.message == "connection refused, as the conditions expect"


# --- authentication and authorisation -------------------------------------------------------


async def test_right_password_is_up(auth_broker, resources, probers):
    outcome = await make(
        resources, probers, host=auth_broker.address, username="probe", password=PASSWORD
    ).check(CheckContext())
    assert outcome.ok
    dsn = f"mqtt://probe:{PASSWORD}@{auth_broker.address}"
    assert (await make(resources, probers, dsn=dsn, topic="custom/x").check(CheckContext())).ok


async def test_wrong_password_is_refused_with_the_reason(auth_broker, resources, probers):
    # Mosquitto answers a failed password check with "not authorised" (3.1.1 code 5).
    ctx = CheckContext()
    prober = make(
        resources, probers, host=auth_broker.address, username="probe", password="wrong-one"
    )
    with pytest.raises(ProbeError) as caught:
        await prober.check(ctx)
    assert caught.value.message == (
        'not authorised for user "probe" (wrong password, or not allowed to connect)'
    )
    assert ctx.phase == "CONNACK"
    error = await failure(resources, probers, dsn=f"mqtt://nobody:wrong-one@{auth_broker.address}")
    assert error.message.startswith('not authorised for user "nobody"')


async def test_anonymous_client_is_refused(auth_broker, resources, probers):
    error = await failure(resources, probers, host=auth_broker.address)
    assert error.message == "not authorised (the broker refuses anonymous clients)"


async def test_topic_the_acl_forbids(auth_broker, resources, probers):
    # The broker accepts the publish and drops it: only the missing message tells.
    prober = make(
        resources,
        probers,
        host=auth_broker.address,
        username="limited",
        password=LIMITED_PASSWORD,
        timeout="1s",
    )
    result = (await scenarios.timed_run(prober, within=1.5)).result
    assert result.status == "down"
    assert result.message == "published to probe/bus but nothing came back"
    assert result.details["topic"] == "probe/bus"


@pytest.mark.parametrize(
    ("code", "user", "message"),
    [
        (134, "app", 'authentication failed for user "app"'),
        (134, None, "authentication failed: the broker wants a username and password"),
        (135, "app", 'not authorised for user "app" (wrong password, or not allowed to connect)'),
        (135, None, "not authorised (the broker refuses anonymous clients)"),
        (132, None, "the broker does not support MQTT 3.1.1"),
        (133, None, "the broker rejected the client identifier"),
        (136, None, "the broker is unavailable"),
        (138, None, "the client is banned by the broker"),
        (4, "app", 'authentication failed for user "app"'),
        (5, None, "not authorised (the broker refuses anonymous clients)"),
        (155, None, "the broker refused the connection (code 155)"),
    ],
)
def test_connack_codes(code, user, message):
    rc: ReasonCode | int = code if code < 128 else ReasonCode(PacketTypes.CONNACK, identifier=code)
    target = _Target("broker", 1883, False, user, "pw" if user else None)
    assert _describe(MqttConnectError(rc), target, "CONNACK") == message


def test_other_driver_errors():
    target = _Target("broker", 1883, False, None, None)
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise aiomqtt.MqttError(str(exc)) from None  # as aiomqtt does
    except aiomqtt.MqttError as wrapped:
        assert _describe(wrapped, target, "connect") == "connection refused"
    assert _describe(aiomqtt.MqttError("Operation timed out"), target, "subscribe") == (
        "the broker did not answer in time during subscribe"
    )
    lost = aiomqtt.MqttCodeError(7, "Could not publish message")
    assert _describe(lost, target, "publish") == "connection closed by the broker during publish"


@pytest.mark.parametrize(
    ("code", "failed", "reason"),
    [
        (0, False, None),
        (1, False, None),
        (0x80, True, "failure (an ACL may forbid the topic)"),
        (ReasonCode(PacketTypes.SUBACK, identifier=135), True, "not authorised"),
        (ReasonCode(PacketTypes.SUBACK, identifier=1), False, None),
    ],
)
def test_suback_codes(code, failed, reason):
    # Mosquitto 2.0 grants a subscription its ACL forbids (and delivers nothing), so a
    # refused SUBACK cannot be had from the brokers here: its wording is checked alone.
    assert _failed(code) is failed
    if reason is not None:
        assert _reason(code) == reason


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_with_the_right_ca(tls_broker, resources, probers):
    broker, ca = tls_broker.broker, str(tls_broker.ca_file)
    dsn = f"mqtts://probe:{PASSWORD}@{broker.address}"
    assert (await make(resources, probers, dsn=dsn, ca=ca).check(CheckContext())).ok
    outcome = await make(
        resources,
        probers,
        host=f"mqtts://{broker.address}",
        username="probe",
        password=PASSWORD,
        ca=ca,
    ).check(CheckContext())
    assert outcome.ok
    keyed = make(
        resources, probers, host=broker.address, username="probe", password=PASSWORD, ca=ca
    )
    assert (await keyed.check(CheckContext())).ok  # `ca` alone turns TLS on


async def test_tls_failures(tls_broker, resources, probers):
    broker = tls_broker.broker
    dsn = f"mqtts://probe:{PASSWORD}@{broker.address}"
    error = await failure(resources, probers, dsn=dsn, ca=str(tls_broker.other_ca_file))
    assert error.message == "TLS: certificate signed by an unknown authority"
    error = await failure(resources, probers, dsn=dsn)  # the public CAs do not know ours
    assert error.message == "TLS: certificate signed by an unknown authority"
    wrong_name = f"mqtts://probe:{PASSWORD}@localhost:{broker.port}"
    error = await failure(resources, probers, dsn=wrong_name, ca=str(tls_broker.ca_file))
    assert error.message == "TLS: hostname mismatch"
    insecure = make(resources, probers, dsn=wrong_name, insecure=True)
    assert (await insecure.check(CheckContext())).ok


async def test_plain_client_on_the_tls_port(tls_broker, resources, probers):
    broker = tls_broker.broker
    prober = make(
        resources,
        probers,
        dsn=f"mqtt://probe:{PASSWORD}@{broker.address}",
        timeout="1s",
    )
    result = (await run_check(prober)).result
    assert result.status == "down"
    assert result.message in {
        "connection closed by the broker during CONNACK",
        "timeout after 1s during CONNACK",
    }


@pytest.mark.slow
async def test_timeout_during_tls_handshake_leaves_no_socket(
    raw_server, resources, probers, open_fds
):
    async def silent(reader, writer):
        await reader.read()

    server = await raw_server(silent)
    prober = make(
        resources, probers, dsn=f"mqtts://{server.address}", insecure=True, timeout="500ms"
    )
    prober._tls()  # build the SSLContext before counting
    before = open_fds()
    result = (await scenarios.timed_run(prober, within=1.5)).result
    assert result.message == "timeout after 500ms during TLS handshake"
    await prober.aclose()  # the connect thread ends at its own timeout; then all is closed
    gc.collect()
    await scenarios.settle(open_fds, before)


# --- outages, silence, refusals -------------------------------------------------------------


async def test_outage_and_recovery_through_a_proxy(shared_broker, resources, probers):
    cut = {"connection closed by the broker during CONNACK", "connection reset by peer"}
    make_it = partial(make, resources, probers)
    await scenarios.assert_outage_and_recovery(shared_broker, make_it, cut, timeout="1s")


async def test_connection_lost_while_waiting_for_the_message(auth_broker, resources, probers):
    # The limited user's message never comes back, so the check is still waiting when the
    # proxy resets the connection.
    async with scenarios.proxy_to(auth_broker.address) as proxy:
        prober = make(
            resources,
            probers,
            host=proxy.address,
            username="limited",
            password=LIMITED_PASSWORD,
            timeout="2s",
        )
        ctx = CheckContext()
        check = asyncio.ensure_future(prober.check(ctx))
        for _ in range(200):
            if ctx.phase == "waiting for the published message":
                break
            await asyncio.sleep(0.01)
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(ProbeError) as caught:
            await check
        assert time.monotonic() - started < 0.5
    assert caught.value.message == (
        "connection closed by the broker during waiting for the published message"
    )


async def test_port_that_accepts_and_never_speaks(shared_broker, resources, probers, open_fds):
    async with scenarios.proxy_to(shared_broker) as proxy:
        proxy.stall()
        prober = make(resources, probers, host=proxy.address, timeout="500ms")
        before = open_fds()
        run = await scenarios.timed_run(prober, within=1.5)
        assert run.straggler is None
        assert run.result.status == "down"
        assert run.result.message == "timeout after 500ms during CONNACK"
        assert run.result.details["phase"] == "CONNACK"
        await prober.aclose()
        proxy.restore()
        await scenarios.settle(open_fds, before)


async def test_cancelled_check_closes_its_socket(shared_broker, resources, probers, open_fds):
    prober = make(resources, probers, host=shared_broker, topic="probe/tests/cancel")
    assert (await prober.check(CheckContext())).ok
    before = open_fds()
    for delay in (0.0005, 0.002, 0.005, 0.01):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(delay):
                await prober.check(CheckContext())
                await asyncio.sleep(1)  # in case the check finished in time
    await prober.aclose()
    gc.collect()
    await scenarios.settle(open_fds, before)


async def test_connection_refused(closed_port, resources, probers):
    error = await failure(resources, probers, host=f"127.0.0.1:{closed_port}")
    assert error.message == "connection refused"
    assert error.details["topic"] == "probe/bus"


async def test_no_descriptor_leaks_after_many_checks(
    shared_broker, auth_broker, closed_port, resources, probers, open_fds
):
    good = make(resources, probers, host=shared_broker, topic="probe/tests/leaks")
    refused = make(resources, probers, host=f"127.0.0.1:{closed_port}")
    wrong = make(resources, probers, host=auth_broker.address, username="probe", password="nope")
    await scenarios.assert_no_leaks_mixing(open_fds, good, [refused, wrong], every=10)


# --- secrets --------------------------------------------------------------------------------


async def test_passwords_never_in_endpoint_messages_or_details(auth_broker, resources, probers):
    secret = "dsn-secret-" + secrets.token_hex(4)
    prober = make(resources, probers, dsn=f"mqtt://probe:{secret}@{auth_broker.address}")
    assert prober.endpoint == f"mqtt://{auth_broker.address}"
    await scenarios.assert_password_hidden(prober, secret)
    keyed = make(resources, probers, host=auth_broker.address, username="probe", password=secret)
    await scenarios.assert_password_hidden(keyed, secret)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"data": {"a": "b"}}, "the mqtt driver takes no data"),
        ({"query": "x"}, "the mqtt driver runs no query"),
        ({"database": "x"}, "the mqtt driver takes no database"),
        ({"topic": "probe/+"}, "no wildcards"),
        ({"topic": "probe/#"}, "no wildcards"),
        ({"topic": ""}, "the topic cannot be empty"),
        ({"topic": "$SYS/x"}, 'topics starting with "$" are reserved'),
        ({"qos": 3}, "less than or equal to 2"),
        ({"qos": -1}, "greater than or equal to 0"),
        ({"password": "pw"}, "password needs a username"),
        ({"host": "ws://127.0.0.1:9001"}, 'unsupported scheme "ws://"'),
    ],
)
def test_invalid_specs(keys, needle):
    keys.setdefault("host", "127.0.0.1:1883")
    with pytest.raises(ValidationError) as caught:
        MQTTSpec(name="bus", driver="mqtt", **keys)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("mqtt://127.0.0.1:1883/probe/x", "a path or query parameters are not supported"),
        ("mqtt://127.0.0.1:1883?qos=1", "a path or query parameters are not supported"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://127.0.0.1:70000", "invalid URI"),
        ("ws://127.0.0.1:1883", "dsn must start with mqtt://, mqtts://"),
    ],
)
def test_invalid_dsns(dsn, needle):
    with pytest.raises(ValidationError) as caught:
        MQTTSpec(name="bus", driver="mqtt", dsn=dsn)
    assert needle in str(caught.value)


def test_dsn_and_keys_conflicts():
    with pytest.raises(ValidationError, match="not both"):
        MQTTSpec(name="b", driver="mqtt", dsn="mqtt://u:p@h:1", password="q")
    with pytest.raises(ValidationError, match="not both"):
        MQTTSpec(name="b", driver="mqtt", dsn="mqtt://u@h:1", username="v")
    with pytest.raises(ValidationError, match="not both"):
        MQTTSpec(name="b", driver="mqtt", dsn="mqtt://h:1", host="h:1")


@pytest.mark.parametrize(
    ("keys", "target"),
    [
        ({"host": "broker.lan:1883"}, ("broker.lan", 1883, False, None, None)),
        ({"host": "mqtts://broker.lan:8884"}, ("broker.lan", 8884, True, None, None)),
        ({"host": "broker.lan:1883", "insecure": True}, ("broker.lan", 1883, True, None, None)),
        ({"dsn": "mqtt://broker.lan"}, ("broker.lan", 1883, False, None, None)),
        ({"dsn": "mqtts://broker.lan"}, ("broker.lan", 8883, True, None, None)),
        ({"dsn": "mqtt://u%40x:p%3Aw@[::1]:1884/"}, ("::1", 1884, False, "u@x", "p:w")),
        (
            {"dsn": "mqtt://app@broker.lan", "password": "pw"},
            ("broker.lan", 1883, False, "app", "pw"),
        ),
    ],
)
def test_targets(keys, target):
    got = MQTTSpec(name="bus", driver="mqtt", **keys).target()
    assert (got.host, got.port, got.tls, got.username, got.password) == target


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("bus", "probe/bus"),
        ("a+b#c", "probe/abc"),
        ("plant/line 2", "probe/plant/line 2"),
        ("#+", "probe/probe"),
    ],
)
def test_default_topic(name, topic):
    assert MQTTSpec(name=name, driver="mqtt", host="h:1").probe_topic() == topic


def test_explicit_topic_and_defaults():
    spec = MQTTSpec(name="bus", driver="mqtt", host="h:1", topic="health/échos")
    assert spec.probe_topic() == "health/échos"
    assert spec.qos == 1
    assert spec.endpoint() == "h:1"


async def test_client_ids_are_unique_per_check(shared_broker, resources, probers):
    prober = make(resources, probers, host=shared_broker, name="my probe/ä")
    ids = {prober._client()._client._client_id.decode() for _ in range(3)}
    assert len(ids) == 3
    for client_id in ids:
        assert client_id.startswith("probe-my-probe-")


async def test_unreadable_ca_is_a_failed_check(bad_ca_file, resources, probers):
    error = await failure(resources, probers, host="127.0.0.1:8883", ca=str(bad_ca_file))
    assert error.message.startswith("TLS: cannot load the certificates")
