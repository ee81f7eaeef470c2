"""A Kafka wire-protocol responder for the kafka prober's tests.

This is a protocol responder, NOT a Kafka broker: it stores no messages, has no log, no
partitions to read from, no replication, no controller, no cluster. It answers the few
requests a client sends to learn what a broker is, from metadata the test configures. No Kafka
broker can be installed here (none is packaged for Debian, and no test may download a server),
so the prober is tested against this, on loopback.

Written from the Kafka protocol guide (kafka.apache.org/protocol) with `struct`, without
aiokafka's or kafka-python's codec, so that it is independent of the client under test
(tests/probers/test_kafka.py decodes its Metadata replies with kafka-python too, a second
implementation).

What it implements:

- framing: an int32 size before every request and response; request headers v1 (api_key,
  api_version, correlation_id, nullable client_id) and v2 (the same and tagged fields) for
  flexible versions; response headers v0 (correlation_id) and v1 (and tagged fields), with
  ApiVersions always answered with header v0 as the guide says.
- ApiVersions (key 18) v0-v3 (v3 flexible: compact arrays, tagged fields, the client's
  software name and version read); a version above v3 is answered in v0 with
  UNSUPPORTED_VERSION (35) and the supported list, as brokers do.
- Metadata (key 3) v0-v12 (v9+ flexible): brokers, cluster id, controller id, topics with
  error codes, partitions with leader, replicas, ISR, offline replicas, leader epoch, topic
  ids; a topic asked for and not configured is UNKNOWN_TOPIC_OR_PARTITION (3); a leaderless
  partition has leader -1 and LEADER_NOT_AVAILABLE (5).
- SaslHandshake (key 17) v0-v1 and SaslAuthenticate (key 36) v0-v2, mechanism PLAIN only,
  against configured users; a wrong password is SASL_AUTHENTICATION_FAILED (58) with a
  message, then the connection is closed. Before authentication any other request closes the
  connection, as a broker's SASL listener does. Without users, SaslHandshake is
  ILLEGAL_SASL_STATE (34), as on a broker's plaintext listener.
- TLS: the listener wraps its connections with the test's server context.
- faults (`mode`): "silent" (accepts, reads, never answers), "close" (closes every
  connection once its first request is read, unanswered), "garbage" (answers the first
  request with a well-framed reply that is not Kafka's: another correlation id and junk),
  "http" (answers an HTTP error and closes).

What it does not implement: every other API (Produce, Fetch, ...: the connection is closed,
as a broker closes on a request it cannot parse), SASL's SCRAM, GSSAPI and OAUTHBEARER
mechanisms (SaslHandshake answers UNSUPPORTED_SASL_MECHANISM, 33), SaslHandshake v0's raw
token exchange (the connection is closed), throttling, request size limits, and
authorization.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Broker", "KafkaPeer", "Topic", "encode_metadata_body"]

API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_VERSIONS = 18
API_SASL_AUTHENTICATE = 36

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_VERSION = 35
SASL_AUTHENTICATION_FAILED = 58

# api_key -> (min, max) the responder answers, and the first flexible version of each.
SUPPORTED: dict[int, tuple[int, int]] = {
    API_METADATA: (0, 12),
    API_SASL_HANDSHAKE: (0, 1),
    API_VERSIONS: (0, 3),
    API_SASL_AUTHENTICATE: (0, 2),
}
_FIRST_FLEXIBLE = {
    API_METADATA: 9,
    API_SASL_HANDSHAKE: 99,
    API_VERSIONS: 3,
    API_SASL_AUTHENTICATE: 2,
}

# The largest request read: past it the peer is not a Kafka client.
_MAX_REQUEST = 1 << 20


def flexible(api_key: int, version: int) -> bool:
    return version >= _FIRST_FLEXIBLE[api_key]


# --- encoding ---------------------------------------------------------------------------------


def int8(v: int) -> bytes:
    return struct.pack(">b", v)


def int16(v: int) -> bytes:
    return struct.pack(">h", v)


def int32(v: int) -> bytes:
    return struct.pack(">i", v)


def int64(v: int) -> bytes:
    return struct.pack(">q", v)


def boolean(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(v: str | None, compact: bool) -> bytes:
    """STRING / NULLABLE_STRING (int16 length, -1 null) or their COMPACT forms (uvarint
    length + 1, 0 null)."""
    if v is None:
        return uvarint(0) if compact else int16(-1)
    raw = v.encode()
    return (uvarint(len(raw) + 1) if compact else int16(len(raw))) + raw


def byte_string(v: bytes | None, compact: bool) -> bytes:
    if v is None:
        return uvarint(0) if compact else int32(-1)
    return (uvarint(len(v) + 1) if compact else int32(len(v))) + v


def array(items: Iterable[bytes] | None, compact: bool) -> bytes:
    if items is None:
        return uvarint(0) if compact else int32(-1)
    parts = list(items)
    return (uvarint(len(parts) + 1) if compact else int32(len(parts))) + b"".join(parts)


def tags(compact: bool) -> bytes:
    """An empty tagged-field section (flexible versions only)."""
    return uvarint(0) if compact else b""


# --- decoding ---------------------------------------------------------------------------------


class Reader:
    """Reads a request's fields in order; a short or malformed request raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("short request")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int8(self) -> int:
        return int(struct.unpack(">b", self.take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def boolean(self) -> bool:
        return self.int8() != 0

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def string(self, compact: bool) -> str | None:
        n = self.uvarint() - 1 if compact else self.int16()
        if n < 0:
            return None
        return self.take(n).decode()

    def byte_string(self, compact: bool) -> bytes | None:
        n = self.uvarint() - 1 if compact else self.int32()
        if n < 0:
            return None
        return self.take(n)

    def array_length(self, compact: bool) -> int:
        """The number of items, -1 for a null array."""
        return self.uvarint() - 1 if compact else self.int32()

    def skip_tags(self, compact: bool) -> None:
        if not compact:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # the tag
            self.take(self.uvarint())


@dataclass(frozen=True)
class Header:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_header(reader: Reader) -> Header:
    """Request header v1, or v2 (with tagged fields) when the request's version is
    flexible. The client id stays a NULLABLE_STRING in both."""
    api_key, api_version, correlation_id = reader.int16(), reader.int16(), reader.int32()
    client_id = reader.string(compact=False)
    if api_key in _FIRST_FLEXIBLE and flexible(api_key, api_version):
        reader.skip_tags(True)
    return Header(api_key, api_version, correlation_id, client_id)


# --- the metadata the responder serves ---------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True)
class Topic:
    """A topic of the metadata: `partitions` of them, each led by the first broker unless
    listed in `leaderless`; `error_code` other than 0 is reported for the topic itself."""

    name: str
    partitions: int = 1
    error_code: int = NONE
    leaderless: frozenset[int] = frozenset()
    internal: bool = False
    topic_id: uuid.UUID = field(default_factory=uuid.uuid4)


def _partition(index: int, topic: Topic, leader: int, replicas: list[int], v: int) -> bytes:
    c = v >= 9
    no_leader = index in topic.leaderless
    out = int16(LEADER_NOT_AVAILABLE if no_leader else NONE) + int32(index)
    out += int32(-1 if no_leader else leader)
    if v >= 7:
        out += int32(0)  # leader epoch
    out += array((int32(r) for r in replicas), c)
    out += array((int32(r) for r in ([] if no_leader else replicas)), c)  # ISR
    if v >= 5:
        out += array((), c)  # offline replicas
    return out + tags(c)


def _topic(topic: Topic, brokers: list[Broker], v: int) -> bytes:
    c = v >= 9
    leader = brokers[0].node_id if brokers else -1
    replicas = [b.node_id for b in brokers[:3]]
    out = int16(topic.error_code) + string(topic.name, c)
    if v >= 10:
        out += topic.topic_id.bytes
    if v >= 1:
        out += boolean(topic.internal)
    parts = (
        []
        if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION
        else [_partition(i, topic, leader, replicas, v) for i in range(topic.partitions)]
    )
    out += array(parts, c)
    if v >= 8:
        out += int32(-2147483648)  # topic authorized operations: not asked
    return out + tags(c)


def encode_metadata_body(
    v: int,
    brokers: list[Broker],
    topics: list[Topic],
    *,
    cluster_id: str | None,
    controller_id: int,
) -> bytes:
    """A MetadataResponse body of version `v` (without the response header)."""
    c = v >= 9
    out = int32(0) if v >= 3 else b""  # throttle time
    entries = []
    for b in brokers:
        entry = int32(b.node_id) + string(b.host, c) + int32(b.port)
        if v >= 1:
            entry += string(b.rack, c)
        entries.append(entry + tags(c))
    out += array(entries, c)
    if v >= 2:
        out += string(cluster_id, c)
    if v >= 1:
        out += int32(controller_id)
    out += array((_topic(t, brokers, v) for t in topics), c)
    if 8 <= v <= 10:
        out += int32(-2147483648)  # cluster authorized operations: not asked
    return out + tags(c)


def _metadata_topics(reader: Reader, v: int) -> list[str] | None:
    """The topic names a Metadata request asks for; None for all of them."""
    c = v >= 9
    n = reader.array_length(c)
    names: list[str] | None = None if n < 0 else []
    for _ in range(max(n, 0)):
        if v >= 10:
            reader.take(16)  # topic id
        name = reader.string(c)
        reader.skip_tags(c)
        if name is None:
            raise ValueError("a topic by id: not supported")
        assert names is not None
        names.append(name)
    if v >= 4:
        reader.boolean()  # allow_auto_topic_creation: never honoured (no topic is created)
    if 8 <= v <= 10:
        reader.boolean()
    if v >= 8:
        reader.boolean()
    reader.skip_tags(c)
    if v == 0 and names == []:
        return None  # v0: an empty list means every topic
    return names


class _Close(Exception):
    """The responder closes the connection (as a broker does on what it will not serve)."""


class KafkaPeer:
    """The responder on 127.0.0.1 and a free port; `async with KafkaPeer(...) as peer`.

    `users` ({name: password}) turns on SASL PLAIN; `ssl_context` TLS; `mode` a fault (see the
    module docstring); `versions` overrides the advertised (min, max) of api keys.
    `requests` records each request's (api_key, api_version) and `last_auto_create` what
    the last Metadata request said about creating topics.
    """

    def __init__(
        self,
        *,
        brokers: list[Broker] | None = None,
        topics: Iterable[Topic] = (),
        cluster_id: str | None = "probe-test-cluster",
        controller_id: int = 1,
        users: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mode: str = "normal",
        versions: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        assert mode in ("normal", "silent", "close", "garbage", "http")
        self.brokers = brokers
        self.topics = list(topics)
        self.cluster_id = cluster_id
        self.controller_id = controller_id
        self.users = dict(users or {})
        self.ssl_context = ssl_context
        self.mode = mode
        self.versions = {**SUPPORTED, **(versions or {})}
        self.requests: list[tuple[int, int]] = []
        self.client_ids: set[str | None] = set()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> KafkaPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.brokers is None:
            self.brokers = [Broker(1, "127.0.0.1", self.port)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # each conversation ends on its own (no cancellation)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._conversation(reader, writer)
        except (_Close, ValueError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()  # a FIN, as a broker closing a connection (RST if data is unread)

    async def _conversation(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        state = {"mechanism": None, "authenticated": not self.users}
        while True:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            if not 0 < size <= _MAX_REQUEST:
                raise _Close
            frame = await reader.readexactly(size)
            if self.mode == "close":
                raise _Close
            if self.mode == "silent":
                continue
            if self.mode == "garbage":
                writer.write(int32(8) + b"\x7f\xff\xff\xfe" + b"junk")
                await writer.drain()
                continue
            if self.mode == "http":
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                raise _Close
            request = Reader(frame)
            header = read_header(request)
            self.requests.append((header.api_key, header.api_version))
            self.client_ids.add(header.client_id)
            body, close_after = self._answer(header, request, state)
            hflex = header.api_key != API_VERSIONS and flexible(header.api_key, header.api_version)
            head = int32(header.correlation_id) + tags(hflex)
            writer.write(int32(len(head) + len(body)) + head + body)
            await writer.drain()
            if close_after:
                raise _Close

    def _answer(self, header: Header, request: Reader, state: dict[str, Any]) -> tuple[bytes, bool]:
        key, v = header.api_key, header.api_version
        if key == API_VERSIONS:
            return self._api_versions(request, v), False
        low, high = self.versions.get(key, (1, 0))
        if not low <= v <= high:
            raise _Close  # a broker closes on a request version it does not speak
        if key == API_SASL_HANDSHAKE:
            return self._sasl_handshake(request, v, state)
        if key == API_SASL_AUTHENTICATE:
            return self._sasl_authenticate(request, v, state)
        if not state["authenticated"]:
            raise _Close  # a SASL listener before authentication
        if key == API_METADATA:
            return self._metadata(request, v), False
        raise _Close

    def _api_versions(self, request: Reader, v: int) -> bytes:
        low, high = self.versions[API_VERSIONS]
        if not low <= v <= high:
            v, error = 0, UNSUPPORTED_VERSION
        else:
            error = NONE
            if v >= 3:
                request.string(True)  # client software name
                request.string(True)  # client software version
                request.skip_tags(True)
        c = v >= 3
        entries = (
            int16(k) + int16(lo) + int16(hi) + tags(c)
            for k, (lo, hi) in sorted(self.versions.items())
        )
        out = int16(error) + array(entries, c)
        if v >= 1:
            out += int32(0)  # throttle time
        return out + tags(c)

    def _sasl_handshake(self, request: Reader, v: int, state: dict[str, Any]) -> tuple[bytes, bool]:
        mechanism = request.string(False)
        enabled = ["PLAIN"] if self.users else []
        mechanisms = array((string(m, False) for m in enabled), False)
        if not self.users:
            return int16(ILLEGAL_SASL_STATE) + mechanisms, False
        if mechanism not in enabled:
            return int16(UNSUPPORTED_SASL_MECHANISM) + mechanisms, False
        if v == 0:
            raise _Close  # v0's raw SASL tokens: not implemented
        state["mechanism"] = mechanism
        return int16(NONE) + mechanisms, False

    def _sasl_authenticate(
        self, request: Reader, v: int, state: dict[str, Any]
    ) -> tuple[bytes, bool]:
        c = v >= 2
        token = request.byte_string(c) or b""
        request.skip_tags(c)

        def reply(error: int, message: str | None) -> bytes:
            out = int16(error) + string(message, c) + byte_string(b"", c)
            if v >= 1:
                out += int64(0)  # session lifetime: none
            return out + tags(c)

        if state["mechanism"] != "PLAIN":
            return reply(ILLEGAL_SASL_STATE, "SaslAuthenticate before SaslHandshake"), True
        parts = token.split(b"\x00")
        ok = False
        if len(parts) == 3:
            _authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
            ok = user in self.users and self.users[user] == password
        if not ok:
            message = "Authentication failed: Invalid username or password"
            return reply(SASL_AUTHENTICATION_FAILED, message), True
        state["authenticated"] = True
        return reply(NONE, None), False

    def _metadata(self, request: Reader, v: int) -> bytes:
        asked = _metadata_topics(request, v)
        known = {t.name: t for t in self.topics}
        if asked is None:
            topics = list(self.topics)
        else:
            topics = [
                known.get(name) or Topic(name, partitions=0, error_code=UNKNOWN_TOPIC_OR_PARTITION)
                for name in asked
            ]
        assert self.brokers is not None
        return encode_metadata_body(
            v, self.brokers, topics, cluster_id=self.cluster_id, controller_id=self.controller_id
        )
