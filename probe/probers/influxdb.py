"""InfluxDB probes (1.x and 2.x) through influxdb-client's async API.

A check opens a client of its own (an aiohttp session; the check exercises connect, TLS and auth
every time) and closes it on every path:

1. `GET /ping` (through `version()`, which is the ping plus its `X-Influxdb-Version` header):
   the server answers, and its version goes in the result details;
2. on 2.x (or a server that does not say its version), `GET /health` must say `pass`;
3. then, if configured, one of:
   - `query:` a Flux query (2.x, or 1.8+ with Flux enabled) through the client's query API, with
     `token` and `org`; its result is the first record's `_value` (or its first column);
   - `influxql:` an InfluxQL statement sent to `/query` (`db` = `database`) over httpx, since
     influxdb-client has no InfluxQL API; its result is the first value of the first row of
     the first series (the `time` column skipped);
   compared, as text, with `expect:` when it is set (without `expect` the query only has to
   run);
4. otherwise, when credentials or a database are configured, they are checked: on 1.x with
   `SHOW DATABASES` (which also says whether `database` exists), on 2.x by listing buckets
   (`database` is the bucket that must exist).

Conditions: `[RESULT]` is the query's rows (at most MAX_RESULT_ROWS; Flux: one row per record;
InfluxQL: the rows of every series, with the series' tags as columns after its own), each a
mapping of column to value with the column `expect` reads first, so that `[RESULT]` alone is
the value `expect` compares; `[ROWS]` their number. They are filled when a condition reads them
(otherwise a Flux query reads only its first record, as `expect` needs). `[IP]` is the address
the check's aiohttp connection reached (ping, health, Flux, buckets), which every check opens
first; InfluxQL's request goes to the same host over httpx and is not noted again.

Credentials: `token` (2.x; sent as `Authorization: Token ...`), or `username`/`password` (1.x;
sent as HTTP basic auth, never in the URL), or both in a `dsn` (`http://user:pw@host:8086`).

Messages: driver exceptions and error answers are mapped in `_describe()`: `connection refused`,
`authentication failed for user "app"`, `database "nope" does not exist`, `query failed: ...`;
judged answers: `health "fail": ...`, `expected "ok", got "degraded"`, `expected "ok", got
nothing`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import re
import ssl
from typing import Any, ClassVar

import aiohttp
import httpx
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.flux_csv_parser import FluxCsvParserException, FluxQueryException
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from influxdb_client.service.buckets_service import BucketsService
from influxdb_client.service.health_service import HealthService
from pydantic import SecretStr, model_validator

from probe import __version__
from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers import _sql
from probe.probers._client import HTTPServiceSpec, client_ssl_context, tls_key
from probe.probers._httpcheck import failed_during, timed_out
from probe.probers._net import describe_os_error, first_error
from probe.probers.base import Prober, SharedResources

__all__ = ["InfluxDBProber", "InfluxDBSpec"]

# httpx logs every request at INFO, query string included (an InfluxQL statement, a database).
logging.getLogger("httpx").setLevel(logging.WARNING)

_USER_AGENT = f"probe/{__version__}"
_MAX_SHOWN = 60  # characters of a value shown in a message
_MAX_ERROR = 160  # characters of a server's error text shown in a message
_CLOSE_TIMEOUT = 0.5  # seconds a client may take to close (it waits for its sockets to close)


class InfluxDBSpec(HTTPServiceSpec):
    """A `client:` entry with `driver: influxdb`.

    `host: host:port` means `http://host:port`, or `https://` when any of `ca`, `cert`/`key`
    or `insecure` is set; `dsn:` is the server's URL (`https://influx.lan:8086`, credentials as
    `https://user:password@...` if wanted).
    """

    kind: ClassVar[str] = "influxdb"
    dsn_query_hint: ClassVar[str] = "set token, org and database as keys, not in the dsn"
    query_keys: ClassVar[tuple[str, ...]] = ("query", "influxql")
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"RESULT", "ROWS"})

    token: SecretStr | None = None
    org: str | None = None
    influxql: str | None = None

    @model_validator(mode="after")
    def _valid_influxdb(self) -> InfluxDBSpec:
        if self.data:
            raise ValueError(
                "the influxdb driver takes no data; use query (Flux) or influxql with expect"
            )
        if self.query is not None and self.influxql is not None:
            raise ValueError("set query (Flux) or influxql, not both")
        for key in ("query", "influxql"):
            if getattr(self, key) is not None and not getattr(self, key).strip():
                raise ValueError(f"{key} must not be empty")
        if self.token is not None and (self.username is not None or self.dsn_user() is not None):
            raise ValueError("set token (2.x) or username/password (1.x), not both")
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        return _sql.row_condition_problems(self, super().condition_problems())


class _ServerError(Exception):
    """An error answer: HTTP status and the server's own error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Steps:
    """The step a check is in; aiohttp trace hooks report name resolution and connecting
    (with the TLS handshake, which aiohttp does not tell apart) inside each request."""

    def __init__(self, ctx: CheckContext) -> None:
        self._ctx = ctx
        self.step = ctx.phase

    def enter(self, step: str) -> None:
        self.step = step
        self._ctx.phase = step

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def resolving(*_args: Any) -> None:
            self._ctx.phase = "resolve"

        async def connecting(*_args: Any) -> None:
            self._ctx.phase = "connect"

        async def connected(*_args: Any) -> None:
            self._ctx.phase = self.step

        trace.on_dns_resolvehost_start.append(resolving)
        trace.on_connection_create_start.append(connecting)
        trace.on_connection_create_end.append(connected)
        return trace


class InfluxDBProber(Prober[InfluxDBSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = InfluxDBSpec

    def __init__(self, spec: InfluxDBSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._base = spec.base_url()
        self._https = self._base.startswith("https:")
        self._tls = tls_key(spec) if self._https else None
        self._credentials = spec.credentials()
        self._token = None if spec.token is None else spec.token.get_secret_value()
        self._headers = _auth_headers(self._token, self._credentials)
        self._wants_rows = _sql.reads_rows(self.condition_reads)

    @property
    def _who(self) -> str | None:
        """Who authenticates: `user "x"`, `token`, or None."""
        if self._credentials is not None:
            return f'user "{self._credentials[0]}"'
        return "token" if self._token is not None else None

    def _ssl_context(self) -> ssl.SSLContext:
        """Shared: building a context reads the CA bundle (milliseconds of CPU)."""
        tls, spec = self._tls, self.spec

        def build() -> ssl.SSLContext:
            if tls is None:  # plain http: aiohttp wants a context all the same
                return ssl.create_default_context()
            return client_ssl_context(spec)

        try:
            return self.resources.get_or_create(("influxdb.ssl", tls), build)
        except (ssl.SSLError, OSError) as exc:
            reason = describe_os_error(exc) or str(exc)
            raise ProbeError(f"TLS: cannot load the TLS files: {reason}") from None

    def _http_client(self) -> httpx.AsyncClient:
        """The shared httpx client (for InfluxQL), keep-alive off."""
        context = self._ssl_context()
        return self.resources.get_or_create(
            ("influxdb.http", self._tls),
            lambda: _new_http_client(context),
            close=_close_http_client,
        )

    def _new_client(self, ctx: CheckContext, steps: _Steps) -> InfluxDBClientAsync:
        trace = steps.trace_config()

        def session(**kwargs: Any) -> aiohttp.ClientSession:
            connector = kwargs.get("connector")
            if isinstance(connector, aiohttp.BaseConnector):
                _note_peers(connector, ctx)
            kwargs["trace_configs"] = [trace]
            kwargs["headers"] = {"User-Agent": _USER_AGENT}
            return aiohttp.ClientSession(**kwargs)

        token: str | None = self._token
        extra: dict[str, Any] = {}
        if self._credentials is not None:
            # influxdb-client's HTTP basic auth takes "user:password" as its token.
            token = "{}:{}".format(*self._credentials)
            extra["auth_basic"] = True
        return InfluxDBClientAsync(
            url=self._base,
            token=token,  # type: ignore[arg-type]  # the client accepts None
            org=self.spec.org,  # type: ignore[arg-type]
            timeout=aiohttp.ClientTimeout(total=self.spec.timeout or None),
            ssl_context=self._ssl_context(),
            client_session_type=session,
            allow_redirects=False,
            **extra,
        )

    def prepare(self) -> None:
        self._ssl_context()
        if self.spec.influxql is not None:
            self._http_client()

    async def check(self, ctx: CheckContext) -> Outcome:
        steps = _Steps(ctx)
        client: InfluxDBClientAsync | None = None
        try:
            client = self._new_client(ctx, steps)
            return await self._check(ctx, steps, client)
        except _CAUGHT as caught:
            # The HTTP clients connect inside task groups: what failed is the first member.
            exc = first_error(caught)
            message = _describe(exc, ctx.phase, self.spec.timeout, self._who)
            raise ProbeError(message, error=type(exc).__name__) from None
        finally:
            if client is not None:
                await _close_client(client)

    async def _check(
        self, ctx: CheckContext, steps: _Steps, client: InfluxDBClientAsync
    ) -> Outcome:
        spec = self.spec
        steps.enter("ping")
        version = str(await client.version())
        if version != "unknown":
            ctx.details["version"] = version
        shown = f"InfluxDB {version}" if version != "unknown" else "InfluxDB"
        major = _major(version)
        if major != 1:
            failed = await self._health(ctx, steps, client, known=major is not None)
            if failed is not None:
                return failed

        if spec.query is not None:
            steps.enter("Flux query")
            return self._judge(ctx, shown, await self._flux(ctx, client, spec.query))
        if spec.influxql is not None:
            steps.enter("InfluxQL query")
            result = await self._influxql(spec.influxql, spec.database)
            if self._wants_rows:
                # The whole answer is one JSON document, read already: [ROWS] counts every row.
                rows, count = _influxql_rows(result)
                _sql.note_rows(ctx, rows, count)
            return self._judge(ctx, shown, _first_influxql_value(result))

        if self._credentials is not None or self._token is not None or spec.database:
            steps.enter("auth")
            if major == 1 or self._credentials is not None:
                await self._check_database_1x(spec.database)
            else:
                await self._check_bucket_2x(client, spec.database)
        return Outcome(ok=True, message=f"{shown} ready", details=dict(ctx.details))

    async def _health(
        self, ctx: CheckContext, steps: _Steps, client: InfluxDBClientAsync, *, known: bool
    ) -> Outcome | None:
        """GET /health (2.x): None when it says `pass`, a failed Outcome otherwise."""
        steps.enter("health")
        service = HealthService(client.api_client)  # type: ignore[no-untyped-call]
        try:
            health = await service.get_health_async()  # type: ignore[no-untyped-call]
            status, message = health.status, health.message
        except ApiException as exc:
            if exc.status == 404 and not known:
                return None  # a server that neither says its version nor has /health
            body = _json_body(exc.body)
            if exc.status != 503 or not isinstance(body, dict) or "status" not in body:
                raise
            status, message = body.get("status"), body.get("message")
        ctx.details["health"] = str(status)
        if status == "pass":
            return None
        text = f'health "{status}"' + (f": {_shown(str(message), _MAX_ERROR)}" if message else "")
        return Outcome(ok=False, message=text, details=dict(ctx.details))

    async def _flux(self, ctx: CheckContext, client: InfluxDBClientAsync, query: str) -> str | None:
        """The first record's `_value` (or first column) as text; None without records.
        Reads only that record unless a condition reads the rows."""
        wanted = _sql.MAX_RESULT_ROWS if self._wants_rows else 1
        records = await client.query_api().query_stream(query, org=self.spec.org)
        read: list[dict[str, Any]] = []
        try:
            async for record in records:
                read.append(record.values)
                if len(read) >= wanted:
                    break
        finally:
            await records.aclose()
        if self._wants_rows:
            # The stream is not read past MAX_RESULT_ROWS records (counting the rest would mean
            # parsing them all): [ROWS] is the number of records read.
            _sql.note_rows(ctx, [_flux_row(values) for values in read], len(read))
        if not read:
            return None
        column = _flux_value_column(read[0])
        return None if column is None else _text(read[0][column])

    async def _influxql(self, statement: str, database: str | None) -> dict[str, Any]:
        """The first statement's result of an InfluxQL request; error answers raise."""
        params = {"q": statement}
        if database:
            params["db"] = database
        response = await self._http_client().get(
            self._base + "/query",
            params=params,
            headers=self._headers,
            timeout=httpx.Timeout(self.spec.timeout or None),
        )
        body = _json_body(response.content)
        if not isinstance(body, dict):
            text = response.text.strip()
            raise _ServerError(response.status_code, text or "not a JSON answer")
        if response.status_code != 200 or "error" in body:
            raise _ServerError(response.status_code, str(body.get("error") or body))
        results = body.get("results") or [{}]
        first = results[0] if isinstance(results[0], dict) else {}
        if "error" in first:
            raise _ServerError(response.status_code, str(first["error"]))
        return first

    async def _check_database_1x(self, database: str | None) -> None:
        """Credentials (and `database`) on 1.x: `SHOW DATABASES` lists what the user may see."""
        result = await self._influxql("SHOW DATABASES", None)
        if database:
            series = result.get("series") or []
            rows = series[0].get("values") or [] if series else []
            if not any(row and row[0] == database for row in rows):
                raise _ServerError(404, f"database not found: {database}")

    async def _check_bucket_2x(self, client: InfluxDBClientAsync, bucket: str | None) -> None:
        """The token (and `database`, the bucket) on 2.x: list at most one bucket."""
        service = BucketsService(client.api_client)  # type: ignore[no-untyped-call]
        keys: dict[str, Any] = {"limit": 1}
        if bucket:
            keys["name"] = bucket
        if self.spec.org:
            keys["org"] = self.spec.org
        answer = await service.get_buckets_async(**keys)  # type: ignore[no-untyped-call]
        if bucket and not (answer.buckets or []):
            raise _ServerError(404, f'could not find bucket "{bucket}"')

    def _judge(self, ctx: CheckContext, shown: str, value: str | None) -> Outcome:
        details = dict(ctx.details)
        if value is not None:
            details["value"] = _shown(value, _MAX_SHOWN)
        expected = self.spec.expect
        if expected is None:
            return Outcome(ok=True, message=f"{shown}: query ok", details=details)
        if value != expected:
            got = "nothing" if value is None else f'"{_shown(value, _MAX_SHOWN)}"'
            message = f'expected "{_shown(expected, _MAX_SHOWN)}", got {got}'
            return Outcome(ok=False, message=message, details=details)
        return Outcome(ok=True, message=f'{shown}: query returned "{value}"', details=details)


def _auth_headers(token: str | None, credentials: tuple[str, str] | None) -> dict[str, str]:
    if token is not None:
        return {"Authorization": f"Token {token}"}
    if credentials is not None:
        pair = "{}:{}".format(*credentials).encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


def _major(version: str) -> int | None:
    """1 for "1.6.7~rc0", 2 for "v2.7.10"; None when the server did not say."""
    match = re.match(r"v?(\d+)\.", version.strip())
    return int(match.group(1)) if match else None


def _note_peers(connector: aiohttp.BaseConnector, ctx: CheckContext) -> None:
    """[IP] for the requests aiohttp makes: no trace hook says which address a connection
    reached, and a response has handed its connection back by the time the client sees it,
    so this check's own connector (a new one per check) notes the peer of each connection
    its public connect() hands out."""
    connect = connector.connect

    async def noting(*args: Any, **kwargs: Any) -> Any:
        connection = await connect(*args, **kwargs)
        transport = connection.transport
        if transport is not None:
            _sql.note_peer(ctx, transport.get_extra_info("peername"))
        return connection

    connector.connect = noting  # type: ignore[method-assign]


def _flux_value_column(values: dict[str, Any]) -> str | None:
    """The column `expect` reads: `_value`, else the first that is not Flux's bookkeeping."""
    if "_value" in values:
        return "_value"
    return next((c for c in values if c not in ("result", "table")), None)


def _flux_row(values: dict[str, Any]) -> dict[str, _sql.Fact]:
    """A record as a [RESULT] row: the column `expect` reads first, then the others in the
    table's order."""
    first = _flux_value_column(values)
    row = {} if first is None else {first: _sql.fact_value(values[first])}
    for column, value in values.items():
        row.setdefault(column, _sql.fact_value(value))
    return row


def _influxql_rows(result: dict[str, Any]) -> tuple[list[dict[str, _sql.Fact]], int]:
    """The rows of every series (at most MAX_RESULT_ROWS kept) and how many there are: in
    each, the column `expect` reads first (the first that is not `time`), then the others in
    order, then the series' tags (GROUP BY) that no column shadows."""
    rows: list[dict[str, _sql.Fact]] = []
    count = 0
    for series in result.get("series") or []:
        if not isinstance(series, dict):
            continue
        columns = [str(c) for c in series.get("columns") or []]
        first = next((i for i, c in enumerate(columns) if c != "time"), 0)
        order = [first, *(i for i in range(len(columns)) if i != first)] if columns else []
        tags = series.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        values = series.get("values")
        values = values if isinstance(values, list) else []
        count += len(values)
        for raw in values[: max(_sql.MAX_RESULT_ROWS - len(rows), 0)]:
            if not isinstance(raw, list):
                continue
            row: dict[str, _sql.Fact] = {}
            for i in order:
                if i < len(raw):
                    row.setdefault(columns[i], _sql.fact_value(raw[i]))
            for tag, value in tags.items():
                row.setdefault(str(tag), _sql.fact_value(value))
            rows.append(row)
    return rows, count


def _first_influxql_value(result: dict[str, Any]) -> str | None:
    series = result.get("series") or []
    if not series:
        return None
    columns: list[str] = series[0].get("columns") or []
    rows: list[list[Any]] = series[0].get("values") or []
    if not rows or not rows[0]:
        return None
    index = next((i for i, c in enumerate(columns) if c != "time"), 0)
    row = rows[0]
    return _text(row[index]) if index < len(row) else None


def _text(value: Any) -> str | None:
    """A query value as text: strings as they are, numbers and booleans as JSON writes them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def _json_body(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def _shown(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _new_http_client(context: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=context,
        # No idle connection is kept: each check opens (and closes) its own.
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        headers={"User-Agent": _USER_AGENT, "Connection": "close"},
        follow_redirects=False,
        trust_env=False,
        timeout=None,
    )


async def _close_http_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


async def _close_client(client: InfluxDBClientAsync) -> None:
    """Close the client's session and sockets, bounded: also runs when the check was
    cancelled by the scheduler's timeout, which allows the unwinding only a short grace."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await client.close()  # type: ignore[no-untyped-call]


# --- the one place driver exceptions become messages -----------------------------------------

_DRIVER_ERRORS: tuple[type[Exception], ...] = (
    _ServerError,
    InfluxDBError,  # ApiException included
    FluxQueryException,
    FluxCsvParserException,
    aiohttp.ClientError,
    httpx.HTTPError,
    TimeoutError,
    OSError,
)
# What a check catches: the driver errors, also when a task group wraps them.
_CAUGHT: tuple[type[Exception], ...] = (*_DRIVER_ERRORS, ExceptionGroup)


def _describe(exc: BaseException, phase: str, timeout: float, who: str | None) -> str:
    """A short message for an error answer or an exception of influxdb-client, aiohttp,
    httpx or the OS. `who` is `user "x"`, `token` or None."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        body = _json_body(exc.body)
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("error") or body.get("code") or "")
        else:
            raw = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
            text = str(raw or exc.reason or "")
        return _describe_answer(status, text, phase, who)
    if isinstance(exc, _ServerError):
        return _describe_answer(exc.status, exc.message, phase, who)
    if isinstance(exc, FluxQueryException):
        return f"query failed: {_shown(str(exc.message), _MAX_ERROR)}"
    if isinstance(exc, FluxCsvParserException):
        return f"invalid Flux answer: {_shown(str(exc), _MAX_ERROR)}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return timed_out(timeout, phase)
    known = describe_os_error(exc)
    if known is not None:
        return known
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | httpx.RemoteProtocolError
        | httpx.NetworkError,
    ):
        return f"server closed the connection during {phase}"
    if isinstance(exc, InfluxDBError):
        return _shown(str(exc.message), _MAX_ERROR)
    return failed_during(exc, phase)


_DATABASE_NOT_FOUND = re.compile(r"database not found: (.*)")
_BUCKET_NOT_FOUND = re.compile(r'could not find bucket "(.*?)"|bucket "(.*?)" not found')
_ORG_NOT_FOUND = re.compile(r'organization name "(.*?)" not found')


def _describe_answer(status: int, text: str, phase: str, who: str | None) -> str:
    if match := _DATABASE_NOT_FOUND.search(text):
        return f'database "{match.group(1).strip()}" does not exist'
    if match := _BUCKET_NOT_FOUND.search(text):
        return f'bucket "{match.group(1) or match.group(2)}" does not exist'
    if match := _ORG_NOT_FOUND.search(text):
        return f'organization "{match.group(1)}" does not exist'
    if status == 401:
        if who is None:
            return "authentication required: set username and password (1.x) or token (2.x)"
        if who == "token":
            return "authentication failed: the token was rejected"
        return f"authentication failed for {who}"
    detail = _shown(text, _MAX_ERROR)
    if status == 403:
        return f"not authorised: {detail}" if detail else "not authorised"
    if status == 404 and phase == "Flux query":
        return "no Flux query API here (404): Flux needs InfluxDB 2.x, or 1.8+ with flux-enabled"
    if phase.endswith("query") and status in (200, 400, 422, 500):
        return f"query failed: {detail}"
    return f"HTTP {status} during {phase}" + (f": {detail}" if detail else "")
