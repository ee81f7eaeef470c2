"""The postgres prober against the real PostgreSQL server (README: Development).

The shared server trusts local users, so a wrong password cannot fail against it as it is:
`make services` (scripts/postgres-auth.sh) gives the role `probe_auth` a password and a
pg_hba rule that asks for it. Each test's tables are created in the `test` database and dropped
afterwards. What the mysql prober does alike (outages, silent ports, descriptors, unknown
databases) is tested for both in test_sql.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import partial

import asyncpg
import pytest

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers._sql import as_text, mismatch, parse_data, quote_postgres
from probe.probers.postgres import PostgresProber, PostgresSpec
from tests.support import probers as scenarios
from tests.support import sql
from tests.support.probers import failure
from tests.support.services import services_required
from tests.support.sql import AUTH_PASSWORD, AUTH_USER, POSTGRES, WRONG_PASSWORD


@pytest.fixture(scope="module")
def pg() -> dict[str, object]:
    """host, port, user and database of the shared server (PROBE_TEST_POSTGRES)."""
    return POSTGRES.server()


def make(pg, resources, **keys) -> PostgresProber:
    return POSTGRES.make(pg, resources, **keys)


async def admin(pg, database: str | None = None):
    return await asyncpg.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        database=database or pg["database"],
        timeout=5,
    )


@pytest.fixture
async def table(pg):
    """A table of our own in the test database: (id int, name text, state text, flag bool)."""
    name = f"probe_pg_{uuid.uuid4().hex[:12]}"
    conn = await admin(pg)
    try:
        await conn.execute(
            f"CREATE TABLE {quote_postgres(name)} "
            "(id int PRIMARY KEY, name text, state text, flag bool, day date)"
        )
        await conn.executemany(
            f"INSERT INTO {quote_postgres(name)} VALUES ($1, $2, $3, $4, $5)",
            [
                (1, "api", "ok", True, date(2024, 2, 29)),
                (2, "worker", "degraded", False, None),
                (3, "with:colon", None, None, None),
            ],
        )
        yield name
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {quote_postgres(name)}")
        await conn.close()


@pytest.fixture
async def odd_table(pg):
    """A table and columns whose names need quoting: quotes, spaces, a semicolon, capitals."""
    name = f'Probe "odd"; t {uuid.uuid4().hex[:8]}'
    conn = await admin(pg)
    try:
        await conn.execute(f'CREATE TABLE {quote_postgres(name)} ("Key ""k""" text, "val; 1" text)')
        await conn.execute(f"INSERT INTO {quote_postgres(name)} VALUES ('a''b', 'found')")
        yield name
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {quote_postgres(name)}")
        await conn.close()


@pytest.fixture(scope="module")
def password_role(pg) -> None:
    """probe_auth must need its password (the pg_hba rule of scripts/postgres-auth.sh)."""

    async def log_in(password: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=pg["host"],
            port=pg["port"],
            user=AUTH_USER,
            password=password,
            database=pg["database"],
            timeout=5,
        )

    async def probe_role() -> str | None:
        try:
            conn = await log_in(WRONG_PASSWORD)
        except asyncpg.InvalidPasswordError:
            pass
        except asyncpg.PostgresError as exc:
            # No such role (a machine `make services` has not prepared): a skip, not an error.
            return f"{AUTH_USER} cannot be used ({exc.message})"
        else:
            await conn.close()
            return f"a wrong password is accepted for {AUTH_USER} (no pg_hba rule)"
        try:
            conn = await log_in(AUTH_PASSWORD)
        except asyncpg.PostgresError as exc:
            return f"{AUTH_USER} cannot log in with its password ({exc.message})"
        await conn.close()
        return None

    problem = asyncio.run(probe_role())
    if problem is not None:
        reason = f"PostgreSQL auth set-up missing: {problem}; run `make services` as root"
        if services_required():
            pytest.fail(reason + " (PROBE_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)


# --- healthy ---------------------------------------------------------------------------------


async def test_healthy(pg, resources):
    prober = make(pg, resources, database=pg["database"])
    outcome, ctx = await sql.assert_healthy(prober, pg)
    version = outcome.details["server_version"]
    assert outcome.message == f'PostgreSQL {version}, database "{pg["database"]}"'
    assert ctx.details["database"] == pg["database"]


async def test_default_database_is_postgres(pg, resources):
    outcome = await make(pg, resources).check(CheckContext())
    assert outcome.ok, outcome.message
    assert 'database "postgres"' in outcome.message


async def test_dsn(pg, resources):
    prober = make(pg, resources, dsn=pg["url"])
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert f'database "{pg["database"]}"' in outcome.message


async def test_database_key_wins_over_the_dsn(pg, resources):
    dsn = f"postgresql://{pg['user']}@{pg['address']}/no_such_db_here"
    outcome = await make(pg, resources, dsn=dsn, database="postgres").check(CheckContext())
    assert outcome.ok, outcome.message


# --- failures to connect ----------------------------------------------------------------------


@pytest.mark.usefixtures("password_role")
async def test_wrong_password(pg, resources):
    prober = make(pg, resources, username=AUTH_USER, password=WRONG_PASSWORD)
    await scenarios.assert_authentication_failure(prober, AUTH_USER, WRONG_PASSWORD)


@pytest.mark.usefixtures("password_role")
async def test_wrong_password_in_dsn(pg, resources):
    dsn = f"postgresql://{AUTH_USER}:{WRONG_PASSWORD}@{pg['address']}/{pg['database']}"
    prober = make(pg, resources, dsn=dsn)
    assert prober.endpoint == f"postgresql://{pg['address']}/{pg['database']}"
    await scenarios.assert_authentication_failure(prober, AUTH_USER, WRONG_PASSWORD)


@pytest.mark.usefixtures("password_role")
async def test_right_password(pg, resources):
    prober = make(pg, resources, username=AUTH_USER, password=AUTH_PASSWORD, database="test")
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    scenarios.assert_no_secret(outcome, prober, AUTH_PASSWORD)


async def test_unknown_role(pg, resources):
    error = await failure(make(pg, resources, username="no_such_role_4711"))
    assert error.message == 'role "no_such_role_4711" does not exist'


async def test_tls_configured(pg, resources):
    conn = await admin(pg)
    try:
        server_tls = await conn.fetchval("SHOW ssl") == "on"
    finally:
        await conn.close()
    await sql.assert_tls_as_the_server_allows(make(pg, resources, insecure=True), server_tls)


# --- data ---------------------------------------------------------------------------------------


async def test_data_pass(pg, resources, table):
    db = pg["database"]
    data = {
        f"{db}:{table}:state:id:1": "ok",
        f"{db}:{table}:name:id:3": "with:colon",
        f"{db}:{table}:id:name:with:colon": "3",  # the key value keeps its colons
        f"{db}:{table}:flag:id:1": "true",
        f"{db}:{table}:day:id:1": "2024-02-29",
        f"{db}:{table}:id:flag:false": "2",  # a bool key column: converted by the server
    }
    outcome = await make(pg, resources, database=db, data=data).check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.message.endswith("; 6 data values as expected")


async def test_data_mismatch(pg, resources, table):
    db = pg["database"]
    await sql.assert_data_mismatch(partial(make, pg, resources, database=db), db, table)


async def test_data_null_and_no_rows(pg, resources, table):
    db = pg["database"]
    await sql.assert_data_null_and_no_rows(partial(make, pg, resources, database=db), db, table)


async def test_data_in_another_database(pg, resources, table, open_fds):
    # The probe connects to `postgres`; the data key names the test database: one more
    # connection, opened and closed within the check.
    key = f"{pg['database']}:{table}:state:id:1"
    prober = make(pg, resources, data={key: "ok"})
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert 'database "postgres"' in outcome.message
    before = open_fds()
    for _ in range(20):
        assert (await run_check(prober)).result.status is Status.UP
    assert open_fds() <= before


async def test_data_errors_say_which_key(pg, resources, table):
    db = pg["database"]
    cases = {
        f"{db}:no_such_table_4711:state:id:1": 'table "no_such_table_4711" does not exist',
        f"no_such_db_4711:{table}:state:id:1": 'database "no_such_db_4711" does not exist',
        f"{db}:{table}:nope:id:1": 'column "nope" does not exist',
        f"{db}:{table}:state:id:abc": 'invalid input syntax for type integer: "abc"',
    }
    for key, expected in cases.items():
        error = await failure(make(pg, resources, database=db, data={key: "ok"}))
        assert error.message == f'data "{key}": {expected}'


async def test_data_identifiers_are_quoted_and_values_are_parameters(
    pg, resources, table, odd_table
):
    db = pg["database"]
    odd = f'{db}:{odd_table}:val; 1:Key "k":a\'b'
    assert (await make(pg, resources, database=db, data={odd: "found"}).check(CheckContext())).ok

    attacks = [
        f'{db}:{table}"; DROP TABLE "{table}"; --:state:id:1',
        f"{db}:{table}:state:name:x' OR '1'='1",
        f"{db}:{table}:state:id:1 OR 1=1",
    ]
    await sql.assert_values_are_parameters(partial(make, pg, resources, database=db), attacks)
    conn = await admin(pg)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {quote_postgres(table)}") == 3
    finally:
        await conn.close()


# --- query + expect -----------------------------------------------------------------------------


async def test_query_expect(pg, resources, table):
    db = pg["database"]
    query = f"SELECT state FROM {quote_postgres(table)} WHERE id = 1"
    ok = await make(pg, resources, database=db, query=query, expect="ok").check(CheckContext())
    assert ok.ok and ok.message.endswith("; query as expected")
    bad = await make(pg, resources, database=db, query=query, expect="up").check(CheckContext())
    assert not bad.ok and bad.message == 'expected "up", got "ok"'
    count = "SELECT count(*) FROM pg_database WHERE datname = 'postgres'"
    assert (await make(pg, resources, query=count, expect="1").check(CheckContext())).ok
    plain = await make(pg, resources, query="SELECT 42").check(CheckContext())
    assert plain.ok and plain.message.endswith("; query ok")


async def test_query_no_rows_null_and_error(pg, resources):
    none = await make(pg, resources, query="SELECT 1 WHERE false", expect="1").check(CheckContext())
    assert none.message == 'expected "1", got no rows'
    null = await make(pg, resources, query="SELECT NULL", expect="1").check(CheckContext())
    assert null.message == 'expected "1", got NULL'
    error = await failure(make(pg, resources, query="SELEC 1", expect="1"))
    assert error.message == 'query: syntax error at or near "SELEC"'


# --- conditions: [RESULT], [ROWS], [IP] (judged by the runner, through run_check) --------------


async def test_query_conditions(pg, resources):
    await sql.assert_answer_conditions(partial(make, pg, resources))


async def test_query_conditions_over_rows(pg, resources, table):
    query = f"SELECT id, name, state FROM {quote_postgres(table)} ORDER BY id"
    await sql.assert_table_rows(partial(make, pg, resources, database=pg["database"]), query)


async def test_result_keeps_the_first_rows_and_rows_counts_those_read(pg, resources):
    # The server is asked for MAX_RESULT_ROWS rows only: [ROWS] cannot know the 4,000 others.
    query = "SELECT n FROM generate_series(1, 5000) AS n"
    await sql.assert_rows_bounded(partial(make, pg, resources), query, rows=5000, counted=1000)


async def test_result_values_as_facts(pg, resources):
    query = (
        "SELECT 1.50::numeric AS d, 2::numeric AS whole, 2.5::float8 AS f, true AS b,"
        " NULL AS n, timestamp '2024-02-29 12:30:00' AS t, date '2024-02-29' AS day,"
        " 'ok'::bytea AS raw, interval '1 day' AS i, ARRAY[1, 2] AS a, 1 AS n"
    )
    facts = await sql.facts_of(make(pg, resources, query=query, conditions=["[ROWS] == 1"]))
    assert facts["RESULT"] == [
        {
            "d": 1.5,
            "whole": 2,
            "f": 2.5,
            "b": True,
            "n": None,  # the first of the two columns named n
            "t": "2024-02-29T12:30:00",
            "day": "2024-02-29",
            "raw": "ok",
            "i": "1 day, 0:00:00",
            "a": "[1, 2]",
        }
    ]
    assert type(facts["RESULT"][0]["whole"]) is int


async def test_statement_without_rows(pg, resources):
    prober = make(pg, resources, query="SET application_name = 'x'", conditions=["[ROWS] == 0"])
    result = await sql.judged(prober)
    assert result.status is Status.UP, result.message
    assert (await sql.facts_of(prober))["RESULT"] == []


async def test_rows_read_only_for_row_conditions(pg, resources):
    await sql.assert_rows_read_only_for_row_conditions(partial(make, pg, resources))


async def test_ip_condition(pg, resources):
    await sql.assert_ip_condition(partial(make, pg, resources), pg)


def test_placeholders_checked_at_load(tmp_path):
    sql.assert_placeholders_checked_at_load(tmp_path, "postgres", "127.0.0.1:5432")


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "db:5432", "data": {"a:b:c:d": "x"}}, "must have the form"),
        ({"host": "db:5432", "data": {"a::c:d:1": "x"}}, "table is empty"),
        ({"host": "db:5432", "data": {"a:b\x00:c:d:1": "x"}}, "NUL"),
        ({"dsn": "mysql://u:pw@db/x"}, "dsn must start with postgres://, postgresql://"),
        ({"dsn": "postgres://u:pw@db:99999/x"}, "dsn is not a valid postgres:// URI"),
        ({"dsn": "postgres://db/x", "host": "db:5432"}, "set host or dsn, not both"),
        ({}, "host is required"),
        ({"host": "db:5432", "expect": "1"}, "expect needs a query"),
        ({"host": "db"}, "missing port"),
    ],
)
def test_config_errors(keys, needle):
    messages = scenarios.config_error_messages(PostgresSpec, name="pg", driver="postgres", **keys)
    assert needle in messages
    assert "pw" not in messages


def test_spec_values():
    spec = PostgresSpec(
        name="pg", driver="postgres", dsn="postgresql://app:s3cret@db.lan:5433/shop?sslmode=require"
    )
    assert spec.endpoint() == "postgresql://db.lan:5433/shop?sslmode=require"
    assert spec.effective_database() == "shop"
    assert spec.effective_user() == "app"
    assert "s3cret" not in repr(spec)
    bare = PostgresSpec(name="pg", driver="postgres", host="db.lan:5432", data={"a:b:c:d:1": 1})
    assert bare.effective_database() == "postgres"
    assert bare.data == {"a:b:c:d:1": "1"}
    query_db = PostgresSpec(name="pg", driver="postgres", dsn="postgres://db.lan/?dbname=x")
    assert query_db.effective_database() == "x"


# --- shared SQL helpers -------------------------------------------------------------------------


def test_parse_data_keeps_colons_in_the_key_value():
    (check,) = parse_data({"db:t:c:k:12:30:00": "ok"})
    assert (check.database, check.table, check.column, check.key_column) == ("db", "t", "c", "k")
    assert check.key_value == "12:30:00"
    assert check.expected == "ok"


def test_values_as_text():
    assert as_text(None) is None
    assert as_text(True) == "true"
    assert as_text(b"ok") == "ok"
    assert as_text(Decimal("1.50")) == "1.50"
    assert as_text(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert as_text(7) == "7"
    assert mismatch("ok", "x" * 300).endswith('…"')
    assert mismatch('a"b', None) == 'expected "a\\"b", got NULL'
