"""The mysql and postgres probers' tests: their shared servers, the account for wrong
passwords, and the scenarios both go through against their table of the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from probe.core.check import CheckContext, Outcome
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers._sql import shown
from probe.probers.base import Prober, SharedResources
from probe.probers.mysql import MySQLProber, MySQLSpec
from probe.probers.postgres import PostgresProber, PostgresSpec
from tests.support.probers import Make, OpenFds, failure, timed_run
from tests.support.services import require_service

# `probe_auth` needs its password on both servers (services.md): the mysql tests create it
# (idempotently), scripts/postgres-auth.sh gives the postgres role the same.
AUTH_USER = "probe_auth"
AUTH_PASSWORD = "probe-auth-secret"
WRONG_PASSWORD = "wrong-Secret-4711"


# How the SQL probers word a connection the server (here: the proxy) resets or closes.
SQL_CUT = frozenset({"connection reset by peer", "connection closed by the server"})


def sql_server(service: str, *, port: int, user: str) -> dict[str, Any]:
    """host, port, user, password, database, url and address (host:port) of a shared SQL
    server."""
    url = require_service(service)
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or port,
        "user": parts.username or user,
        "password": parts.password or "",
        "database": parts.path.lstrip("/") or "test",
        "url": url,
        "address": f"{parts.hostname or '127.0.0.1'}:{parts.port or port}",
    }


def sql_keys(server: dict[str, Any], keys: dict[str, object]) -> dict[str, object]:
    """`keys` with the shared server's address and user (unless a DSN says where to go)."""
    keys.setdefault("timeout", "3s")
    if "dsn" not in keys:
        keys.setdefault("host", server["address"])
        keys.setdefault("username", server["user"])
        if server["password"]:
            keys.setdefault("password", server["password"])
    return keys


@dataclass(frozen=True)
class SQLKind:
    """One SQL driver: its prober, the probe name, the shared server's default port and user,
    and a query that takes 2 s."""

    prober: type[Prober[Any]]
    spec: type[Any]
    name: str
    port: int
    user: str
    slow_query: str

    @property
    def driver(self) -> str:
        """The driver's name, also the service's name in tests/support/services.py."""
        return str(self.spec.kind)

    def server(self) -> dict[str, Any]:
        return sql_server(self.driver, port=self.port, user=self.user)

    def make(self, server: dict[str, Any], resources: SharedResources, **keys: object) -> Any:
        """A prober for the shared `server` unless `keys` say otherwise."""
        keys = sql_keys(server, keys)
        return self.prober(self.spec(name=self.name, driver=self.driver, **keys), resources)


MYSQL = SQLKind(MySQLProber, MySQLSpec, "my", 3306, "root", "SELECT SLEEP(2)")
POSTGRES = SQLKind(PostgresProber, PostgresSpec, "pg", 5432, "postgres", "SELECT pg_sleep(2)")
SQL_KINDS = {kind.driver: kind for kind in (MYSQL, POSTGRES)}


async def assert_healthy(
    prober: Prober[Any], server: dict[str, Any]
) -> tuple[Outcome, CheckContext]:
    """A check of the shared server: ok, its version reported (a digit first), every phase
    run to the end, the endpoint host:port. Returns the outcome and the check's context."""
    ctx = CheckContext()
    outcome = await prober.check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.details["server_version"][0].isdigit()
    assert ctx.phase == "close"
    assert prober.endpoint == server["address"]
    return outcome, ctx


async def assert_tls_as_the_server_allows(prober: Prober[Any], server_tls: bool) -> None:
    """Up when the server speaks TLS; otherwise the error says it does not."""
    if server_tls:
        assert (await prober.check(CheckContext())).ok
    else:
        error = await failure(prober)
        assert error.message == "TLS: the server does not support TLS"


async def assert_data_mismatch(make: Make, db: str, table: str) -> None:
    """Against the tests' table (id 2 is "degraded"): not ok, said with its key."""
    key = f"{db}:{table}:state:id:2"
    outcome = await make(data={key: "ok"}).check(CheckContext())
    assert not outcome.ok
    assert outcome.message == f'data "{key}": expected "ok", got "degraded"'
    assert outcome.details["server_version"]


async def assert_data_null_and_no_rows(make: Make, db: str, table: str) -> None:
    """Against the tests' table (id 3's state is NULL, there is no id 99)."""
    null = await make(data={f"{db}:{table}:state:id:3": "ok"}).check(CheckContext())
    assert null.message.endswith('expected "ok", got NULL')
    none = await make(data={f"{db}:{table}:state:id:99": "ok"}).check(CheckContext())
    assert none.message.endswith('expected "ok", got no rows')


async def assert_values_are_parameters(make: Make, attacks: Sequence[str]) -> None:
    """Each data key of `attacks` (SQL injected into an identifier or a value) is a failed
    check about that key, never SQL run."""
    for key in attacks:
        result = (await run_check(make(data={key: "ok"}))).result
        assert result.status is Status.DOWN
        assert result.message.startswith(f"data {shown(key)}: ")


async def assert_query_times_out(make: Make, query: str, open_fds: OpenFds) -> None:
    """A query slower than the timeout: DOWN "during query" in time, no straggler, the
    server's version still reported, and its connection closed."""
    prober = make(query=query, timeout="500ms")
    await run_check(make())  # warm imports and caches before counting
    before = open_fds()
    run = await timed_run(prober, within=1.5)
    assert run.straggler is None
    assert run.result.message == "timeout after 500ms during query"
    assert run.result.details["server_version"]
    assert open_fds() <= before
