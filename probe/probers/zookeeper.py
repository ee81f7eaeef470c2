"""ZooKeeper probes (`client:` with `driver: zookeeper`): open a session, read znodes, close
the session.

What a ZooKeeper client goes through, in ZooKeeper's own client protocol (never the
four-letter words `ruok`/`srvr`, which 3.5+ servers answer only when whitelisted):

    resolve -> connect -> TLS handshake -> session -> auth -> read -> close

`data: {"/path": expected}` reads each znode (getData) and compares its data as text, as
EaseProbe does; without `data` the root znode `/` is read (EaseProbe's check). `username` and
`password` add a `digest` identity to the session (ZooKeeper's `addauth digest user:pw`).
ZooKeeper accepts any digest and judges it only at the ACL of a znode, so a wrong password
shows as `not allowed to read znode "/x" as user "app" (wrong password, or the ACL denies
it)`. The session is closed at the end (closeSession), so a server checked every few seconds
does not keep a session per check until it expires.

Why the wire protocol here instead of a client library: a check is four small exchanges
(connect, addauth, getData, closeSession) in ZooKeeper's fixed binary framing (jute), about
a hundred lines. kazoo is blocking (a thread per check that a timeout cannot stop) and aiozk
keeps a session alive with background reconnects and heartbeats, which turns a refused
connection into a wait and outlives a cancelled check. Written here, the socket is opened by
`_connect` like every other prober's, each phase is reported, and cancellation just closes it.

Messages (`_describe()` and the judged mismatches): `connection refused`,
`the server closed the connection (is it serving requests?)`, `session expired at connect`,
`znode "/x": expected "ok", got "no"`, `znode "/x" does not exist`,
`not a ZooKeeper server (invalid reply)`.

Conditions read `[VALUE]./path`: the text a znode of `data` held (absent when it does not
exist), as with redis and etcd.
"""

from __future__ import annotations

import asyncio
import struct
from typing import ClassVar

from pydantic import field_validator, model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import ClientSpec, LazyClientTLS
from probe.probers._connect import NODELAY, connect_tcp
from probe.probers._net import describe_os_error, error_text
from probe.probers._values import VALUE, data_outcome, value_key_problems
from probe.probers.base import Prober, SharedResources

__all__ = ["ZooKeeperProber", "ZooKeeperSpec"]

# Longest value shown in a mismatch message; the rest is cut with "...".
_SHOWN = 80
# The largest reply we read: ZooKeeper's own default limit (jute.maxbuffer, 1 MiB) and room
# for the headers. A longer length prefix is no ZooKeeper talking.
_MAX_FRAME = 1024 * 1024 + 1024
# The session timeout we ask for, in ms: the server clamps it to its own bounds (2 to 20
# ticks). It matters little: the session is closed at the end of the check.
_SESSION_MS = 10_000

# Request types and special xids of ZooKeeper's protocol (ZooDefs.OpCode, ClientCnxn).
_GET_DATA = 4
_CLOSE_SESSION = -11
_AUTH = 100
_AUTH_XID = -4
# Error codes (KeeperException.Code) that a read can meet.
_NO_NODE = -101
_NO_AUTH = -102
_AUTH_FAILED = -115
_ERRORS = {
    -4: "connection loss",
    -7: "operation timed out on the server",
    -8: "bad arguments",
    -112: "session expired",
    -115: "authentication failed",
    -118: "session moved",
    -119: "not read-only",
}
# A znode's Stat after its data in a getData reply: 6 longs and 5 ints, fixed size.
_STAT_SIZE = 6 * 8 + 5 * 4


class ZooKeeperSpec(ClientSpec):
    """A `client:` entry with `driver: zookeeper`.

    `host: host:port` (a ZooKeeper server's client port, usually 2181), `data:
    {"/path": expected}`, optionally `username`/`password` (a digest identity), and
    `ca`/`cert`/`key`/`insecure` for a server's secureClientPort (TLS from the first byte).
    """

    kind: ClassVar[str] = "zookeeper"
    # [VALUE]./path: what a znode of `data` held (see probers/_values.py).
    condition_placeholders: ClassVar[frozenset[str]] = VALUE

    @field_validator("data")
    @classmethod
    def _znode_paths(cls, data: dict[str, str]) -> dict[str, str]:
        for path in data:
            if not path.startswith("/") or (path != "/" and path.endswith("/")) or "//" in path:
                raise ValueError(f'"{path}" is not a znode path (as /app/config)')
        return data

    @model_validator(mode="after")
    def _valid_zookeeper(self) -> ZooKeeperSpec:
        if self.database is not None:
            raise ValueError("the zookeeper driver takes no database")
        if self.query is not None:
            raise ValueError('the zookeeper driver runs no query; use data: {"/path": "expected"}')
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (a digest identity)")
        if self.username is not None and ":" in self.username:
            raise ValueError("username: a digest user name cannot contain ':'")
        if self.host is not None and "://" in self.host:
            raise ValueError("host: use host:port (TLS is set by ca, cert/key or insecure)")
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        """The common problems, and each `[VALUE]./path` whose path is not in `data`."""
        return value_key_problems(self.parsed_conditions(), self.data, super().condition_problems())


class _ZKError(Exception):
    """An error code in a reply header."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Session:
    """One connection's framing: length-prefixed jute records, replies read by xid."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.xid = 0

    async def send(self, payload: bytes) -> None:
        self.writer.write(struct.pack(">i", len(payload)) + payload)
        await self.writer.drain()

    async def receive(self) -> bytes:
        (length,) = struct.unpack(">i", await self.reader.readexactly(4))
        if not 0 < length <= _MAX_FRAME:
            raise ValueError(f"frame length {length}")
        return await self.reader.readexactly(length)

    async def connect(self) -> int:
        """The connect handshake; the session timeout the server granted (ms)."""
        # protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes for a new
        # session, as ZooKeeper's own client sends), readOnly (false: a partitioned server
        # that could only serve reads should not pass for healthy).
        await self.send(struct.pack(">iqiqi16s?", 0, 0, _SESSION_MS, 0, 16, b"", False))
        reply = await self.receive()
        if len(reply) < 20:
            raise ValueError("short connect reply")
        _version, granted, _session = struct.unpack_from(">iiq", reply)
        return int(granted)

    async def request(self, op: int, body: bytes, *, xid: int | None = None) -> bytes:
        """Send one request and return its reply body; raises _ZKError for an error code."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        await self.send(struct.pack(">ii", xid, op) + body)
        while True:
            reply = await self.receive()
            if len(reply) < 16:
                raise ValueError("short reply header")
            got, _zxid, err = struct.unpack_from(">iqi", reply)
            if got != xid:
                continue  # a notification or ping reply: not ours (we set no watches)
            if err != 0:
                raise _ZKError(err)
            return reply[16:]

    async def get_data(self, path: str) -> bytes | None:
        reply = await self.request(_GET_DATA, _string(path) + b"\x00")  # watch: false
        (length,) = struct.unpack_from(">i", reply)
        if length < 0:
            return None  # a znode created without data
        if len(reply) < 4 + length + _STAT_SIZE:
            raise ValueError("short getData reply")
        return reply[4 : 4 + length]


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


class ZooKeeperProber(Prober[ZooKeeperSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = ZooKeeperSpec

    def __init__(self, spec: ZooKeeperSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._tls = LazyClientTLS(spec, spec.uses_tls)

    async def check(self, ctx: CheckContext) -> Outcome:
        spec = self.spec
        host, port = spec.host_port()
        tls = self._tls.get()
        writer: asyncio.StreamWriter | None = None
        paths = list(spec.data) or ["/"]
        values: dict[str, str] = {}
        mismatches: list[str] = []
        try:
            sock = await connect_tcp(host, port, ctx, options=(NODELAY,))
            try:
                if tls is not None:
                    ctx.phase = "TLS handshake"
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=tls, server_hostname=host if tls is not None else None
                )
            except BaseException:
                sock.close()
                raise
            session = _Session(reader, writer)
            ctx.phase = "session"
            granted = await session.connect()
            if granted <= 0:
                raise ProbeError("session expired at connect", **ctx.details)
            ctx.details["session_timeout_ms"] = granted
            if spec.username is not None and spec.password is not None:
                ctx.phase = "auth"
                secret = spec.password.get_secret_value()
                identity = _string(f"{spec.username}:{secret}")
                body = struct.pack(">i", 0) + _string("digest") + identity
                await session.request(_AUTH, body, xid=_AUTH_XID)
            ctx.phase = "read"
            if spec.data:
                ctx.facts["VALUE"] = values
            for path in paths:
                problem = await self._read(session, path, values)
                if problem is not None:
                    mismatches.append(problem)
            ctx.phase = "close"
            await session.request(_CLOSE_SESSION, b"")
        except (OSError, EOFError, ValueError, struct.error, _ZKError) as exc:
            raise ProbeError(self._describe(exc, ctx.phase), **ctx.details) from None
        finally:
            if writer is not None:
                writer.transport.abort()

        message = f"session opened on {ctx.details.get('peer', spec.host)}"
        if not spec.data:
            message += "; / read"
        return data_outcome(ctx.details, len(spec.data), mismatches, message, noun="znode")

    async def _read(self, session: _Session, path: str, values: dict[str, str]) -> str | None:
        """None when `path` holds what `data` expects (or, without `data`, when it reads),
        else what is wrong: a judged result, not an error."""
        expected = self.spec.data.get(path)
        try:
            raw = await session.get_data(path)
        except _ZKError as exc:
            if exc.code == _NO_NODE:
                return f'znode "{path}" does not exist'
            if exc.code == _NO_AUTH:
                user = self.spec.username
                if user is None:
                    return f'not allowed to read znode "{path}" (its ACL)'
                return (
                    f'not allowed to read znode "{path}" as user "{user}" '
                    "(wrong password, or the ACL denies it)"
                )
            raise
        text = "" if raw is None else raw.decode("utf-8", "replace")
        if expected is None:
            return None
        values[path] = text
        if text == expected:
            return None
        return f'znode "{path}": expected "{_shown(expected)}", got "{_shown(text)}"'

    def _describe(self, exc: BaseException, phase: str) -> str:
        """The one place connection and protocol errors become messages."""
        if isinstance(exc, _ZKError):
            if exc.code == _AUTH_FAILED:
                return f'authentication failed for user "{self.spec.username}"'
            return f"zookeeper error during {phase}: " + _ERRORS.get(exc.code, f"code {exc.code}")
        if isinstance(exc, asyncio.IncompleteReadError | EOFError | ConnectionResetError):
            if phase == "session":
                return "the server closed the connection (is it serving requests?)"
            return "the server closed the connection"
        known = describe_os_error(exc)
        if known is not None:
            return known
        if isinstance(exc, ValueError | struct.error):
            return "not a ZooKeeper server (invalid reply)"
        return f"zookeeper error: {error_text(exc)}"


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
