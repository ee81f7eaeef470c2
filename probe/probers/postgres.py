"""PostgreSQL probes (asyncpg): connect, authenticate, `SELECT 1`, then the optional checks.

Every check opens a connection of its own with `asyncpg.connect` (never a pool) and closes it
before it returns: gracefully (`close(timeout=...)`) when all went well, at once
(`terminate()`, which awaits nothing) on an error, a timeout or a cancellation.

- database: from `database:`, else the DSN's, else `postgres` (EaseProbe connects to
  `template1`, which users without rights there cannot reach).
- `data` (EaseProbe's form, `"db:table:column:key_column:key_value": "expected"`) runs
  `SELECT column::text FROM table WHERE key_column = $1` in database `db`. PostgreSQL cannot
  query another database from a connection, so a `db` other than the probe's database is
  reached through one more connection (same credentials and TLS), one per distinct `db`, opened
  and closed within the check. Identifiers are quoted (case-sensitive, as EaseProbe quotes
  them); the key value is a parameter, converted on the server to the key column's type.
- `query` + `expect`: the first column of the first row, compared as text. A query without
  `expect` only has to run.
- `conditions`: `[RESULT]` is the query's rows (column -> value, at most MAX_RESULT_ROWS) and
  `[ROWS]` their number, filled when a condition reads them (otherwise the query fetches only
  the first row, as `expect` needs); `[IP]` is the address of the connection asyncpg opened.
- TLS: `ca`/`cert`/`key`/`insecure` make TLS required; otherwise asyncpg's default applies
  (`sslmode=prefer` unless the DSN says otherwise). Unset user, password and database follow
  libpq's conventions through asyncpg (PGUSER, PGPASSWORD, ~/.pgpass, the OS user).

The phase is `connect` until the connection is ready (asyncpg does TCP, TLS and
authentication in one call), then `query`. Driver exceptions become messages in `_describe()`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]
from pydantic import model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers import _sql
from probe.probers._client import ClientSpec, client_ssl_context
from probe.probers._net import describe_os_error
from probe.probers._sql import DataCheck, parse_data, quote_postgres, shown
from probe.probers.base import Prober, SharedResources

__all__ = ["DEFAULT_DATABASE", "PostgresProber", "PostgresSpec"]

DEFAULT_DATABASE = "postgres"

# A graceful close (the Terminate message) that takes longer than this is cut short.
_CLOSE_TIMEOUT = 1.0
# asyncpg's own connect timeout sits past the probe's, so the scheduler's hard timeout (which
# names the phase) is the one that fires.
_DRIVER_TIMEOUT_MARGIN = 1.0

# Key column types whose parameter asyncpg takes as a Python str or int as it is; any other
# type gets the text converted on the server (CAST($1::text AS type)).
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_INT_TYPES = frozenset({"int2", "int4", "int8", "oid"})
_INT_TEXT = re.compile(r"[+-]?\d{1,18}")


class PostgresSpec(ClientSpec):
    """A `client:` entry with `driver: postgres`."""

    kind: ClassVar[str] = "postgres"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("postgres", "postgresql")
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"RESULT", "ROWS"})

    @model_validator(mode="after")
    def _valid_postgres(self) -> PostgresSpec:
        parse_data(self.data)  # raises ValueError with the bad key
        if self.dsn is not None:
            _check_dsn(self.dsn.get_secret_value())
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        return _sql.row_condition_problems(self, super().condition_problems())

    def effective_database(self) -> str:
        """`database:`, else the DSN's database, else `postgres`."""
        if self.database:
            return self.database
        if self.dsn is not None:
            from_dsn = _dsn_field(self.dsn.get_secret_value(), "database")
            if from_dsn:
                return from_dsn
        return DEFAULT_DATABASE

    def effective_user(self) -> str | None:
        """`username:`, else the DSN's user; None leaves it to asyncpg (PGUSER, OS user)."""
        if self.username:
            return self.username
        if self.dsn is not None:
            return _dsn_field(self.dsn.get_secret_value(), "user")
        return None


def _check_dsn(dsn: str) -> None:
    """Reject a DSN asyncpg would not parse; messages never repeat the DSN (it holds secrets)."""
    try:
        parts = urlsplit(dsn)
        if parts.query:
            parse_qs(parts.query, strict_parsing=True)
        if "," not in parts.netloc:  # multi-host DSNs are asyncpg's to check
            port = parts.port
            if port == 0:
                raise ValueError
    except ValueError:
        raise ValueError("dsn is not a valid postgres:// URI (check the port and query)") from None


def _dsn_field(dsn: str, field: str) -> str | None:
    """The user or database a postgres:// DSN names (userinfo/path, or ?user= / ?dbname=)."""
    parts = urlsplit(dsn)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()} if parts.query else {}
    if field == "user":
        return query.get("user") or (unquote(parts.username) if parts.username else None)
    path = unquote(parts.path.lstrip("/"))
    return query.get("dbname") or query.get("database") or path or None


class PostgresProber(Prober[PostgresSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = PostgresSpec

    def __init__(self, spec: PostgresSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._database = spec.effective_database()
        self._user = spec.effective_user()
        self._checks = parse_data(spec.data)
        self._ssl: ssl.SSLContext | None = None
        self._wants_rows = _sql.reads_rows(self.condition_reads)

    async def check(self, ctx: CheckContext) -> Outcome:
        try:
            return await self._check(ctx)
        except _sql.CheckFailed as failed:
            message = f"{failed.label}: {_describe(failed.error, self._user)}"
            raise ProbeError(message, **ctx.details) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ProbeError(_describe(exc, self._user), **ctx.details) from None

    async def _check(self, ctx: CheckContext) -> Outcome:
        ctx.details["database"] = self._database
        ctx.phase = "connect"
        conn = await self._connect(self._database)
        try:
            # asyncpg opens its connection itself (not through _connect.py) and hands it over
            # only once authenticated: a check that fails before has no [IP].
            _sql.note_peer(ctx, conn._transport.get_extra_info("peername"))
            version = _version(conn)
            ctx.details["server_version"] = version
            ctx.phase = "query"
            await conn.fetchval("SELECT 1")
            failed = await self._run_data(conn, ctx)
            if failed is None:
                failed = await self._run_query(conn, ctx)
        except BaseException:
            conn.terminate()  # awaits nothing, so it is safe under cancellation
            raise
        ctx.phase = "close"
        await _close(conn)
        if failed is not None:
            return Outcome(ok=False, message=failed, details={"server_version": version})
        message = f"PostgreSQL {version}, database {shown(self._database)}"
        message += _sql.passed_checks(len(self._checks), self.spec.query, self.spec.expect)
        return Outcome(ok=True, message=message, details={"server_version": version})

    async def _connect(self, database: str) -> Any:
        spec = self.spec
        kwargs: dict[str, Any] = {
            "database": database,
            "timeout": spec.timeout + _DRIVER_TIMEOUT_MARGIN,
            "server_settings": {"application_name": "probe"},
        }
        if spec.dsn is not None:
            kwargs["dsn"] = spec.dsn.get_secret_value()
        else:
            kwargs["host"], kwargs["port"] = spec.host_port()
        if spec.username:
            kwargs["user"] = spec.username
        if spec.password is not None:
            kwargs["password"] = spec.password.get_secret_value()
        if spec.uses_tls:
            if self._ssl is None:  # built on first use: a bad key file is a check failure
                self._ssl = client_ssl_context(spec)
            kwargs["ssl"] = self._ssl
        try:
            return await asyncpg.connect(**kwargs)
        except ValueError as exc:
            if isinstance(exc, asyncpg.InterfaceError):
                raise
            # asyncpg's DSN and option parsing: its text may quote the DSN, password included.
            raise asyncpg.ClientConfigurationError("invalid connection settings") from None

    async def _run_data(self, conn: Any, ctx: CheckContext) -> str | None:
        """Run the data checks, grouped by database (one connection each), in config order
        within a database; the first mismatch's message, or None."""
        by_database: dict[str, list[DataCheck]] = {}
        for check in self._checks:
            by_database.setdefault(check.database, []).append(check)
        for database, checks in by_database.items():
            if database == self._database:
                failed = await _data_checks(conn, checks)
            else:
                ctx.phase = "connect"
                with _sql.labelled(f"data {shown(checks[0].key)}", _is_server_error):
                    other = await self._connect(database)
                try:
                    ctx.phase = "query"
                    failed = await _data_checks(other, checks)
                except BaseException:
                    other.terminate()
                    raise
                await _close(other)
            if failed is not None:
                return failed
        return None

    async def _run_query(self, conn: Any, ctx: CheckContext) -> str | None:
        query = self.spec.query
        if query is None:
            return None
        with _sql.labelled("query", _is_server_error):
            if not self._wants_rows:
                row = await conn.fetchrow(query)
            else:
                rows = await _fetch_rows(conn, query)
                row = rows[0] if rows else None
                columns = list(row.keys()) if row is not None else []
                # [ROWS] is the number of rows read: the true count when the whole answer
                # fitted in MAX_RESULT_ROWS, else MAX_RESULT_ROWS (the server was not asked
                # for the rest, and PostgreSQL does not say how many are left).
                _sql.note_rows(ctx, _sql.result_rows(columns, rows), len(rows))
        return _sql.query_mismatch(self.spec.expect, row)


async def _fetch_rows(conn: Any, query: str) -> list[Any]:
    """The query's first MAX_RESULT_ROWS rows.

    asyncpg's public fetch() reads every row of the answer into memory; fetchrow() calls the
    same private `_execute()` with a limit of 1, as this does with MAX_RESULT_ROWS. The limit
    is the protocol's (Execute's row count), so the server stops producing rows there: no
    transaction or cursor is needed, and the query runs exactly as fetchrow() runs it for
    `expect`. (The tests run it against the real server, so a change in asyncpg shows.)"""
    return list(await conn._execute(query, (), _sql.MAX_RESULT_ROWS, None))


async def _data_checks(conn: Any, checks: list[DataCheck]) -> str | None:
    return await _sql.first_data_mismatch(
        checks, functools.partial(_fetch_data, conn), _is_server_error
    )


async def _fetch_data(conn: Any, check: DataCheck) -> Any:
    """The row of one data check (its one column), or None when no row has the key."""
    select = (
        f"SELECT {quote_postgres(check.column)}::text FROM {quote_postgres(check.table)}"
        f" WHERE {quote_postgres(check.key_column)} = "
    )
    statement = await conn.prepare(select + "$1 LIMIT 1")
    (param,) = statement.get_parameters()
    value: str | int = check.key_value
    if param.name in _INT_TYPES and _INT_TEXT.fullmatch(check.key_value):
        value = int(check.key_value)
    elif param.name not in _TEXT_TYPES:
        # The server's own type name (quoted), not user text: the server parses the key value.
        cast = f"{quote_postgres(param.schema)}.{quote_postgres(param.name)}"
        statement = await conn.prepare(select + f"CAST($1::text AS {cast}) LIMIT 1")
    return await statement.fetchrow(value)


def _is_server_error(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError)


async def _close(conn: Any) -> None:
    """Close gracefully, bounded; abort the connection if that fails or is cancelled."""
    try:
        await conn.close(timeout=_CLOSE_TIMEOUT)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:
        conn.terminate()  # the check is already decided; a failed goodbye changes nothing


def _version(conn: Any) -> str:
    """`15.20` (the server's server_version setting, without the distribution's suffix)."""
    text = str(conn.get_settings().server_version or "")
    if text:
        return text.split(" ", 1)[0]
    v = conn.get_server_version()
    return f"{v.major}.{v.micro}" if v.major >= 10 else f"{v.major}.{v.minor}.{v.micro}"


_USER_IN_MESSAGE = re.compile(r'for user "((?:[^"]|"")*)"')
_RELATION_MISSING = re.compile(r'relation "(.*)" does not exist')


def _describe(exc: BaseException, user: str | None) -> str:
    """The one place asyncpg, TLS and OS errors become messages."""
    if isinstance(exc, asyncpg.InvalidPasswordError):
        match = _USER_IN_MESSAGE.search(exc.message or "")
        name = match.group(1) if match else (user or "")
        return f"authentication failed for user {shown(name)}"
    if isinstance(
        exc, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return str(exc.message)  # `database "x" does not exist`, `role "x" does not exist`, ...
    if isinstance(exc, asyncpg.UndefinedTableError):
        match = _RELATION_MISSING.search(exc.message or "")
        return f'table "{match.group(1)}" does not exist' if match else str(exc.message)
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "too many connections"
    if isinstance(exc, asyncpg.PostgresError):
        return _sql.first_line(str(exc.message or type(exc).__name__))
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        return _sql.NO_TLS
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError):
        return "connection closed by the server"
    known = describe_os_error(exc)
    if known is not None:
        return known
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return "invalid connection settings"  # asyncpg's text may quote the DSN
    if isinstance(exc, asyncpg.InterfaceError):
        return _sql.first_line(str(exc))
    return _sql.unmapped_error(exc)
