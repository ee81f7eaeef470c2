"""The mqtt notifier against real Mosquitto brokers: the shared one (PROBE_TEST_MQTT, default
127.0.0.1:1883, anonymous) for deliveries, a private one with passwords (and one with TLS)
for refused credentials. A subscriber made with aiomqtt receives what the notifier published."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import pytest
import trustme
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, Event, NotifyContext
from probe.notify.mqtt import MQTTNotifier, MQTTNotifySpec
from probe.notify.templates import Templates
from tests.notify.samples import notification
from tests.support.mosquitto import PrivateMosquitto
from tests.support.services import require_service

PASSWORD = "mq-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def shared_broker() -> str:
    parts = urlsplit(require_service("mqtt"))
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    users = {"notifier": PASSWORD}
    with PrivateMosquitto(tmp_path_factory.mktemp("mqtt-notify-auth"), users=users) as broker:
        yield broker


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA
) -> Iterator[PrivateMosquitto]:
    directory = tmp_path_factory.mktemp("mqtt-notify-tls")
    leaf = tls_ca.issue_cert("127.0.0.1")
    cert, key = directory / "cert.pem", directory / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    users = {"notifier": PASSWORD}
    with PrivateMosquitto(directory / "broker", users=users, tls=(cert, key)) as broker:
        yield broker


def topic() -> str:
    return f"probe-test/alerts/{secrets.token_hex(6)}"


def make(server: str, **keys: Any) -> MQTTNotifier:
    keys.setdefault("timeout", "5s")
    keys.setdefault("topic", topic())
    spec = MQTTNotifySpec.model_validate({"name": "broker", "server": server, **keys})
    context = NotifyContext(http=None, templates=Templates(), timeout=10.0, dry=False)
    return MQTTNotifier(spec, context)


@pytest.fixture
async def notifiers() -> AsyncIterator[list[MQTTNotifier]]:
    made: list[MQTTNotifier] = []
    yield made
    for notifier in made:
        await notifier.aclose()


async def receive(
    host: str, port: int, topic_name: str, action: Any, *, count: int = 1, **client: Any
) -> list[aiomqtt.Message]:
    """Subscribe to `topic_name`, run `action()`, and return the first `count` messages."""
    received: list[aiomqtt.Message] = []
    async with aiomqtt.Client(
        host, port, identifier=f"test-{secrets.token_hex(4)}", **client
    ) as sub:
        await sub.subscribe(topic_name, qos=1)
        await action()
        async with asyncio.timeout(5):
            async for message in sub.messages:
                received.append(message)
                if len(received) == count:
                    break
    return received


def test_registry_points_at_the_notifier():
    assert load_notifier_class("mqtt") is MQTTNotifier


async def test_publishes_the_json_event(shared_broker, notifiers):
    notifier = make(shared_broker)
    notifiers.append(notifier)
    host, _, port = shared_broker.rpartition(":")
    note = notification()

    async def send() -> None:
        await notifier.send(notifier.render(note))

    [message] = await receive(host, int(port), notifier.spec.topic, send)
    assert message.qos == 1
    assert not message.retain
    event = json.loads(message.payload)
    assert event["event"] == "down"
    assert event["id"] == note.id
    assert event["probe"] == "api"
    assert event["endpoint"] == "https://api.example.test/health"
    assert event["message"] == "status 503 not in 200-399"


async def test_down_then_recovery_with_the_duration(shared_broker, notifiers):
    notifier = make(shared_broker, qos=2)
    notifiers.append(notifier)
    host, _, port = shared_broker.rpartition(":")

    async def send() -> None:
        await notifier.send(notifier.render(notification()))
        await notifier.send(notifier.render(notification(Event.RECOVERY, duration=95.0)))

    messages = await receive(host, int(port), notifier.spec.topic, send, count=2)
    events = [json.loads(m.payload) for m in messages]
    assert [e["event"] for e in events] == ["down", "recovery"]
    assert events[1]["duration"] == 95.0


async def test_fixed_client_id_sends_take_turns(shared_broker, notifiers):
    # A broker allows one session per client id: concurrent sends must not kick each other.
    notifier = make(shared_broker, client_id=f"probe-test-{secrets.token_hex(4)}")
    notifiers.append(notifier)
    host, _, port = shared_broker.rpartition(":")
    notes = [notification(message=f"m{i}") for i in range(3)]

    async def send() -> None:
        await asyncio.gather(*(notifier.send(notifier.render(note)) for note in notes))

    messages = await receive(host, int(port), notifier.spec.topic, send, count=3)
    assert sorted(json.loads(m.payload)["message"] for m in messages) == ["m0", "m1", "m2"]


async def test_retained_message_reaches_a_later_subscriber(shared_broker, notifiers):
    notifier = make(shared_broker, retain=True)
    notifiers.append(notifier)
    host, _, port = shared_broker.rpartition(":")
    await notifier.send(notifier.render(notification()))
    try:

        async def nothing() -> None:
            pass

        [message] = await receive(host, int(port), notifier.spec.topic, nothing)
        assert message.retain
        assert json.loads(message.payload)["event"] == "down"
    finally:
        async with aiomqtt.Client(host, int(port)) as cleaner:  # clear the retained message
            await cleaner.publish(notifier.spec.topic, b"", qos=1, retain=True)


async def test_template_override(shared_broker, notifiers):
    notifier = make(shared_broker, template={"down": '{"alert": {{ probe | tojson }}}'})
    notifiers.append(notifier)
    host, _, port = shared_broker.rpartition(":")

    async def send() -> None:
        await notifier.send(notifier.render(notification()))

    [message] = await receive(host, int(port), notifier.spec.topic, send)
    assert json.loads(message.payload) == {"alert": "api"}


async def test_right_password(auth_broker, notifiers):
    notifier = make(auth_broker.address, username="notifier", password=PASSWORD)
    notifiers.append(notifier)

    async def send() -> None:
        await notifier.send(notifier.render(notification()))

    [message] = await receive(
        "127.0.0.1",
        auth_broker.port,
        notifier.spec.topic,
        send,
        username="notifier",
        password=PASSWORD,
    )
    assert json.loads(message.payload)["event"] == "down"


async def test_wrong_password_is_permanent(auth_broker, notifiers):
    notifier = make(auth_broker.address, username="notifier", password="wrong-" + PASSWORD)
    notifiers.append(notifier)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    error = caught.value
    assert error.permanent
    assert 'for user "notifier"' in error.message
    assert PASSWORD not in error.message


async def test_anonymous_refused_is_permanent(auth_broker, notifiers):
    notifier = make(auth_broker.address)
    notifiers.append(notifier)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    assert caught.value.permanent
    assert "not authorised" in caught.value.message


async def test_tls_with_the_ca(tls_broker, tls_ca_file, notifiers):
    server = f"mqtts://127.0.0.1:{tls_broker.port}"
    notifier = make(server, username="notifier", password=PASSWORD, ca=str(tls_ca_file))
    notifiers.append(notifier)
    assert notifier.spec.target().startswith("mqtt: mqtts://127.0.0.1:")
    await notifier.send(notifier.render(notification()))  # PUBACK came: delivered

    untrusted = make(server, username="notifier", password=PASSWORD)
    notifiers.append(untrusted)
    with pytest.raises(DeliveryError) as caught:
        await untrusted.send(untrusted.render(notification()))
    assert not caught.value.permanent
    assert caught.value.message.startswith("TLS: ")


async def test_connection_refused_is_temporary(closed_port, notifiers):
    notifier = make(f"127.0.0.1:{closed_port}")
    notifiers.append(notifier)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    assert not caught.value.permanent
    assert caught.value.message == f"connection refused by 127.0.0.1:{closed_port}"


async def test_broker_that_never_answers_times_out(raw_server, notifiers, open_fds):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the CONNECT, answers nothing, ends when the client closes

    server = await raw_server(silent)
    notifier = make(server.address, timeout="300ms")
    before = open_fds()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(notifier.render(notification()))
    assert time.monotonic() - started < 2.0
    assert not caught.value.permanent
    assert "timed out after 0.3s waiting for the CONNACK" in caught.value.message
    await notifier.aclose()
    for _ in range(50):  # both ends closed (the server's a moment after ours)
        if open_fds() <= before:
            break
        await asyncio.sleep(0.02)
    assert open_fds() <= before


def test_render_without_templates_is_the_notifications_json():
    spec = MQTTNotifySpec.model_validate({"name": "b", "server": "127.0.0.1", "topic": "a/b"})
    notifier = MQTTNotifier(spec, NotifyContext(http=None, templates=None, timeout=1, dry=False))
    note = notification()
    assert notifier.render(note) == note.to_json()


# --- config ---------------------------------------------------------------------------------


def validate(**raw: Any) -> MQTTNotifySpec:
    return MQTTNotifySpec.model_validate({"name": "b", **raw})


@pytest.mark.parametrize(
    ("raw", "address", "tls"),
    [
        ({"server": "broker.example.test"}, "broker.example.test:1883", False),
        ({"host": "broker.example.test:1884"}, "broker.example.test:1884", False),
        ({"server": "mqtt://broker.example.test"}, "broker.example.test:1883", False),
        ({"server": "mqtts://broker.example.test"}, "broker.example.test:8883", True),
        ({"server": "tcp://[::1]:1999"}, "[::1]:1999", False),
        ({"server": "[::1]:1999", "insecure": True}, "[::1]:1999", True),
    ],
)
def test_servers(raw, address, tls):
    spec = validate(topic="alerts", **raw)
    assert spec.broker.address == address
    assert spec.broker.tls is tls
    assert spec.qos == 1 and spec.retain is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"topic": "a"}, "server is required"),
        ({"server": "h"}, "topic"),
        ({"server": "h", "host": "h", "topic": "a"}, "set server or host, not both"),
        ({"server": "h", "topic": "a/#"}, "no wildcards"),
        ({"server": "h", "topic": "$SYS/x"}, "belong to the broker"),
        ({"server": "h", "topic": ""}, "cannot be empty"),
        ({"server": "h", "topic": "a", "qos": 3}, "less than or equal to 2"),
        ({"server": "ws://h", "topic": "a"}, 'unsupported scheme "ws://"'),
        ({"server": "mqtt://u:secretpw@h", "topic": "a"}, "not in the URL"),
        ({"server": "h:99999", "topic": "a"}, "out of range"),
        ({"server": "h", "topic": "a", "password": "p"}, "needs a username"),
        ({"server": "h", "topic": "a", "cert": "/nonexistent"}, "file not found"),
    ],
)
def test_config_errors(raw, expected):
    with pytest.raises(ValidationError) as caught:
        validate(**raw)
    assert expected in str(caught.value)
    assert "secretpw" not in str(caught.value)


def test_target_has_no_credentials(tmp_path: Path):
    spec = validate(
        server="broker.example.test:1883", topic="ops/alerts", username="u", password="pw-secret"
    )
    assert spec.target() == "mqtt: mqtt://broker.example.test:1883 topic ops/alerts"
    assert "pw-secret" not in repr(spec)
