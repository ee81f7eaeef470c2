"""The mysql prober against the real MariaDB server (README: Development).

The shared server lets root in without a password, so a wrong password is tested with a user of
our own, `probe_auth`, created (idempotently) by a fixture as services.md says. The handshake's
later phases (TLS, auth) are reached with a raw server that replays the real server's greeting
and then falls silent. Each test's tables live in the `test` database and are dropped after.
What the postgres prober does alike (outages, silent ports, descriptors, unknown databases) is
tested for both in test_sql.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from functools import partial

import aiomysql
import pytest
from pymysql.constants import CLIENT

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.errors import ProbeError
from probe.probers._sql import quote_mysql
from probe.probers.mysql import MySQLProber, MySQLSpec
from tests.support import probers as scenarios
from tests.support import sql
from tests.support.probers import failure
from tests.support.sql import AUTH_PASSWORD, AUTH_USER, MYSQL, WRONG_PASSWORD


@pytest.fixture(scope="module")
def my() -> dict[str, object]:
    """host, port, user, password and database of the shared server (PROBE_TEST_MYSQL)."""
    return MYSQL.server()


def make(my, resources, **keys) -> MySQLProber:
    return MYSQL.make(my, resources, **keys)


async def admin(my):
    return await aiomysql.connect(
        host=my["host"],
        port=my["port"],
        user=my["user"],
        password=my["password"],
        db=my["database"],
        autocommit=True,
        connect_timeout=5,
    )


async def execute(my, *statements: str) -> list[tuple]:
    conn = await admin(my)
    try:
        rows: list[tuple] = []
        async with conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
                rows = list(await cursor.fetchall())
        return rows
    finally:
        conn.close()


@pytest.fixture
async def auth_user(my):
    """probe_auth with a password, allowed to read the test database (idempotent).

    Created for each host pattern, so that no anonymous ''@localhost account can shadow it.
    """
    rows = await execute(my, f"SELECT host FROM mysql.user WHERE user = '{AUTH_USER}'")
    existing = {row[0] for row in rows}
    statements = []
    for host in ("%", "localhost", "127.0.0.1"):
        user = f"'{AUTH_USER}'@'{host}'"
        if host not in existing:  # CREATE USER IF NOT EXISTS warns, and warnings are errors
            statements.append(f"CREATE USER {user} IDENTIFIED BY '{AUTH_PASSWORD}'")
        statements += [
            f"ALTER USER {user} IDENTIFIED BY '{AUTH_PASSWORD}'",
            f"GRANT SELECT ON {quote_mysql(my['database'])}.* TO {user}",
        ]
    await execute(my, *statements)
    return AUTH_USER


@pytest.fixture
async def table(my):
    """A table of our own: (id int, name varchar, state varchar, seen datetime)."""
    name = f"probe_my_{uuid.uuid4().hex[:12]}"
    await execute(
        my,
        f"CREATE TABLE {quote_mysql(name)} (id INT PRIMARY KEY, name VARCHAR(40), "
        "state VARCHAR(40), seen DATETIME)",
        f"INSERT INTO {quote_mysql(name)} VALUES (1, 'api', 'ok', '2024-02-29 12:30:00'), "
        "(2, 'worker', 'degraded', NULL), (3, 'with:colon', NULL, NULL)",
    )
    try:
        yield name
    finally:
        await execute(my, f"DROP TABLE IF EXISTS {quote_mysql(name)}")


@pytest.fixture
async def odd_table(my):
    """A table and columns whose names need quoting: backticks, %, a semicolon, a space."""
    name = f"probe `odd` 100%s; {uuid.uuid4().hex[:8]}"
    await execute(
        my,
        f"CREATE TABLE {quote_mysql(name)} (`key ``k``` VARCHAR(20), `val; %d` VARCHAR(20))",
        f"INSERT INTO {quote_mysql(name)} VALUES ('a''b%s', 'found')",
    )
    try:
        yield name
    finally:
        await execute(my, f"DROP TABLE IF EXISTS {quote_mysql(name)}")


@pytest.fixture
async def greeting(my) -> bytes:
    """The real server's greeting packet, for a raw server to replay."""
    reader, writer = await asyncio.open_connection(my["host"], my["port"])
    try:
        header = await reader.readexactly(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        return header + await reader.readexactly(length)
    finally:
        writer.close()
        await writer.wait_closed()


def with_capabilities(packet: bytes, *, ssl: bool) -> bytes:
    """The greeting with the SSL capability bit set or cleared."""
    end = packet.index(b"\0", 5)  # protocol version byte, then the NUL-terminated version
    offset = end + 1 + 4 + 8 + 1  # thread id, first salt part, filler
    (caps,) = struct.unpack_from("<H", packet, offset)
    caps = caps | CLIENT.SSL if ssl else caps & ~CLIENT.SSL
    return packet[:offset] + struct.pack("<H", caps) + packet[offset + 2 :]


# --- healthy ---------------------------------------------------------------------------------


async def test_healthy(my, resources):
    prober = make(my, resources, database=my["database"])
    outcome, _ = await sql.assert_healthy(prober, my)  # MariaDB's "5.5.5-" prefix is gone
    version = outcome.details["server_version"]
    product = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    short = version.split("-")[0]
    assert outcome.message == f'{product} {short}, database "{my["database"]}"'


async def test_no_database_needed(my, resources):
    outcome = await make(my, resources).check(CheckContext())
    assert outcome.ok, outcome.message
    assert "database" not in outcome.message


async def test_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{AUTH_PASSWORD}@{my['address']}/{my['database']}"
    prober = make(my, resources, dsn=dsn)
    assert prober.endpoint == f"mysql://{my['address']}/{my['database']}"
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    scenarios.assert_no_secret(outcome, prober, AUTH_PASSWORD)


# --- failures to connect ----------------------------------------------------------------------


async def test_wrong_password(my, resources, auth_user):
    prober = make(my, resources, username=auth_user, password=WRONG_PASSWORD)
    await scenarios.assert_authentication_failure(prober, auth_user, WRONG_PASSWORD)


async def test_wrong_password_in_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{WRONG_PASSWORD}@{my['address']}/{my['database']}"
    await scenarios.assert_authentication_failure(
        make(my, resources, dsn=dsn), auth_user, WRONG_PASSWORD
    )


async def test_password_key_wins_over_the_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{WRONG_PASSWORD}@{my['address']}/{my['database']}"
    prober = make(my, resources, dsn=dsn, password=AUTH_PASSWORD)
    assert (await prober.check(CheckContext())).ok


async def test_database_not_granted(my, resources, auth_user):
    prober = make(my, resources, username=auth_user, password=AUTH_PASSWORD, database="mysql")
    error = await failure(prober)
    assert error.message.startswith(f"access denied for user '{auth_user}'@")
    assert error.message.endswith("to database 'mysql'")


async def test_tls_configured(my, resources):
    rows = await execute(my, "SHOW VARIABLES LIKE 'have_ssl'")
    server_tls = bool(rows) and rows[0][1] == "YES"
    await sql.assert_tls_as_the_server_allows(make(my, resources, insecure=True), server_tls)


# --- data ---------------------------------------------------------------------------------------


async def test_data_pass(my, resources, table):
    db = my["database"]
    data = {
        f"{db}:{table}:state:id:1": "ok",
        f"{db}:{table}:id:name:with:colon": "3",  # the key value keeps its colons
        f"{db}:{table}:seen:id:1": "2024-02-29 12:30:00",
        f"{db}:{table}:name:state:degraded": "worker",
    }
    outcome = await make(my, resources, data=data).check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.message.endswith("; 4 data values as expected")


async def test_data_mismatch(my, resources, table):
    await sql.assert_data_mismatch(partial(make, my, resources), my["database"], table)


async def test_data_null_and_no_rows(my, resources, table):
    await sql.assert_data_null_and_no_rows(partial(make, my, resources), my["database"], table)


async def test_data_errors_say_which_key(my, resources, table):
    db = my["database"]
    cases = {
        f"{db}:no_such_table_4711:state:id:1": f'table "{db}.no_such_table_4711" does not exist',
        f"{db}:{table}:nope:id:1": "unknown column 'nope' in ",
    }
    for key, expected in cases.items():
        error = await failure(make(my, resources, data={key: "ok"}))
        assert error.message.startswith(f'data "{key}": {expected}')


async def test_data_identifiers_are_quoted_and_values_are_parameters(
    my, resources, table, odd_table
):
    db = my["database"]
    odd = f"{db}:{odd_table}:val; %d:key `k`:a'b%s"
    outcome = await make(my, resources, data={odd: "found"}).check(CheckContext())
    assert outcome.ok, outcome.message

    attacks = [
        f"{db}:{table}`; DROP TABLE `{table}`; --:state:id:1",
        f"{db}:{table}:state:name:x' OR '1'='1",
        f"{db}:{table}:state:id:99 OR 1=1",
    ]
    await sql.assert_values_are_parameters(partial(make, my, resources), attacks)
    assert await execute(my, f"SELECT COUNT(*) FROM {quote_mysql(table)}") == [(3,)]


# --- query + expect -----------------------------------------------------------------------------


async def test_query_expect(my, resources, table):
    query = f"SELECT state FROM {quote_mysql(my['database'])}.{quote_mysql(table)} WHERE id = 1"
    ok = await make(my, resources, query=query, expect="ok").check(CheckContext())
    assert ok.ok and ok.message.endswith("; query as expected")
    bad = await make(my, resources, query=query, expect="up").check(CheckContext())
    assert not bad.ok and bad.message == 'expected "up", got "ok"'
    number = await make(my, resources, query="SELECT 6 * 7", expect="42").check(CheckContext())
    assert number.ok
    plain = await make(my, resources, query="SELECT 42").check(CheckContext())
    assert plain.ok and plain.message.endswith("; query ok")


async def test_query_no_rows_null_and_error(my, resources):
    none = await make(my, resources, query="SELECT 1 FROM DUAL WHERE 1 = 0", expect="1").check(
        CheckContext()
    )
    assert none.message == 'expected "1", got no rows'
    # 1/0 is NULL with a warning: the warning must neither cost a round trip nor be raised.
    null = await make(my, resources, query="SELECT 1/0", expect="1").check(CheckContext())
    assert null.message == 'expected "1", got NULL'
    error = await failure(make(my, resources, query="SELEC 1", expect="1"))
    assert error.message == "query: SQL syntax error near 'SELEC 1' at line 1"


# --- conditions: [RESULT], [ROWS], [IP] (judged by the runner, through run_check) --------------


async def test_query_conditions(my, resources):
    await sql.assert_answer_conditions(partial(make, my, resources))


async def test_query_conditions_over_rows(my, resources, table):
    query = f"SELECT id, name, state FROM {quote_mysql(my['database'])}.{quote_mysql(table)}"
    await sql.assert_table_rows(partial(make, my, resources), query + " ORDER BY id")


async def test_result_keeps_the_first_rows_and_rows_counts_them_all(my, resources):
    # aiomysql's buffered cursor reads the whole answer: [ROWS] is the true count. (Not a
    # recursive CTE: the server may stop those at 1,000 iterations.)
    digit = " UNION ALL ".join(f"SELECT {i} AS n" for i in range(10))
    tables = ", ".join(f"({digit}) AS d{i}" for i in range(4))
    query = (
        "SELECT 1 + d0.n + 10 * d1.n + 100 * d2.n + 1000 * d3.n AS n"
        f" FROM {tables} WHERE d3.n < 5 ORDER BY n"
    )
    await sql.assert_rows_bounded(partial(make, my, resources), query, rows=5000, counted=5000)


async def test_result_values_as_facts(my, resources):
    query = (
        "SELECT CAST(1.50 AS DECIMAL(5, 2)) AS d, CAST(2 AS DECIMAL(5, 2)) AS whole,"
        " 2.5e0 AS f, NULL AS n, CAST('2024-02-29 12:30:00' AS DATETIME) AS t,"
        " CAST('2024-02-29' AS DATE) AS day, CAST('ok' AS BINARY) AS raw,"
        " CAST('25:00:00' AS TIME) AS span, 1 AS n"
    )
    facts = await sql.facts_of(make(my, resources, query=query, conditions=["[ROWS] == 1"]))
    assert facts["RESULT"] == [
        {
            "d": 1.5,
            "whole": 2,
            "f": 2.5,
            "n": None,  # the first of the two columns named n
            "t": "2024-02-29T12:30:00",
            "day": "2024-02-29",
            "raw": "ok",
            "span": "1 day, 1:00:00",
        }
    ]
    assert type(facts["RESULT"][0]["whole"]) is int


async def test_statement_without_rows(my, resources):
    prober = make(my, resources, query="DO 1", conditions=["[ROWS] == 0"])
    result = await sql.judged(prober)
    assert result.status is Status.UP, result.message
    assert (await sql.facts_of(prober))["RESULT"] == []


async def test_rows_read_only_for_row_conditions(my, resources):
    await sql.assert_rows_read_only_for_row_conditions(partial(make, my, resources))


async def test_ip_condition(my, resources):
    await sql.assert_ip_condition(partial(make, my, resources), my)


async def test_ip_is_known_from_the_greeting_on_a_failed_check(my, resources, auth_user):
    # Noted when the server greets: a check that fails later (here: its password) has it.
    prober = make(my, resources, username=auth_user, password=WRONG_PASSWORD)
    ctx = CheckContext()
    with pytest.raises(ProbeError):
        await prober.check(ctx)
    assert ctx.facts["IP"] == my["host"]
    # With TLS asked for, whether the server speaks it or not.
    ctx = CheckContext()
    with contextlib.suppress(ProbeError):
        await make(my, resources, insecure=True).check(ctx)
    assert ctx.facts["IP"] == my["host"]


def test_placeholders_checked_at_load(tmp_path):
    sql.assert_placeholders_checked_at_load(tmp_path, "mysql", "127.0.0.1:3306")


# --- handshake phases ---------------------------------------------------------------------------


@pytest.mark.parametrize(("tls", "phase"), [(False, "auth"), (True, "TLS handshake")])
async def test_silent_after_the_greeting(resources, raw_server, greeting, open_fds, tls, phase):
    async def greet_then_hang(reader, writer):
        writer.write(with_capabilities(greeting, ssl=tls))
        await writer.drain()
        await reader.read()  # until the prober hangs up

    server = await raw_server(greet_then_hang)
    keys = {"insecure": True} if tls else {}
    spec = MySQLSpec(
        name="my", driver="mysql", host=server.address, username="u", timeout="500ms", **keys
    )
    before = open_fds()
    run = await scenarios.timed_run(MySQLProber(spec, resources), within=1.5)
    assert run.straggler is None
    assert run.result.message == f"timeout after 500ms during {phase}"
    # The raw server is in this process: its side closes once it reads the prober's EOF.
    await scenarios.settle(open_fds, before, rounds=50)


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "db:3306", "data": {"a:b:c": "x"}}, "must have the form"),
        ({"host": "db:3306", "data": {":b:c:d:1": "x"}}, "db is empty"),
        ({"dsn": "postgres://u:pw@db/x"}, "dsn must start with mysql://"),
        ({"dsn": "mysql://u:pw@db:99999/x"}, "dsn has an invalid host or port"),
        ({"dsn": "mysql://u:pw@/x"}, "dsn has no host"),
        ({"dsn": "mysql://u:pw@db/x?ssl=1"}, "dsn query parameters are not supported"),
        ({"dsn": "mysql://u:pw@db/x/y"}, "single database name"),
        ({"dsn": "mysql://db/x", "host": "db:3306"}, "set host or dsn, not both"),
        ({"host": "db:3306", "cert": "/nonexistent.pem"}, "file not found"),
    ],
)
def test_config_errors(keys, needle):
    messages = scenarios.config_error_messages(MySQLSpec, name="my", driver="mysql", **keys)
    assert needle in messages
    assert "pw" not in messages


def test_connect_params():
    spec = MySQLSpec(name="my", driver="mysql", dsn="mysql://app:p%40ss@[::1]/shop")
    assert spec.connect_params() == ("::1", 3306, "app", "p@ss", "shop")
    assert spec.endpoint() == "mysql://[::1]/shop"
    assert "p%40ss" not in repr(spec)
    keyed = MySQLSpec(
        name="my", driver="mysql", dsn="mysql://app:x@db:3307/a", username="u", database="b"
    )
    assert keyed.connect_params() == ("db", 3307, "u", "x", "b")
    plain = MySQLSpec(name="my", driver="mysql", host="db.lan:3306", username="u")
    assert plain.connect_params() == ("db.lan", 3306, "u", "", None)
