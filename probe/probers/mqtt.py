"""MQTT probes (`client:` with `driver: mqtt`): a full round trip through the broker.

Each check connects as a client of its own (client id `probe-<name>-<random>`, clean session,
MQTT 3.1.1), subscribes to the probe topic (default `probe/<name>`), publishes a unique payload
(a random uuid and the time) and is up only when that payload comes back. So a broker that
accepts connections but no longer routes messages is down, and so is an ACL that forbids the
probe's topic: "published to probe/x but nothing came back".

The client is aiomqtt (over paho-mqtt). paho opens the TCP connection and does the TLS
handshake in an executor thread; the phases (`connect`, `TLS handshake`, `CONNACK`,
`subscribe`, `publish`, `waiting for the published message`) are reported from paho's public
callbacks and from the SSLContext it wraps the socket with. aiomqtt has no public handle on
the paho client or on closing a socket at once, so `probe.mqtt_common.paho_client()` and
`force_close()` (shared with the MQTT notifier) are the two places that reach inside; nothing
else does.

Closing: after a normal end the client sends DISCONNECT (bounded); when the check is
cancelled (the scheduler's timeout) the socket is closed at once, without awaiting anything.
If the connect thread is still running at that point, the socket it is opening is closed as
soon as it finishes (bounded by the connect timeout); `aclose()` waits for those.

A refused CONNACK says why (`_describe()`, the one place driver errors become messages):
`authentication failed for user "probe"` (bad user name or password), `not authorised for
user "probe"` (Mosquitto answers a wrong password so), `not authorised (the broker refuses
anonymous clients)`, and so on.

Conditions: the common placeholders. `[RESPONSE_TIME]` is the whole check (connect, subscribe,
publish and the message back), and `[IP]` the peer of the socket paho opened, read when paho
reports it open (a connect that fails leaves it unset: paho resolves and connects by itself).

MQTT has no server version in its handshake. Mosquitto publishes one on `$SYS/broker/version`,
but subscribing to it costs every check a delayed-ACK stall (~40 ms) on a broker without
TCP_NODELAY, which would distort the round trip measured here; so the details carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar

import aiomqtt
import paho.mqtt.client as paho_mqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, field_validator, model_validator

from probe import mqtt_common as shared
from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.mqtt_common import DEFAULT_PORT, DEFAULT_TLS_PORT
from probe.probers._client import SchemedHostSpec, ServiceDSN, Target, split_service_dsn
from probe.probers._net import describe_os_error, error_text, iter_causes
from probe.probers.base import Prober, SharedResources
from probe.tlsconf import configure_client

__all__ = ["DEFAULT_PORT", "DEFAULT_TLS_PORT", "MQTTProber", "MQTTSpec"]

# The longest a topic may be, in UTF-8 bytes (a two-byte length prefix in the protocol).
_MAX_TOPIC = 65535

_T = TypeVar("_T")

# paho logs every failed read at ERROR ("failed to receive on socket"); each check's result
# already says what failed, so the driver's log stays quiet unless asked for.
_DRIVER_LOG = logging.getLogger("probe.probers.mqtt.driver")
_DRIVER_LOG.setLevel(logging.CRITICAL)

# CONNACK reason codes (MQTT 5; paho maps the 3.1.1 return codes 1-5 onto 132-136).
_CONNACK_MESSAGES = {
    128: "the broker refused the connection (unspecified error)",
    129: "the broker refused the connection (malformed packet)",
    130: "the broker refused the connection (protocol error)",
    131: "the broker refused the connection (implementation-specific error)",
    132: "the broker does not support MQTT 3.1.1",
    133: "the broker rejected the client identifier",
    136: "the broker is unavailable",
    137: "the broker is busy",
    138: "the client is banned by the broker",
    140: "the broker refused the authentication method",
    149: "the broker refused the connection (packet too large)",
    151: "the broker refused the connection (quota exceeded)",
    156: "the broker says to use another server",
    157: "the broker has moved",
    159: "the broker refused the connection (connection rate exceeded)",
}
# paho's own error codes (not reason codes) for a connection that is gone.
_CONNECTION_GONE = {paho_mqtt.MQTT_ERR_NO_CONN, paho_mqtt.MQTT_ERR_CONN_LOST}


class MQTTSpec(SchemedHostSpec):
    """A `client:` entry with `driver: mqtt`.

    `host: host:port` (or `mqtt://host:port`, `mqtts://host:port` for TLS) or
    `dsn: mqtt[s]://[user[:password]@]host[:port]` (ports default to 1883 and 8883);
    `username`, `password`, `topic` (default `probe/<name>`), `qos` (0-2, default 1), and
    `ca`/`cert`/`key`/`insecure` for TLS.
    """

    kind: ClassVar[str] = "mqtt"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("mqtt", "mqtts")
    host_schemes: ClassVar[dict[str, bool]] = shared.SCHEMES

    topic: str | None = None
    qos: int = Field(default=1, ge=0, le=2)

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value:
            raise ValueError("the topic cannot be empty")
        if shared.NOT_IN_TOPIC.search(value):
            raise ValueError(
                f'"{value}" is not a topic to publish to: no wildcards (+, #) or NUL characters'
            )
        if value.startswith("$"):
            raise ValueError(f'"{value}": topics starting with "$" are reserved for the broker')
        if len(value.encode("utf-8")) > _MAX_TOPIC:
            raise ValueError("the topic is longer than 65535 bytes")
        return value

    @model_validator(mode="after")
    def _mqtt_keys(self) -> MQTTSpec:
        if self.query is not None:
            raise ValueError(
                "the mqtt driver runs no query; it publishes to topic and waits for the message"
            )
        if self.data:
            raise ValueError(
                "the mqtt driver takes no data; it publishes to topic and waits for the message"
            )
        if self.database is not None:
            raise ValueError("the mqtt driver takes no database; set topic instead")
        self._check_host_scheme()
        target = self.target()  # raises ValueError for a DSN we cannot use
        if target.password is not None and target.username is None:
            raise ValueError("password needs a username (MQTT sends a password only with one)")
        return self

    def probe_topic(self) -> str:
        """`topic`, or `probe/<name>` without the characters a topic cannot hold."""
        if self.topic is not None:
            return self.topic
        name = shared.NOT_IN_TOPIC.sub("", self.name).strip()
        return f"probe/{name or 'probe'}"

    def target(self) -> Target:
        """The broker and the credentials, merging the DSN with the keys."""
        return self._target(
            self._dsn(), default_port=DEFAULT_PORT, default_tls_port=DEFAULT_TLS_PORT
        )

    def _dsn(self) -> ServiceDSN | None:
        """The DSN's parts: mqtt[s]://[user[:password]@]host[:port], nothing more."""
        if self.dsn is None:
            return None
        dsn = split_service_dsn(self.dsn.get_secret_value())
        if dsn.path.strip("/") or dsn.has_query:
            raise ValueError("dsn: a path or query parameters are not supported; use topic and qos")
        return dsn


# --------------------------------------------------------------------------------------------
# One check's session: the aiomqtt client, paho's callbacks watched, and the closing


class _ThreadState(threading.local):
    """The session whose connect runs in this executor thread (set by paho's pre-connect
    callback, read by the SSLContext, which has no other way to know)."""

    session: weakref.ref[_Session] | None = None


_connect_thread = _ThreadState()


class _PhasedSSLContext(ssl.SSLContext):
    """An SSLContext that tells the session when paho wraps its freshly connected socket:
    the one moment between the TCP connect and the TLS handshake anyone can see. It also
    keeps the wrapped socket, which paho leaves unclosed when the handshake fails."""

    def wrap_socket(
        self,
        sock: socket.socket,
        *args: Any,
        **kwargs: Any,
    ) -> ssl.SSLSocket:
        ref = _connect_thread.session
        session = ref() if ref is not None else None
        if session is not None:
            session.report("TLS handshake")
        wrapped = super().wrap_socket(sock, *args, **kwargs)
        if session is not None:
            session.tls_sockets.append(wrapped)
        return wrapped


def _ssl_context(spec: MQTTSpec) -> _PhasedSSLContext:
    """The same settings as `client_ssl_context()`, in a context that reports its phase."""
    context = _PhasedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    configure_client(context, ca=spec.ca, cert=spec.cert, key=spec.key, insecure=spec.insecure)
    return context


class _Session:
    """One check's MQTT connection.

    paho's public callbacks are wrapped (aiomqtt's own still run first) to report phases and
    to notice a socket that closes: aiomqtt ignores a connection lost before CONNACK and
    while it waits for SUBACK or PUBACK, and would wait for its timeout instead.
    """

    def __init__(self, client: aiomqtt.Client, ctx: CheckContext) -> None:
        self.client = client
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.tls_sockets: list[ssl.SSLSocket] = []
        # Set when the socket closes: True if that was before CONNACK.
        self.lost: asyncio.Future[bool] = self.loop.create_future()
        self._connack = False
        self.connecting: asyncio.Future[Any] | None = None
        paho = shared.paho_client(client)
        self._on_open = paho.on_socket_open
        self._on_close = paho.on_socket_close
        self._on_connect = paho.on_connect
        paho.on_pre_connect = self._pre_connect
        paho.on_socket_open = self._socket_open
        paho.on_socket_close = self._socket_close
        paho.on_connect = self._connected

    def report(self, phase: str) -> None:
        """Set the check's phase; safe from paho's connect thread."""
        self.loop.call_soon_threadsafe(_set_phase, self.ctx, phase)

    # paho callbacks: the first two run in the connect thread, the others in the loop's.

    def _pre_connect(self, client: paho_mqtt.Client, userdata: Any) -> None:
        _connect_thread.session = weakref.ref(self)

    def _socket_open(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        _connect_thread.session = None
        if self._on_open is not None:
            self._on_open(client, userdata, sock)  # aiomqtt starts watching the socket
        # paho connects by itself, not through probers/_connect: [IP] is its socket's peer.
        ip = _peer_ip(sock)
        if ip is not None:
            self.loop.call_soon_threadsafe(_set_fact, self.ctx, "IP", ip)
        self.report("CONNACK")

    def _connected(self, *args: Any) -> None:
        self._connack = True
        if self._on_connect is not None:
            self._on_connect(*args)

    def _socket_close(self, client: paho_mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._on_close is not None:
            self._on_close(client, userdata, sock)
        self.loop.call_soon_threadsafe(self._set_lost, not self._connack)

    def _set_lost(self, before_connack: bool) -> None:
        if not self.lost.done():
            self.lost.set_result(before_connack)

    # The steps of a check.

    async def connect(self) -> None:
        # aiomqtt's connect runs as a task of its own: if the check is cancelled while
        # paho's thread is still connecting, the task lives on until the thread is done and
        # the socket is closed then (see close()). Cancelling it would lose the thread.
        self.connecting = connecting = asyncio.ensure_future(self.client.__aenter__())
        waiting: set[asyncio.Future[Any]] = {connecting, self.lost}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done() and self.lost.result():
            raise ProbeError(f"connection closed by the broker during {self.ctx.phase}")
        await asyncio.shield(connecting)  # done, or about to be (CONNACK has come)

    async def guarded(self, step: Awaitable[_T]) -> _T:
        """`step`, unless the connection is lost first."""
        task = asyncio.ensure_future(step)
        try:
            waiting: set[asyncio.Future[Any]] = {task, self.lost}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise ProbeError(f"connection closed by the broker during {self.ctx.phase}")

    async def close(self, *, cancelled: bool) -> bool:
        """Close on every path without waiting on anything unbounded; False when aiomqtt's
        connect is still running (its socket is then closed as soon as it ends)."""
        connecting = self.connecting
        if connecting is not None and not connecting.done():
            connecting.add_done_callback(lambda _task: self._finish())
            if self.lost.done():
                # The socket is closed, so paho's thread is past opening it: all that is
                # left is aiomqtt waiting out its CONNACK timeout.
                connecting.cancel()
            return False
        try:
            if not cancelled and connecting is not None and _succeeded(connecting):
                # A normal end (up or down): DISCONNECT, briefly; the socket closes anyway.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(shared.DISCONNECT_WAIT):
                        await self.client.__aexit__(None, None, None)
        finally:
            self._finish()
        # aiomqtt's disconnect can swallow a cancellation that lands while it waits (the
        # race in Python 3.11's asyncio.wait_for): a check cancelled by its timeout must not
        # then return as if it had finished.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return True

    def _finish(self) -> None:
        connecting = self.connecting
        if connecting is not None and connecting.done() and not connecting.cancelled():
            connecting.exception()  # retrieved: nobody else may
        shared.force_close(self.client)
        for sock in self.tls_sockets:  # a failed handshake's socket, which paho drops
            with contextlib.suppress(OSError):
                sock.close()
        self.tls_sockets.clear()


def _succeeded(task: asyncio.Future[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


# --------------------------------------------------------------------------------------------
# The prober


class MQTTProber(Prober[MQTTSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = MQTTSpec

    def __init__(self, spec: MQTTSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._target = spec.target()
        self._topic = spec.probe_topic()
        self._ssl_context: _PhasedSSLContext | None = None
        # Connects still running in an executor thread after their check ended.
        self._unfinished: set[asyncio.Future[Any]] = set()

    def _tls(self) -> _PhasedSSLContext | None:
        """The prober's SSLContext, built on first use (a bad CA file is a failed check)."""
        if not self._target.tls:
            return None
        if self._ssl_context is None:
            try:
                self._ssl_context = _ssl_context(self.spec)
            except (OSError, ssl.SSLError) as exc:
                raise ProbeError(f"TLS: cannot load the certificates: {error_text(exc)}") from None
        return self._ssl_context

    def _client(self) -> aiomqtt.Client:
        target = self._target
        # The driver's own waits (CONNACK, SUBACK, PUBACK) end no later than the check.
        timeout = max(self.spec.timeout, 0.1)
        client = aiomqtt.Client(
            target.host,
            target.port,
            username=target.username,
            password=target.password,
            identifier=shared.client_id("probe", self.spec.name, "probe"),
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            timeout=timeout,
            tls_context=self._tls(),
            logger=_DRIVER_LOG,
            # paho leaves Nagle on; small packets would then wait for delayed ACKs.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        shared.paho_client(client).connect_timeout = timeout
        return client

    async def check(self, ctx: CheckContext) -> Outcome:
        loop = asyncio.get_running_loop()
        started = loop.time()
        topic, qos = self._topic, self.spec.qos
        ctx.details["topic"] = topic
        ctx.phase = "connect"
        session = _Session(self._client(), ctx)
        client = session.client
        cancelled = False
        try:
            await session.connect()
            ctx.phase = "subscribe"
            granted = await session.guarded(client.subscribe(topic, qos))
            if granted and _failed(granted[0]):
                raise ProbeError(
                    f"the broker refused the subscription to {topic}: {_reason(granted[0])}"
                )
            ctx.phase = "publish"
            payload = f"{uuid.uuid4().hex} {time.time():.6f}".encode()
            sent = loop.time()
            await session.guarded(client.publish(topic, payload, qos=qos))
            ctx.phase = "waiting for the published message"
            # Leave a margin before the scheduler's own timeout, so that this says what
            # happened instead of a bare timeout, and DISCONNECT can still be sent.
            margin = min(max(self.spec.timeout * 0.1, 0.05), 1.0)
            budget = max(started + self.spec.timeout - margin - loop.time(), 0.0)
            if not await session.guarded(_wait_for_payload(client, topic, payload, budget)):
                raise ProbeError(f"published to {topic} but nothing came back")
            round_trip = loop.time() - sent
        except asyncio.CancelledError:
            cancelled = True
            raise
        except ProbeError as exc:
            raise ProbeError(exc.message, **{**ctx.details, **exc.details}) from None
        except aiomqtt.MqttError as exc:
            raise ProbeError(_describe(exc, self._target, ctx.phase), **ctx.details) from None
        finally:
            if not await session.close(cancelled=cancelled):
                connecting = session.connecting
                assert connecting is not None
                self._unfinished.add(connecting)
                connecting.add_done_callback(self._unfinished.discard)

        details = {**ctx.details, "qos": qos, "round_trip_ms": round(round_trip * 1000, 3)}
        return Outcome(
            ok=True,
            message=f"published to {topic} and received it back in {round_trip * 1000:.1f} ms",
            details=details,
        )

    async def aclose(self) -> None:
        """Wait (bounded) for connects whose check was cancelled, so no socket outlives us."""
        pending = set(self._unfinished)
        if pending:
            await asyncio.wait(pending, timeout=2 * max(self.spec.timeout, 0.1) + 1)


def _set_phase(ctx: CheckContext, phase: str) -> None:
    ctx.phase = phase


def _set_fact(ctx: CheckContext, name: str, value: object) -> None:
    ctx.facts[name] = value


def _peer_ip(sock: Any) -> str | None:
    """The IP address `sock` is connected to (None when it cannot say: closed already, or
    not a socket, as paho's websocket wrapper)."""
    try:
        peer = sock.getpeername()
    except (OSError, AttributeError):
        return None
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


async def _wait_for_payload(
    client: aiomqtt.Client, topic: str, payload: bytes, budget: float
) -> bool:
    """Whether `payload` comes back on `topic` within `budget` seconds (other messages on the
    topic, such as a retained one or another prober's, are skipped)."""
    try:
        async with asyncio.timeout(budget):
            async for message in client.messages:
                if message.topic.value == topic and message.payload == payload:
                    return True
    except TimeoutError:
        return False
    return False  # pragma: no cover - the iterator ends only by raising


def _failed(code: Any) -> bool:
    if isinstance(code, ReasonCode):
        return bool(code.is_failure)
    return isinstance(code, int) and code >= 0x80


def _reason(code: Any) -> str:
    """A SUBACK failure: 3.1.1 has one code (0x80, often an ACL), MQTT 5 says more."""
    value = code.value if isinstance(code, ReasonCode) else code
    if value == shared.NOT_AUTHORISED:
        return "not authorised"
    if value == 0x80:
        return "failure (an ACL may forbid the topic)"
    return str(code).lower()


def _describe(exc: aiomqtt.MqttError, target: Target, phase: str) -> str:
    """The one place aiomqtt and paho exceptions become messages."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        value = exc.rc.value if isinstance(exc.rc, ReasonCode) else int(exc.rc)
        if isinstance(exc, MqttConnectError):
            return _describe_connack(shared.V3_RETURN_CODES.get(value, value), target)
        if not isinstance(exc.rc, ReasonCode) and value in _CONNECTION_GONE:
            return f"connection closed by the broker during {phase}"
    # aiomqtt re-raises the OS and TLS errors of paho's connect `from None`: the original is
    # still the context, which the cause walk below skips.
    for cause in (exc, exc.__context__, *iter_causes(exc)):
        if cause is None:
            continue
        known = describe_os_error(cause)
        if known is not None:
            return known
        if isinstance(cause, TimeoutError):
            return "timed out connecting to the broker"
    text = str(exc)
    if "Disconnected during message iteration" in text or "Unexpected disconnection" in text:
        return f"connection closed by the broker during {phase}"
    if "Operation timed out" in text:
        return f"the broker did not answer in time during {phase}"
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        return f"MQTT error: {str(exc)[:120]}"
    return f"MQTT error: {error_text(exc)}"


def _describe_connack(code: int, target: Target) -> str:
    user = target.username
    if code == shared.BAD_CREDENTIALS:
        if user is None:
            return "authentication failed: the broker wants a username and password"
        return f'authentication failed for user "{user}"'
    if code == shared.NOT_AUTHORISED:
        if user is None:
            return "not authorised (the broker refuses anonymous clients)"
        # Mosquitto answers a wrong password with "not authorised" too.
        return f'not authorised for user "{user}" (wrong password, or not allowed to connect)'
    return _CONNACK_MESSAGES.get(code, f"the broker refused the connection (code {code})")
