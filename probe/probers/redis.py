"""Redis probes (`client:` with `driver: redis`): connect, AUTH, SELECT, PING, and optionally
compare keys with the values they should hold.

Every check opens a connection of its own (a `redis.asyncio` Connection, never a pool), so it
exercises what a new client goes through: name resolution, TCP connect, TLS, AUTH and SELECT.
The steps are sent one by one rather than by the driver's connect handshake, so that a timeout
says where it struck (`ctx.phase`) and a refusal says which step refused:

    resolve -> connect -> TLS handshake -> auth -> select -> ping -> info -> data

`INFO server` gives the server version for the details; a server that refuses INFO (an ACL
without `+info`, a renamed command) is still up. `data: {key: expected}` runs `GET key` and
compares the value as text. Nothing else is ever sent: the driver takes no `query`.

Conditions read `[VALUE].key`: the text a key of `data` held (a missing key, or one that holds
no string, is absent: `has([VALUE].key) == false`). They judge on top of `data`'s own
comparison, and may name only keys of `data` (checked at load).

Messages: driver exceptions are mapped in `_describe()`: `connection refused`,
`authentication failed for user "app"`, `authentication required`,
`invalid database index 99`, `permission denied: ...`; data mismatches are judged results:
`key "k": expected "v", got "w"` or `key "k": expected "v", got nothing`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import redis.asyncio.connection as redis_connection
import redis.exceptions as redis_errors
from pydantic import model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import (
    LazyClientTLS,
    SchemedHostSpec,
    ServiceDSN,
    Target,
    dsn_or_key,
    split_service_dsn,
)
from probe.probers._connect import NODELAY, connect_tcp
from probe.probers._net import describe_os_error, error_text, iter_causes
from probe.probers._values import VALUE, data_outcome, value_key_problems
from probe.probers.base import Prober, SharedResources

__all__ = ["DEFAULT_PORT", "RedisProber", "RedisSpec"]

DEFAULT_PORT = 6379

_DB_INDEX = re.compile(r"\d{1,9}")
# Longest value shown in a mismatch message; the rest is cut with "...".
_SHOWN = 80


@dataclass(frozen=True, slots=True)
class _Target(Target):
    """Where and how to connect, and the database to SELECT."""

    db: int


class RedisSpec(SchemedHostSpec):
    """A `client:` entry with `driver: redis`.

    `host: host:port` (or `redis://host:port`, `rediss://host:port` for TLS) or
    `dsn: redis[s]://[user[:password]@]host[:port][/db]`; `username` (an ACL user, Redis 6+),
    `password`, `database` (the db index, default 0), `data: {key: expected}`, and
    `ca`/`cert`/`key`/`insecure` for TLS.
    """

    kind: ClassVar[str] = "redis"
    # [VALUE].key: what a key of `data` held (see probers/_values.py).
    condition_placeholders: ClassVar[frozenset[str]] = VALUE
    dsn_schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")
    host_schemes: ClassVar[dict[str, bool]] = {"redis": False, "rediss": True, "tcp": False}

    @model_validator(mode="after")
    def _redis_keys(self) -> RedisSpec:
        if self.query is not None:
            raise ValueError(
                "the redis driver runs no query (it never sends arbitrary commands); "
                "use data: {key: expected} to check values"
            )
        for key in self.data:
            if not key:
                raise ValueError("data: a redis key cannot be empty")
        self._check_host_scheme()
        if self.database is not None and not _DB_INDEX.fullmatch(self.database.strip()):
            raise ValueError(
                f'database: "{self.database}" is not a database index (a number such as 0 or 3)'
            )
        target = self.target()  # raises ValueError for a DSN we cannot use
        if target.username is not None and target.password is None:
            raise ValueError("username needs a password (AUTH takes both)")
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        """The common problems, and each `[VALUE].key` whose key is not in `data`."""
        return value_key_problems(self.parsed_conditions(), self.data, super().condition_problems())

    def target(self) -> _Target:
        """The connection target, merging the DSN with the keys (validated: unambiguous)."""
        dsn = self._dsn()
        target = self._target(dsn, default_port=DEFAULT_PORT)
        database = self.database.strip() if self.database is not None else None
        if dsn is not None:
            database = dsn_or_key(
                dsn.path.strip("/") or None, database, "database in the dsn path or in database"
            )
        return _Target(**asdict(target), db=int(database) if database else 0)

    def _dsn(self) -> ServiceDSN | None:
        """The DSN's parts: redis[s]://[user[:password]@]host[:port][/db], nothing more."""
        if self.dsn is None:
            return None
        dsn = split_service_dsn(self.dsn.get_secret_value())
        if dsn.has_query:
            raise ValueError(
                "dsn: query parameters are not supported; use database, ca/cert/key and insecure"
            )
        db = dsn.path.strip("/")
        if db and not _DB_INDEX.fullmatch(db):
            raise ValueError("dsn: the path must be a database index, as in redis://host:6379/3")
        return dsn


class _ProbeConnection(redis_connection.Connection):
    """A redis.asyncio Connection that reports its phases and uses our resolver and TLS.

    Only `_connect` is ours (the hook redis-py's own connection classes override); the
    protocol, the parser and the replies are the driver's.
    """

    def __init__(
        self,
        *,
        ctx: CheckContext,
        ssl_context: ssl.SSLContext | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._ssl_context = ssl_context

    async def _connect(self) -> None:
        ctx = self._ctx
        sock = await connect_tcp(self.host, self.port, ctx, options=(NODELAY,))
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        self._reader, self._writer = reader, writer
        if self._ssl_context is not None:
            ctx.phase = "TLS handshake"
            await writer.start_tls(self._ssl_context, server_hostname=self.host)

    def abort(self) -> None:
        """Close at once, without waiting for anything (safe on every path, twice too)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.transport.abort()


class RedisProber(Prober[RedisSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = RedisSpec

    def __init__(self, spec: RedisSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._target = spec.target()
        self._tls = LazyClientTLS(spec, self._target.tls)

    async def check(self, ctx: CheckContext) -> Outcome:
        target = self._target
        ctx.details["db"] = target.db
        conn = _ProbeConnection(
            ctx=ctx,
            ssl_context=self._tls.get(),
            host=target.host,
            port=target.port,
            socket_timeout=None,  # the scheduler bounds the whole check
            socket_connect_timeout=None,
            socket_keepalive=False,
            driver_info=None,  # no CLIENT SETINFO: we send AUTH and SELECT ourselves
            protocol=2,  # no HELLO on connect (redis-py 8 defaults to RESP3; Redis < 6 has none)
        )
        try:
            await conn.connect()  # type: ignore[no-untyped-call]  # resolve, connect, TLS
            if target.password is not None:
                ctx.phase = "auth"
                auth = (target.username, target.password) if target.username else (target.password,)
                await _command(conn, "AUTH", *auth)
            if target.db:
                ctx.phase = "select"
                await _command(conn, "SELECT", target.db)
            ctx.phase = "ping"
            await _command(conn, "PING")
            ctx.phase = "info"
            version = await _server_version(conn)
            if version is not None:
                ctx.details["version"] = version
            mismatches: list[str] = []
            if self.spec.data:
                ctx.phase = "data"
                # [VALUE] for the conditions: filled as keys are read, so it holds what was
                # read even when a later key fails the check.
                values: dict[str, str] = {}
                ctx.facts["VALUE"] = values
                for key, expected in self.spec.data.items():
                    problem = await _check_key(conn, key, expected, values)
                    if problem is not None:
                        mismatches.append(problem)
        except redis_errors.RedisError as exc:
            raise ProbeError(_describe(exc, target), **ctx.details) from None
        finally:
            conn.abort()

        server = f"redis {version}" if version else "redis"
        message = f"PONG from {server} (db {target.db})"
        return data_outcome(ctx.details, len(self.spec.data), mismatches, message)


async def _command(conn: _ProbeConnection, *args: Any) -> Any:
    await conn.send_command(*args, check_health=False)
    return await conn.read_response()


async def _server_version(conn: _ProbeConnection) -> str | None:
    """The version from `INFO server`, or None when the server will not say."""
    try:
        info = await _command(conn, "INFO", "server")
    except redis_errors.ResponseError:
        return None  # INFO denied by an ACL or renamed: the server still answers
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    fields = dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
    )
    # Valkey reports the Redis version it is compatible with as redis_version.
    if "valkey_version" in fields:
        return f"valkey {fields['valkey_version'].strip()}"
    version = fields.get("redis_version")
    return version.strip() if version else None


async def _check_key(
    conn: _ProbeConnection, key: str, expected: str, values: dict[str, str]
) -> str | None:
    """None when `key` holds `expected`, else what is wrong (a judged result, not an error).
    The value read goes into `values` (nothing for a key that is missing or not a string)."""
    try:
        value = await _command(conn, "GET", key)
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("WRONGTYPE"):
            return f'key "{key}": expected "{_shown(expected)}", got a value that is not a string'
        raise
    if value is None:
        return f'key "{key}": expected "{_shown(expected)}", got nothing'
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    values[key] = text
    if text == expected:
        return None
    return f'key "{key}": expected "{_shown(expected)}", got "{_shown(text)}"'


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _describe(exc: redis_errors.RedisError, target: _Target) -> str:
    """The one place redis-py exceptions become messages."""
    user = target.username or "default"
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, redis_errors.ResponseError | redis_errors.AuthenticationError):
        if lowered.startswith("authentication required") or "noauth" in lowered:
            return "authentication required"
        if "without any password configured" in lowered:
            return f'authentication failed for user "{user}" (the server has no password set)'
        if isinstance(exc, redis_errors.AuthenticationError) or "invalid password" in lowered:
            return f'authentication failed for user "{user}"'
        if "db index is out of range" in lowered or "invalid db index" in lowered:
            return f"invalid database index {target.db}"
        if isinstance(exc, redis_errors.NoPermissionError):
            return f"permission denied: {error_text(exc)}"
        if isinstance(exc, redis_errors.BusyLoadingError) or lowered.startswith("loading"):
            return "the server is loading its dataset"
        if "unknown command" in lowered:
            return f"command refused: {error_text(exc)}"
        return f"redis error: {error_text(exc)}"
    if isinstance(exc, redis_errors.BusyLoadingError):
        return "the server is loading its dataset"
    if "max number of clients reached" in lowered:
        return "the server refused the connection: max number of clients reached"
    for cause in iter_causes(exc):
        if isinstance(cause, ProbeError):
            return cause.message  # name resolution, from our resolver
    known = describe_os_error(exc)
    if known is not None:
        return known
    if isinstance(exc, redis_errors.InvalidResponse):
        return "not a Redis server (invalid reply)"
    if "closed by server" in lowered or "connection closed" in lowered:
        return "the server closed the connection"
    if isinstance(exc, redis_errors.TimeoutError):
        return "timed out"
    return f"redis error: {error_text(exc)}"
