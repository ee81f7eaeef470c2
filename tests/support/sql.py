"""The mysql and postgres probers' tests: their shared servers, the account for wrong
passwords, and the scenarios both go through against their table of the same rows; and the
conditions on a query's rows ([RESULT], [ROWS]) that they, and influxdb's, go through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from probe.assembly import load_config
from probe.core.check import CheckContext, Outcome
from probe.core.result import Result, Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError
from probe.probers._sql import MAX_RESULT_ROWS, shown
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


# --- conditions on the query's rows ------------------------------------------------------------

ANSWER_QUERY = "SELECT 42 AS answer, 'bob' AS name"
ANSWER_CONDITIONS = ["[RESULT] == 42", "[RESULT][0].name == bob", "[ROWS] == 1"]


async def judged(prober: Prober[Any]) -> Result:
    """One check through the runner, which applies the probe's conditions."""
    return (await run_check(prober)).result


async def facts_of(prober: Prober[Any]) -> dict[str, Any]:
    """The facts one check fills (its outcome is the caller's to judge elsewhere)."""
    ctx = CheckContext()
    await prober.check(ctx)
    return ctx.facts


async def assert_answer_conditions(make: Make) -> None:
    """The query's one row, read by [RESULT], [RESULT][0].name and [ROWS]: up without
    `expect` (the query runs for the conditions alone), the values typed as the driver
    returned them; a condition that does not hold is down with the value it read."""
    prober = make(query=ANSWER_QUERY, conditions=ANSWER_CONDITIONS)
    result = await judged(prober)
    assert result.status is Status.UP, result.message
    assert result.message.endswith("; query ok")
    assert "failed_conditions" not in result.details
    facts = await facts_of(prober)
    assert facts["RESULT"] == [{"answer": 42, "name": "bob"}]
    assert list(facts["RESULT"][0]) == ["answer", "name"]  # in column order
    assert facts["ROWS"] == 1

    result = await judged(make(query=ANSWER_QUERY, conditions=["[RESULT] > 100"]))
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [RESULT] (42) > 100"
    assert result.details["failed_conditions"] == ["[RESULT] (42) > 100"]


async def assert_table_rows(make: Make, query: str) -> None:
    """`query` reads the tests' table (ids 1, 2, 3 in order): every row, by index and column;
    `expect` still judges the first row alone."""
    conditions = [
        "[ROWS] == 3",
        "[RESULT] == 1",
        "[RESULT][1].name == worker",
        "[RESULT][2].name == with:colon",
        "[RESULT][0].state == ok",
    ]
    result = await judged(make(query=query, conditions=conditions))
    assert result.status is Status.UP, result.message
    facts = await facts_of(make(query=query, conditions=conditions))
    assert [row["id"] for row in facts["RESULT"]] == [1, 2, 3]
    assert facts["RESULT"][2]["state"] is None
    # `expect` and the conditions judge the same answer, each its own way.
    result = await judged(make(query=query, expect="2", conditions=conditions))
    assert result.status is Status.DOWN
    assert result.message == 'expected "2", got "1"'
    assert "failed_conditions" not in result.details
    result = await judged(make(query=query, expect="1", conditions=["[ROWS] == 4"]))
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [ROWS] (3) == 4"


async def assert_rows_bounded(make: Make, query: str, *, rows: int, counted: int) -> None:
    """A query of `rows` rows keeps MAX_RESULT_ROWS of them in [RESULT]; [ROWS] is `counted`
    (the driver's true count, or the rows read)."""
    facts = await facts_of(make(query=query, conditions=["[ROWS] > 0"]))
    assert len(facts["RESULT"]) == MAX_RESULT_ROWS < rows
    assert facts["RESULT"][-1] == {"n": MAX_RESULT_ROWS}
    assert facts["ROWS"] == counted


async def assert_rows_read_only_for_row_conditions(make: Make) -> None:
    """Without a condition on [RESULT] or [ROWS], the query is run as before (its first row,
    for `expect`) and fills no row facts."""
    facts = await facts_of(make(query=ANSWER_QUERY, conditions=["[RESPONSE_TIME] < 1m"]))
    assert "RESULT" not in facts
    assert "ROWS" not in facts
    assert "RESULT" not in await facts_of(make(query=ANSWER_QUERY))


async def assert_ip_condition(make: Make, server: dict[str, Any]) -> None:
    """[IP] is the address the driver connected to (the shared server's, an IP literal)."""
    result = await judged(make(conditions=[f"[IP] == {server['host']}"]))
    assert result.status is Status.UP, result.message
    assert (await facts_of(make()))["IP"] == server["host"]


def load_problems(directory: Path, text: str) -> list[str]:
    """The problems of loading `text` as probes.yaml (real registry), as
    `probes.yaml:LINE:COL: path: message` lines."""
    path = directory / "probes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [str(problem).removeprefix(f"{directory}/") for problem in caught.value.problems]


def assert_placeholders_checked_at_load(directory: Path, driver: str, host: str) -> None:
    """A placeholder `driver` probes do not fill, and a row placeholder without a query, are
    config errors at their condition, naming it; [RESULT] and [ROWS] with a query load."""
    query_key = "influxql" if driver == "influxdb" else "query"
    problems = load_problems(
        directory,
        f"""\
client:
  - name: with-query
    driver: {driver}
    host: {host}
    {query_key}: SELECT 1
    conditions: ["[RESULT] == 1", "[ROWS] > 0", "[STATUS] == 200"]
  - name: no-query
    driver: {driver}
    host: {host}
    conditions: ["[IP] == 127.0.0.1", "len([RESULT]) > 0"]
""",
    )
    needs = "query or influxql" if driver == "influxdb" else "query"
    assert problems == [
        "probes.yaml:6:49: client[0].conditions[2]: [STATUS] is not a placeholder of"
        f" {driver} probes (they have [CONNECTED], [IP], [RESPONSE_TIME], [RESULT], [ROWS])"
        " (at character 1)",
        f"probes.yaml:10:39: client[1].conditions[1]: [RESULT] reads the query's rows: set"
        f" {needs} (at character 5)",
    ]
