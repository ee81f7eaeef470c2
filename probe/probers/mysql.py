"""MySQL and MariaDB probes (aiomysql): connect, authenticate, `SELECT 1`, then the optional
checks.

Every check opens a connection of its own and closes it before it returns: a `COM_QUIT` sent
with a bounded wait when all went well (so the server does not log an aborted connection),
then `close()`, which is synchronous and immediate, on every path, cancellation included.

- database: from `database:` or the DSN's path; none by default (`SELECT 1` needs none).
- `data` (EaseProbe's form, `"db:table:column:key_column:key_value": "expected"`) runs
  SELECT CAST(`column` AS CHAR) FROM `db`.`table` WHERE `key_column` = %s LIMIT 1
  with identifiers quoted in backticks and the key value passed as a parameter.
- `query` + `expect`: the first column of the first row, compared as text. A query without
  `expect` only has to run.
- `conditions`: `[RESULT]` is the query's rows (column -> value, at most MAX_RESULT_ROWS) and
  `[ROWS]` their number, filled when a condition reads them; `[IP]` is the address the
  connection reached, noted as soon as the server's greeting arrives.
- TLS: `ca`/`cert`/`key`/`insecure` make TLS required; a server without TLS is down
  (aiomysql alone would carry on in the clear).
- The user defaults to the OS user, as aiomysql and the mysql client do.

aiomysql does TCP, the greeting, TLS and authentication in one private `_connect()`; a small
subclass of its connection reports each step as the phase (`connect`, `TLS handshake`,
`auth`, then `query`). Driver exceptions become messages in `_describe()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import re
import ssl
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]
from pydantic import model_validator
from pymysql.constants import CLIENT  # type: ignore[import-untyped]

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers import _sql
from probe.probers._client import ClientSpec, client_ssl_context
from probe.probers._net import describe_os_error
from probe.probers._sql import DataCheck, parse_data, quote_mysql, shown
from probe.probers.base import Prober, SharedResources

__all__ = ["DEFAULT_PORT", "MySQLProber", "MySQLSpec"]

DEFAULT_PORT = 3306

# How long the goodbye (COM_QUIT) may take before the socket is simply closed.
_CLOSE_TIMEOUT = 1.0
# aiomysql's own connect timeout sits past the probe's, so the scheduler's hard timeout (which
# names the phase) is the one that fires.
_DRIVER_TIMEOUT_MARGIN = 1.0

# Server error codes (pymysql.constants.ER) and client ones (CR) with messages of our own.
_ACCESS_DENIED = 1045
_BAD_DB = 1049
_TOO_MANY_CONNECTIONS = 1040
_NO_SUCH_TABLE = 1146
_SYNTAX_ERROR = 1064
_CONN_HOST_ERROR = 2003
_CONNECTION_LOST = frozenset({2006, 2013, 2055})
_FIRST_CLIENT_ERROR = 2000


class MySQLSpec(ClientSpec):
    """A `client:` entry with `driver: mysql` (MySQL or MariaDB)."""

    kind: ClassVar[str] = "mysql"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("mysql",)
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"RESULT", "ROWS"})

    @model_validator(mode="after")
    def _valid_mysql(self) -> MySQLSpec:
        parse_data(self.data)  # raises ValueError with the bad key
        if self.dsn is not None:
            _parse_dsn(self.dsn.get_secret_value())
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        return _sql.row_condition_problems(self, super().condition_problems())

    def connect_params(self) -> tuple[str, int, str, str, str | None]:
        """(host, port, user, password, database); explicit keys win over the DSN's."""
        if self.dsn is not None:
            host, port, user, password, database = _parse_dsn(self.dsn.get_secret_value())
        else:
            (host, port), user, password, database = self.host_port(), None, None, None
        user = self.username or user or _os_user()
        if self.password is not None:
            password = self.password.get_secret_value()
        return host, port, user, password or "", self.database or database


def _parse_dsn(dsn: str) -> tuple[str, int, str | None, str | None, str | None]:
    """mysql://user:password@host:port/database -> its parts. Messages never repeat the DSN."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        raise ValueError("dsn has an invalid host or port") from None
    if not parts.hostname:
        raise ValueError("dsn has no host: mysql://user:password@host:3306/database")
    if parts.query or parts.fragment:
        raise ValueError("dsn query parameters are not supported; use the client keys")
    database = unquote(parts.path.lstrip("/"))
    if "/" in database:
        raise ValueError("dsn path must be a single database name")
    return (
        parts.hostname,
        port or DEFAULT_PORT,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
        database or None,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in the environment nor in the password database
        return "root"


class MySQLProber(Prober[MySQLSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = MySQLSpec

    def __init__(self, spec: MySQLSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port, self._user, self._password, self._database = spec.connect_params()
        self._checks = parse_data(spec.data)
        self._ssl: ssl.SSLContext | None = None
        self._wants_rows = _sql.reads_rows(self.condition_reads)

    async def check(self, ctx: CheckContext) -> Outcome:
        try:
            return await self._check(ctx)
        except _sql.CheckFailed as failed:
            message = f"{failed.label}: {_describe(failed.error, self._user)}"
            raise ProbeError(message, **ctx.details) from None
        except (OSError, pymysql.err.Error, _NoTLS, UnicodeError) as exc:
            raise ProbeError(_describe(exc, self._user), **ctx.details) from None

    async def _check(self, ctx: CheckContext) -> Outcome:
        if self._database is not None:
            ctx.details["database"] = self._database
        ctx.phase = "connect"
        if self.spec.uses_tls and self._ssl is None:
            self._ssl = client_ssl_context(self.spec)  # on first use: a bad key file is a failure
        conn = _Connection(
            ctx,
            host=self._host,
            port=self._port,
            user=self._user,
            password=self._password,
            db=self._database,
            connect_timeout=self.spec.timeout + _DRIVER_TIMEOUT_MARGIN,
            ssl=self._ssl,
            autocommit=True,  # the server's default: no SET AUTOCOMMIT round trip
            cursorclass=_QuietCursor,
            program_name="probe",
        )
        try:
            await conn._connect()
            version = _version(conn.server_version)
            ctx.details["server_version"] = version
            ctx.phase = "query"
            await _first_row(conn, "SELECT 1")
            failed = await self._run_data(conn)
            if failed is None:
                failed = await self._run_query(conn, ctx)
            ctx.phase = "close"
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await conn.ensure_closed()  # COM_QUIT: a clean goodbye
        finally:
            conn.close()  # synchronous: closes the socket at once, also under cancellation
        if failed is not None:
            return Outcome(ok=False, message=failed, details={"server_version": version})
        message = f"{_product(version)} {version.split('-', 1)[0]}"
        if self._database is not None:
            message += f", database {shown(self._database)}"
        message += _sql.passed_checks(len(self._checks), self.spec.query, self.spec.expect)
        return Outcome(ok=True, message=message, details={"server_version": version})

    async def _run_data(self, conn: Any) -> str | None:
        """Run the data checks in config order; the first mismatch's message, or None."""
        fetch = functools.partial(_fetch_data, conn)
        return await _sql.first_data_mismatch(self._checks, fetch, _is_server_error)

    async def _run_query(self, conn: Any, ctx: CheckContext) -> str | None:
        query = self.spec.query
        if query is None:
            return None
        with _sql.labelled("query", _is_server_error):
            cursor = await conn.cursor()
            await cursor.execute(query)
            if not self._wants_rows:
                row = await cursor.fetchone()
            else:
                # aiomysql's buffered cursor has read the whole answer (as it always did, for
                # `expect` too): `rowcount` is the true number of rows, and only the first
                # MAX_RESULT_ROWS are kept. A statement without rows has no description.
                described = cursor.description is not None
                rows = list(await cursor.fetchmany(_sql.MAX_RESULT_ROWS)) if described else []
                row = rows[0] if rows else None
                columns = [str(d[0]) for d in cursor.description or ()]
                count = max(int(cursor.rowcount), len(rows)) if described else 0
                _sql.note_rows(ctx, _sql.result_rows(columns, rows), count)
        return _sql.query_mismatch(self.spec.expect, row)


class _NoTLS(Exception):
    """TLS is configured and the server's greeting does not offer it."""


class _Connection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql's connection, telling the check which step of the handshake it is in, and
    refusing to go on in the clear when TLS is configured and the server has none."""

    def __init__(self, ctx: CheckContext, **kwargs: Any) -> None:
        self._probe_ctx = ctx  # first: aiomysql's __init__ sets _secure
        super().__init__(**kwargs)

    async def _get_server_information(self) -> None:
        # aiomysql has just opened the TCP connection itself (not through _connect.py).
        _sql.note_peer(self._probe_ctx, self._writer.get_extra_info("peername"))
        await super()._get_server_information()  # the server's greeting has arrived
        if self._ssl_context is None:
            self._probe_ctx.phase = "auth"
        elif not self.server_capabilities & CLIENT.SSL:
            raise _NoTLS
        else:
            self._probe_ctx.phase = "TLS handshake"

    # aiomysql sets `_secure = True` right after its TLS handshake, before authenticating.
    @property
    def _secure(self) -> bool:
        return bool(self.__dict__.get("_probe_secure", False))

    @_secure.setter
    def _secure(self, value: bool) -> None:
        self.__dict__["_probe_secure"] = value
        if value and self._probe_ctx.phase == "TLS handshake":
            self._probe_ctx.phase = "auth"


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    """A cursor that does not fetch the server's warnings after each query: aiomysql would
    send `SHOW WARNINGS` and raise each as a Python warning (a `WHERE id = 'x'` on an integer
    column warns), which a health check neither wants nor should pay a round trip for."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


async def _first_row(conn: Any, sql: str, args: tuple[str, ...] | None = None) -> Any:
    cursor = await conn.cursor()
    await cursor.execute(sql, args)
    return await cursor.fetchone()


def _ident(name: str) -> str:
    # pymysql formats the parameters into the statement with `%`: a `%` in a name must be
    # doubled to stay a literal character.
    return quote_mysql(name).replace("%", "%%")


async def _fetch_data(conn: Any, check: DataCheck) -> Any:
    """The row of one data check (its one column), or None when no row has the key."""
    sql = (
        f"SELECT CAST({_ident(check.column)} AS CHAR)"
        f" FROM {_ident(check.database)}.{_ident(check.table)}"
        f" WHERE {_ident(check.key_column)} = %s LIMIT 1"
    )
    return await _first_row(conn, sql, (check.key_value,))


def _version(greeting: str) -> str:
    """The server version without MariaDB's `5.5.5-` compatibility prefix."""
    return greeting.removeprefix("5.5.5-") if "mariadb" in greeting.lower() else greeting


def _product(version: str) -> str:
    return "MariaDB" if "mariadb" in version.lower() else "MySQL"


def _is_server_error(exc: BaseException) -> bool:
    """An error the server answered with (its codes sit below the client's own, 2000 on)."""
    if not isinstance(exc, pymysql.err.Error):
        return False
    code = _error_code(exc)
    return code is not None and code < _FIRST_CLIENT_ERROR


def _error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_QUOTED = re.compile(r"'([^']*)'")
_SYNTAX_NEAR = re.compile(r"near (.*)$", re.DOTALL)


def _describe(exc: BaseException, user: str) -> str:
    """The one place aiomysql, pymysql, TLS and OS errors become messages."""
    if isinstance(exc, _NoTLS):
        return _sql.NO_TLS
    code = _error_code(exc) if isinstance(exc, pymysql.err.Error) else None
    if code is not None:
        text = str(exc.args[1]) if len(exc.args) > 1 else ""
        quoted = _QUOTED.search(text)
        if code == _ACCESS_DENIED:
            return f"authentication failed for user {shown(user)}"
        if code == _BAD_DB and quoted:
            return f"database {shown(quoted.group(1))} does not exist"
        if code == _NO_SUCH_TABLE and quoted:
            return f"table {shown(quoted.group(1))} does not exist"
        if code == _SYNTAX_ERROR and (near := _SYNTAX_NEAR.search(text)):
            return f"SQL syntax error near {near.group(1)}"
        if code == _TOO_MANY_CONNECTIONS:
            return "too many connections"
        if code == _CONN_HOST_ERROR or code in _CONNECTION_LOST:
            known = describe_os_error(exc)
            if known is not None:
                return known
            return (
                "cannot connect" if code == _CONN_HOST_ERROR else "connection closed by the server"
            )
        if text:
            return _sql.first_line(text[:1].lower() + text[1:])
        return f"MySQL error {code}"
    known = describe_os_error(exc)
    if known is not None:
        return known
    if isinstance(exc, UnicodeError):
        # Never str(exc): a UnicodeEncodeError carries the text it failed on (the password).
        return "the user name or password has characters the MySQL handshake cannot send"
    return _sql.unmapped_error(exc)
