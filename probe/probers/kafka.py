"""Kafka probes (`client:` with `driver: kafka`, as EaseProbe's): connect to one broker, read
the cluster's metadata, and optionally check that topics exist and have a leader.

    connect -> [TLS handshake] -> ApiVersions -> [SASL] -> metadata

EaseProbe's driver dials the broker and reads the partitions; so does this one: a check is
up when the broker answers a Metadata request. `topics: [name, ...]` (ours) asks for those
topics only, and each must be in the answer without an error code and with a leader for every
partition: `topic "x": does not exist`, `topic "x": partition 2 has no leader`. Without
`topics` the metadata of every topic is read (EaseProbe's check). The request never asks the
broker to create a topic (allow_auto_topic_creation false, Metadata v4+): a probe of a
misspelt topic must not create it.

Conditions read `[BROKERS]` (the number of brokers in the metadata) and `[TOPICS]` (the
number of topics in it); the details hold both, the controller's id and the cluster id when
the broker says them.

`username`/`password` authenticate with SASL (`sasl: plain` by default, or `scram-sha-256`,
`scram-sha-512`); `ca`/`cert`/`key`/`insecure` connect with TLS. SASL PLAIN without TLS sends
the password in the clear, as every Kafka client does on a SASL_PLAINTEXT listener.

Why aiokafka's connection layer (`AIOKafkaConnection`, what `aiokafka.conn.create_conn`
builds) and not its client (`AIOKafkaClient.bootstrap()`): bootstrap logs the real error and
raises only "Unable to bootstrap from ...", so a refused port, a wrong password and a broker
that never answers would all read the same; and it starts a background metadata task that
outlives the check. The connection is one socket that raises what went wrong, negotiates the
API versions (ApiVersions, inside `connect()`) and runs the SASL exchange, all of which we
should not write. It is subclassed only to report the phases and the peer's address
(`_do_version_lookup` and `_do_sasl_handshake`, hooks of aiokafka 0.11-0.14: the version is
bounded in pyproject.toml), and it is closed on every path, its transport aborted.

Messages (`_describe()`): `connection refused`, `SASL authentication failed: <the broker's
message>`, `SASL: the broker does not enable SCRAM-SHA-256`, `TLS: ...`, `not a Kafka broker
(...)` when the peer answers something that is not Kafka or closes without an answer. A peer
that never answers is the scheduler's timeout (`timeout after 5s during ApiVersions`): every
request's own timeout is the time left to the probe's, plus a margin, so the scheduler's
strikes first and names the phase.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Sequence
from typing import Any, ClassVar

import aiokafka.errors as kafka_errors
from aiokafka.conn import AIOKafkaConnection
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import Field, field_validator, model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import ClientSpec, LazyClientTLS
from probe.probers._net import describe_os_error, error_text, format_address, iter_causes
from probe.probers._values import data_outcome
from probe.probers.base import Prober, SharedResources
from probe.text import printable

__all__ = ["KafkaProber", "KafkaSpec"]

# What `sasl:` may say -> aiokafka's mechanism name.
_MECHANISMS = {"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}
# Kafka's own rule for a topic name (Topic.java): these characters, 1 to 249 of them.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
# The client id the broker logs for our connections.
_CLIENT_ID = "probe"
# How much longer than the probe's timeout aiokafka's own timers run, so that the
# scheduler's timeout (which names the phase) is the one that strikes.
_TIMEOUT_MARGIN = 1.0
# Error codes of the Metadata response that get words of their own (Errors.java).
_UNKNOWN_TOPIC = 3
_LEADER_NOT_AVAILABLE = 5
_REPLICA_NOT_AVAILABLE = 9  # a replica is offline: the partition still has its leader
_TOPIC_AUTHORIZATION_FAILED = 29
# How many topic problems the details list.
_LISTED = 10

# aiokafka's connection logs, for every check: a warning that SASL PLAIN goes in the clear
# (said once in the README instead), "Authenticated as ...", and the traceback of a reply it
# cannot parse (the check reports it: "not a Kafka broker (...)"). They are dropped; every
# other record of aiokafka's passes.
_CHATTER = frozenset(
    {
        "Sending username and password in the clear",
        "Authenticated as %s via %s",
        "Unexpected exception in AIOKafkaConnection",
    }
)


# Its debug lines "Request to ...: <request>" print a SaslAuthenticate request whole, the
# password of SASL PLAIN in it: those (and their responses) are dropped too.
_TRACES = frozenset({"Request to %s:%d %d: %s", "Response from %s:%d %d: %s"})


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _CHATTER:
            return False
        if record.msg in _TRACES and isinstance(record.args, tuple) and record.args:
            return not type(record.args[-1]).__name__.startswith("SaslAuthenticate")
        return True


logging.getLogger("aiokafka.conn").addFilter(_DropChatter())


class KafkaSpec(ClientSpec):
    """A `client:` entry with `driver: kafka`: `host` (a broker's host:port), optionally
    `username`/`password` (SASL, `sasl: plain|scram-sha-256|scram-sha-512`), the TLS keys,
    and `topics: [name, ...]` that must exist and have a leader for each partition."""

    kind: ClassVar[str] = "kafka"
    # [BROKERS]: brokers in the metadata; [TOPICS]: topics in it.
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"BROKERS", "TOPICS"})

    topics: list[str] = Field(default_factory=list)
    sasl: str | None = None

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, topics: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in topics:
            if name in (".", "..") or not _TOPIC_NAME.fullmatch(name):
                raise ValueError(
                    f'"{printable(name, 60)}" is not a Kafka topic name'
                    ' (1 to 249 letters, digits, ".", "_" or "-")'
                )
            if name in seen:
                raise ValueError(f'topic "{name}" is listed twice')
            seen.add(name)
        return topics

    @field_validator("sasl")
    @classmethod
    def _sasl_mechanism(cls, value: str | None) -> str | None:
        if value is None:
            return None
        mechanism = value.strip().lower()
        if mechanism not in _MECHANISMS:
            raise ValueError(
                f'"{printable(value, 40)}" is not a SASL mechanism we speak'
                " (plain, scram-sha-256 or scram-sha-512)"
            )
        return mechanism

    @model_validator(mode="after")
    def _kafka_keys(self) -> KafkaSpec:
        if self.query is not None:
            raise ValueError("the kafka driver runs no query; use topics: [name, ...]")
        if self.database is not None:
            raise ValueError("the kafka driver has no databases; use topics: [name, ...]")
        if self.data:
            raise ValueError(
                "the kafka driver reads no keys; use topics: [name, ...] to check topics"
            )
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username (SASL)")
        if self.username is not None and self.password is None:
            raise ValueError("username needs a password (SASL)")
        if self.sasl is not None and self.username is None:
            raise ValueError("sasl needs username and password")
        if self.host is not None and "://" in self.host:
            raise ValueError("host: use host:port (TLS is set by ca, cert/key or insecure)")
        return self

    @property
    def mechanism(self) -> str | None:
        """aiokafka's name of the SASL mechanism, None without credentials."""
        if self.username is None:
            return None
        return _MECHANISMS[self.sasl or "plain"]


class _Connection(AIOKafkaConnection):  # type: ignore[misc]  # aiokafka has no type hints
    """aiokafka's connection, reporting its phases and the peer's address on `ctx`."""

    def __init__(self, ctx: CheckContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = ctx
        self.transport: asyncio.Transport | None = None

    async def _do_version_lookup(self) -> None:
        # Called by connect() once the TCP (and TLS) connection is up.
        writer = self._writer
        if writer is not None:
            self.transport = writer.transport
            peer = writer.get_extra_info("peername")
            if peer:
                self._ctx.details["peer"] = format_address(peer)
                self._ctx.facts["IP"] = str(peer[0])
        self._ctx.phase = "ApiVersions"
        await super()._do_version_lookup()

    async def _do_sasl_handshake(self) -> None:
        self._ctx.phase = "SASL"
        await super()._do_sasl_handshake()

    def abort(self) -> None:
        """Close at once, on every path (twice too): nothing is awaited."""
        self.close()
        if self.transport is not None:
            self.transport.abort()
            self.transport = None


class KafkaProber(Prober[KafkaSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = KafkaSpec

    def __init__(self, spec: KafkaSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port = spec.host_port()
        self._tls = LazyClientTLS(spec, spec.uses_tls)
        mechanism = spec.mechanism
        if mechanism is None:
            self._protocol = "SSL" if spec.uses_tls else "PLAINTEXT"
        else:
            self._protocol = "SASL_SSL" if spec.uses_tls else "SASL_PLAINTEXT"

    def prepare(self) -> None:
        self._tls.get()

    async def check(self, ctx: CheckContext) -> Outcome:
        spec = self.spec
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.timeout + _TIMEOUT_MARGIN
        tls = self._tls.get()
        ctx.phase = "connect"
        conn: _Connection | None = None
        try:
            async with asyncio.timeout_at(deadline):  # bounded even without the scheduler
                conn = _Connection(
                    ctx,
                    self._host,
                    self._port,
                    client_id=_CLIENT_ID,
                    # The time left, for each of aiokafka's steps: never less than the check's.
                    request_timeout_ms=max(deadline - loop.time(), 0.001) * 1000,
                    ssl_context=tls,
                    security_protocol=self._protocol,
                    sasl_mechanism=spec.mechanism,
                    sasl_plain_username=spec.username,
                    sasl_plain_password=(
                        spec.password.get_secret_value() if spec.password is not None else None
                    ),
                )
                if tls is not None:
                    ctx.phase = "connect and TLS handshake"
                await conn.connect()  # TCP, TLS, ApiVersions, SASL
                ctx.phase = "metadata"
                request = MetadataRequest(spec.topics or None, allow_auto_topic_creation=False)
                response = await conn.send(request)
        except ProbeError:
            raise
        except (OSError, EOFError, kafka_errors.KafkaError, ValueError, AssertionError) as exc:
            # TimeoutError is an OSError: aiokafka's timers, or ours without the scheduler.
            raise ProbeError(self._describe(exc, ctx.phase), **ctx.details) from None
        except NotImplementedError:
            # aiokafka speaks Metadata v0-v5; a broker whose oldest version is newer.
            raise ProbeError(
                "no Metadata version in common with the broker (aiokafka speaks v0-v5)",
                **ctx.details,
            ) from None
        finally:
            if conn is not None:
                conn.abort()
        return self._judge(ctx, response)

    def _judge(self, ctx: CheckContext, response: Any) -> Outcome:
        """Up with the metadata's counts, or down with the first topic that is not well."""
        try:
            brokers = len(response.brokers)
            topics = {str(topic[1]): topic for topic in response.topics}
        except (AttributeError, TypeError, IndexError):
            raise ProbeError("not a Kafka broker (invalid Metadata reply)", **ctx.details) from None
        ctx.details["brokers"] = brokers
        ctx.details["topics"] = len(topics)
        controller = getattr(response, "controller_id", None)
        if isinstance(controller, int) and controller >= 0:
            ctx.details["controller_id"] = controller
        cluster = getattr(response, "cluster_id", None)
        if isinstance(cluster, str) and cluster:
            ctx.details["cluster_id"] = printable(cluster, 80)
        ctx.facts["BROKERS"] = brokers
        ctx.facts["TOPICS"] = len(topics)
        problems = [
            problem
            for name in self.spec.topics
            if (problem := _topic_problem(name, topics.get(name))) is not None
        ]
        if problems:
            ctx.details["topic_problems"] = problems[:_LISTED]
        message = f"metadata: {_count(brokers, 'broker')}, {_count(len(topics), 'topic')}"
        return data_outcome(ctx.details, len(self.spec.topics), problems, message, noun="topic")

    def _describe(self, exc: BaseException, phase: str) -> str:
        """The one place connection and protocol errors become messages."""
        if isinstance(exc, kafka_errors.SaslAuthenticationFailed):
            said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
            said = printable(said.strip(), 160)
            return f"SASL authentication failed: {said}" if said else "SASL authentication failed"
        if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
            return f"SASL: the broker does not enable {self.spec.mechanism}"
        if isinstance(exc, kafka_errors.IllegalSaslStateError):
            return "SASL: this listener does not take SASL (remove username and password?)"
        if isinstance(exc, kafka_errors.IncompatibleBrokerVersion):
            return "not a Kafka broker (it lists no Metadata version in ApiVersions)"
        for cause in iter_causes(exc):
            if isinstance(cause, socket.gaierror):
                return f"name resolution failed for host {self._host}"
        if isinstance(exc, TimeoutError):
            return f"timed out during {phase}"
        known = describe_os_error(exc)
        if known is not None:
            return known
        if any(isinstance(c, EOFError) for c in iter_causes(exc)) or _closed(exc):
            return self._closed(phase)
        if isinstance(exc, kafka_errors.KafkaError | ValueError | AssertionError):
            # A reply aiokafka could not read, or one to another request.
            return f"not a Kafka broker (invalid reply to {_request_of(phase)})"
        return f"kafka error: {error_text(exc)}"

    def _closed(self, phase: str) -> str:
        if phase in ("connect", "ApiVersions"):
            hint = "" if self.spec.uses_tls else "; a TLS listener needs ca or insecure"
            return f"not a Kafka broker (it closed the connection without answering{hint})"
        if phase == "metadata" and self.spec.username is None:
            return (
                "the broker closed the connection at the Metadata request"
                " (does the listener need SASL? set username and password)"
            )
        return f"the broker closed the connection during {phase}"


def _closed(exc: BaseException) -> bool:
    """aiokafka's "no connection to broker" (the connection went before a request)."""
    return isinstance(exc, kafka_errors.KafkaConnectionError) and exc.__cause__ is None


def _request_of(phase: str) -> str:
    return {"connect": "ApiVersions", "metadata": "Metadata"}.get(phase, phase)


def _topic_problem(name: str, topic: Sequence[Any] | None) -> str | None:
    """What is wrong with topic `name` in the metadata (a judged result), or None."""
    if topic is None:
        return f'topic "{name}": does not exist'
    code, partitions = int(topic[0]), topic[-1]
    if code == _UNKNOWN_TOPIC:
        return f'topic "{name}": does not exist'
    if code == _TOPIC_AUTHORIZATION_FAILED:
        return f'topic "{name}": not authorized to describe it'
    if code != 0 and code != _LEADER_NOT_AVAILABLE:
        return f'topic "{name}": {_error_name(code)}'
    if not partitions:
        return f'topic "{name}": has no partitions'
    for partition in sorted(partitions, key=lambda p: int(p[1])):
        error, index, leader = int(partition[0]), int(partition[1]), int(partition[2])
        if leader < 0 or error == _LEADER_NOT_AVAILABLE:
            return f'topic "{name}": partition {index} has no leader'
        if error not in (0, _REPLICA_NOT_AVAILABLE):
            return f'topic "{name}": partition {index}: {_error_name(error)}'
    if code == _LEADER_NOT_AVAILABLE:
        return f'topic "{name}": leader not available'
    return None


def _error_name(code: int) -> str:
    """A Kafka error code as the protocol names it (UNKNOWN_SERVER_ERROR, ...)."""
    error = kafka_errors.for_code(code)
    name = getattr(error, "message", None)
    return f"{name} (error {code})" if isinstance(name, str) else f"error {code}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
