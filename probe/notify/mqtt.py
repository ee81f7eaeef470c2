"""MQTT notifier: publish each event as JSON to a topic (aiomqtt), QoS 1 by default.

Keys: `server` (or `host`: "host:port", "[v6]:port", or an `mqtt://` / `mqtts://` URL; ports
default to 1883 and 8883), `username`, `password` (or `password_file`), `topic` (required),
`qos` (0-2, default 1), `retain` (default false), `client_id` (default `probe-notify-<name>-
<random>`, new for each send; a fixed one makes sends take turns, as a broker allows one session
per client id), and `ca`/`cert`/`key`/`insecure` for TLS (TLS is on with `mqtts://` or any of them).

The payload is the `webhook` template's JSON (a user's `template:` override applies), or the
notification's own JSON when no template renderer is configured. Each send is one session:
connect (MQTT 3.1.1, clean session), publish, wait for the PUBACK (QoS 1) or PUBCOMP (QoS 2),
disconnect. A PUBACK means the broker took the message; an MQTT 3.1.1 broker whose ACL forbids
the topic still acknowledges it and drops it (Mosquitto does), so check the ACL when nothing
arrives.

Errors (`_describe()`): a refused CONNACK for credentials or authorisation (bad user name or
password, not authorised, banned, client id rejected) is permanent; everything else
(connection refused, timeouts, a broker that is unavailable or busy, a lost connection) is
temporary.

aiomqtt runs paho's blocking connect in an executor thread that cannot be cancelled; when the
send times out during it, the socket it opens is closed as soon as the thread is done, and
`aclose()` waits (bounded) for those stragglers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr, field_validator, model_validator

from probe import mqtt_common as shared
from probe.config.models import ConfigPath
from probe.mqtt_common import DEFAULT_PORT, DEFAULT_TLS_PORT
from probe.notify.base import DeliveryError, Notification, Notifier, NotifierSpec, NotifyContext
from probe.notify.templates import TemplatedSpec, render_json
from probe.tlsconf import check_cert_and_key, client_context, existing_file

__all__ = ["DEFAULT_PORT", "DEFAULT_TLS_PORT", "MQTTNotifier", "MQTTNotifySpec"]

# The other CONNACK reason codes the notifier names (MQTT 5 numbering, as in probe.mqtt_common).
_UNSUPPORTED_PROTOCOL = 132
_CLIENT_ID_REJECTED = 133
_UNAVAILABLE = 136
_BANNED = 138
_BAD_AUTH_METHOD = 140
# Retrying with the same settings cannot help these.
_PERMANENT_CONNACK = {
    _UNSUPPORTED_PROTOCOL,
    _CLIENT_ID_REJECTED,
    shared.BAD_CREDENTIALS,
    shared.NOT_AUTHORISED,
    _BANNED,
    _BAD_AUTH_METHOD,
}


@dataclass(frozen=True, slots=True)
class _Broker:
    host: str
    port: int
    tls: bool

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _parse_server(text: str) -> tuple[str, int | None, bool | None]:
    """(host, port or None, TLS from the scheme or None); ValueError with a config message."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty server; expected host:port or mqtt://host:port")
    if "://" in raw:
        scheme = raw.partition("://")[0].lower()
        if scheme not in shared.SCHEMES:
            raise ValueError(
                f'unsupported scheme "{scheme}://"; use host:port, mqtt:// or mqtts://'
            )
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError:
            raise ValueError(
                "invalid URL (check the port and the brackets of an IPv6 host)"
            ) from None
        if parts.username is not None or parts.password is not None:
            # A password here would be shown wherever the server is (target(), errors).
            raise ValueError("put the credentials in username and password, not in the URL")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("a path or query is not supported; set topic")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        return parts.hostname, port, shared.SCHEMES[scheme]
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d{1,5}))?|([^:\[\]/\s]+)(?::(\d{1,5}))?", raw)
    if match is None:
        raise ValueError(
            f'expected "host:port" (or "[v6addr]:port", mqtt[s]://...), got "{raw[:80]}"'
        )
    host = match.group(1) or match.group(3)
    port_text = match.group(2) or match.group(4)
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f'"{host}" is not an IPv6 address') from None
    return host, int(port_text) if port_text else None, None


class MQTTNotifySpec(TemplatedSpec):
    """An `mqtt:` entry under `notify:`."""

    kind: ClassVar[str] = "mqtt"

    server: str | None = None
    host: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    topic: str
    qos: int = Field(default=1, ge=0, le=2)
    retain: bool = False
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None
    insecure: bool = False

    @field_validator("server", "host")
    @classmethod
    def _valid_server(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _host, port, _tls = _parse_server(value)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range (1-65535)")
        return value.strip()

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        if not value:
            raise ValueError("the topic cannot be empty")
        if shared.NOT_IN_TOPIC.search(value):
            raise ValueError(
                f'"{value[:80]}" is not a topic to publish to: no wildcards (+, #) or NUL'
            )
        if value.startswith("$"):
            raise ValueError(f'"{value[:80]}": topics starting with "$" belong to the broker')
        if len(value.encode("utf-8")) > 65535:
            raise ValueError("the topic is longer than 65535 bytes")
        return value

    _existing_file = field_validator("ca", "cert", "key")(existing_file)

    @model_validator(mode="after")
    def _consistent(self) -> MQTTNotifySpec:
        if self.server is None and self.host is None:
            raise ValueError("server is required (host:port or mqtt[s]://host:port)")
        if self.server is not None and self.host is not None:
            raise ValueError("set server or host, not both")
        if self.password is not None and not self.username:
            raise ValueError("password needs a username (MQTT sends a password only with one)")
        check_cert_and_key(self.cert, self.key)
        return self

    @property
    def broker(self) -> _Broker:
        raw = self.server if self.server is not None else self.host
        assert raw is not None
        host, port, scheme_tls = _parse_server(raw)
        tls = bool(scheme_tls) or self.insecure or self.ca is not None or self.cert is not None
        if port is None:
            port = DEFAULT_TLS_PORT if tls else DEFAULT_PORT
        return _Broker(host, port, tls)

    def target(self) -> str:
        broker = self.broker
        scheme = "mqtts" if broker.tls else "mqtt"
        return f"mqtt: {scheme}://{broker.address} topic {self.topic}"


class MQTTNotifier(Notifier[MQTTNotifySpec]):
    spec_type: ClassVar[type[NotifierSpec]] = MQTTNotifySpec
    format: ClassVar[str] = "webhook"

    def __init__(self, spec: MQTTNotifySpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        self._broker = spec.broker
        self._ssl_context: ssl.SSLContext | None = None
        # Connects still running in an executor thread after their send gave up.
        self._unfinished: set[asyncio.Future[Any]] = set()
        # A fixed client id allows one session at a time (the broker drops the older one):
        # sends then take turns.
        self._one_at_a_time = asyncio.Lock() if spec.client_id is not None else None

    def render(self, notification: Notification) -> Any:
        """The message: the webhook template's JSON document (parsed, so an override that
        does not give JSON falls back to the shipped template), or the notification's own
        JSON when no template renderer is configured."""
        templates = self.context.templates
        if templates is None:
            return notification.to_json()
        event = notification.event
        return render_json(
            templates, self.format, event, notification, override=self.spec.override(event)
        )

    async def send(self, payload: Any) -> None:
        if self._one_at_a_time is None:
            await self._send(payload)
            return
        async with self._one_at_a_time:
            await self._send(payload)

    async def _send(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)

        client = self._client()
        # aiomqtt's connect runs as a task of its own: cancelling it would not stop paho's
        # connect thread, so on a timeout the task is left to finish and closed then.
        connecting = asyncio.ensure_future(client.__aenter__())
        phase = "connect"
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(connecting)
                phase = "publish"
                await client.publish(
                    self.spec.topic,
                    data.encode("utf-8"),
                    qos=self.spec.qos,
                    retain=self.spec.retain,
                )
        except TimeoutError:
            waiting = "the CONNACK" if phase == "connect" else "the broker's acknowledgement"
            raise DeliveryError(
                f"timed out after {self.timeout:g}s waiting for {waiting} "
                f"from {self._broker.address}"
            ) from None
        except aiomqtt.MqttError as exc:
            raise _describe(exc, self.spec, self._broker, phase) from None
        finally:
            await self._close(client, connecting)

    def _tls(self) -> ssl.SSLContext | None:
        if not self._broker.tls:
            return None
        if self._ssl_context is None:
            spec = self.spec
            context = client_context(
                ca=spec.ca, cert=spec.cert, key=spec.key, insecure=spec.insecure
            )
            context.sslsocket_class = _ClosingSSLSocket
            self._ssl_context = context
        return self._ssl_context

    def _client(self) -> aiomqtt.Client:
        spec = self.spec
        identifier = spec.client_id
        if identifier is None:
            identifier = shared.client_id("probe-notify", spec.name, "notifier")
        try:
            tls = self._tls()
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(
                f"TLS: cannot load the certificates: {exc.strerror or exc}", permanent=True
            ) from None
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            username=spec.username,
            password=spec.password.get_secret_value() if spec.password is not None else None,
            identifier=identifier,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            # The driver's own waits (CONNACK, PUBACK) end no later than the send.
            timeout=max(self.timeout, 0.1),
            tls_context=tls,
            # paho leaves Nagle on; the PUBACK would then wait for a delayed ACK.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        shared.paho_client(client).connect_timeout = max(self.timeout, 0.1)
        return client

    async def _close(self, client: aiomqtt.Client, connecting: asyncio.Future[Any]) -> None:
        if not connecting.done():
            # paho's thread is still connecting: close its socket once it is done.
            self._unfinished.add(connecting)
            connecting.add_done_callback(lambda task: self._finish(client, task))
            return
        if not connecting.cancelled() and connecting.exception() is None:
            # Connected: DISCONNECT politely, briefly; the socket closes anyway below.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(shared.DISCONNECT_WAIT):
                    await client.__aexit__(None, None, None)
        shared.force_close(client)

    def _finish(self, client: aiomqtt.Client, task: asyncio.Future[Any]) -> None:
        self._unfinished.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody else will
        shared.force_close(client)

    async def aclose(self) -> None:
        """Wait (bounded) for connects whose send gave up, so no socket outlives us."""
        pending = set(self._unfinished)
        if pending:
            await asyncio.wait(pending, timeout=2 * max(self.timeout, 0.1) + 1)


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho wraps its socket, then runs the handshake itself and drops the socket unclosed
    when that fails (a certificate it does not trust); this one closes itself instead."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


# --- the one place aiomqtt, paho and OS errors become DeliveryErrors -------------------------


def _describe(
    exc: aiomqtt.MqttError, spec: MQTTNotifySpec, broker: _Broker, phase: str
) -> DeliveryError:
    where = broker.address
    if isinstance(exc, MqttConnectError) and exc.rc is not None:
        value = exc.rc.value if isinstance(exc.rc, ReasonCode) else int(exc.rc)
        code = shared.V3_RETURN_CODES.get(value, value)
        return DeliveryError(
            f"{where}: {_connack_text(code, spec.username)}",
            permanent=code in _PERMANENT_CONNACK,
        )
    # aiomqtt re-raises the OS and TLS errors of paho's connect `from None`: the original is
    # still the context.
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or "certificate verification failed"
        return DeliveryError(f"TLS: {reason} for {where} (set ca:, or insecure: true)")
    if isinstance(cause, ssl.SSLError):
        reason = (getattr(cause, "reason", None) or "").lower().replace("_", " ")
        if reason == "wrong version number":
            return DeliveryError(
                f"TLS: {where} did not answer with TLS (is it a plain-text port?)",
                permanent=True,
            )
        return DeliveryError(f"TLS: {reason or 'handshake failed'} ({where})")
    if isinstance(cause, TimeoutError):
        return DeliveryError(f"timed out connecting to {where}")
    if isinstance(cause, socket.gaierror):
        return DeliveryError(f"cannot resolve {broker.host}")
    if isinstance(cause, OSError):
        if cause.errno == errno.ECONNREFUSED:
            return DeliveryError(f"connection refused by {where}")
        if cause.errno == errno.ECONNRESET:
            return DeliveryError(f"{where} reset the connection")
        reason = cause.strerror or type(cause).__name__
        return DeliveryError(f"{where}: {reason[:1].lower()}{reason[1:]}")
    text = str(exc)
    if "timed out" in text.lower():
        return DeliveryError(f"{where} did not answer in time ({phase})")
    if isinstance(exc, aiomqtt.MqttCodeError):
        return DeliveryError(f"{where}: connection lost during {phase}")
    return DeliveryError(f"{where}: MQTT error during {phase}: {text[:120]}")


def _connack_text(code: int, user: str | None) -> str:
    if code == shared.BAD_CREDENTIALS:
        if user is None:
            return "authentication failed: the broker wants a username and password"
        return f'authentication failed for user "{user}" (bad user name or password)'
    if code == shared.NOT_AUTHORISED:
        if user is None:
            return "not authorised (the broker refuses anonymous clients)"
        # Mosquitto answers a wrong password with "not authorised" too.
        return f'not authorised for user "{user}" (wrong password, or not allowed to connect)'
    known = {
        _UNSUPPORTED_PROTOCOL: "the broker does not support MQTT 3.1.1",
        _CLIENT_ID_REJECTED: "the broker rejected the client identifier",
        _UNAVAILABLE: "the broker is unavailable",
        137: "the broker is busy",
        _BANNED: "the client is banned by the broker",
        _BAD_AUTH_METHOD: "the broker refused the authentication method",
        159: "the broker refused the connection (connection rate exceeded)",
    }
    return known.get(code, f"the broker refused the connection (code {code})")
