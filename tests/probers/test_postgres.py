"""The postgres prober against the real PostgreSQL server (DESIGN.md section 6).

The shared server trusts local users, so a wrong password cannot fail against it as it is:
.ci/postgres-auth.sh gives the role `probe_auth` a password and a pg_hba rule that asks for
it (services.md). Outages and silent ports are made with a TCPProxy, never by stopping the
shared server. Each test's tables are created in the `test` database and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import asyncpg
import pytest
from pydantic import ValidationError

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers import CLIENT_DRIVERS, load_prober_class
from probe.probers._sql import as_text, mismatch, parse_data, quote_postgres, shown
from probe.probers.base import SharedResources
from probe.probers.postgres import PostgresProber, PostgresSpec
from tests.support.proxy import TCPProxy
from tests.support.services import require_service, services_required

AUTH_USER = "probe_auth"
AUTH_PASSWORD = "probe-auth-secret"
WRONG_PASSWORD = "wrong-Secret-4711"


@pytest.fixture(scope="module")
def pg() -> dict[str, object]:
    """host, port, user and database of the shared server (PROBE_TEST_POSTGRES)."""
    url = require_service("postgres")
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "database": parts.path.lstrip("/") or "test",
        "url": url,
    }


@pytest.fixture
async def resources():
    shared = SharedResources()
    yield shared
    await shared.aclose()


def address(pg) -> str:
    return f"{pg['host']}:{pg['port']}"


def make(pg, resources, **keys) -> PostgresProber:
    keys.setdefault("timeout", "3s")
    if "dsn" not in keys:
        keys.setdefault("host", address(pg))
        keys.setdefault("username", pg["user"])
    return PostgresProber(PostgresSpec(name="pg", driver="postgres", **keys), resources)


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
    """probe_auth must need its password (the pg_hba rule of .ci/postgres-auth.sh)."""

    async def probe_role() -> str | None:
        try:
            conn = await asyncpg.connect(
                host=pg["host"],
                port=pg["port"],
                user=AUTH_USER,
                password=WRONG_PASSWORD,
                database=pg["database"],
                timeout=5,
            )
        except asyncpg.InvalidPasswordError:
            pass
        else:
            await conn.close()
            return f"a wrong password is accepted for {AUTH_USER} (no pg_hba rule)"
        try:
            conn = await asyncpg.connect(
                host=pg["host"],
                port=pg["port"],
                user=AUTH_USER,
                password=AUTH_PASSWORD,
                database=pg["database"],
                timeout=5,
            )
        except asyncpg.PostgresError as exc:
            return f"{AUTH_USER} cannot log in with its password ({exc.message})"
        await conn.close()
        return None

    problem = asyncio.run(probe_role())
    if problem is not None:
        reason = f"PostgreSQL auth set-up missing: {problem}; run .ci/postgres-auth.sh as root"
        if services_required():
            pytest.fail(reason + " (PROBE_TEST_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)


def assert_no_secret(result_or_error, prober: PostgresProber, *secrets: str) -> None:
    texts = [str(result_or_error.message), repr(result_or_error.details), prober.endpoint]
    for secret in secrets:
        for text in texts:
            assert secret not in text


# --- registry and healthy -------------------------------------------------------------------


def test_registry_points_at_the_prober():
    assert load_prober_class(CLIENT_DRIVERS["postgres"]) is PostgresProber
    assert PostgresProber.spec_type is PostgresSpec
    assert PostgresSpec.kind == "postgres"


async def test_healthy(pg, resources):
    prober = make(pg, resources, database=pg["database"])
    ctx = CheckContext()
    outcome = await prober.check(ctx)
    assert outcome.ok, outcome.message
    version = outcome.details["server_version"]
    assert version[0].isdigit()
    assert outcome.message == f'PostgreSQL {version}, database "{pg["database"]}"'
    assert ctx.details["database"] == pg["database"]
    assert ctx.phase == "close"
    assert prober.endpoint == address(pg)


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
    dsn = f"postgresql://{pg['user']}@{address(pg)}/no_such_db_here"
    outcome = await make(pg, resources, dsn=dsn, database="postgres").check(CheckContext())
    assert outcome.ok, outcome.message


# --- failures to connect ----------------------------------------------------------------------


@pytest.mark.usefixtures("password_role")
async def test_wrong_password(pg, resources):
    prober = make(pg, resources, username=AUTH_USER, password=WRONG_PASSWORD)
    run = await run_check(prober)
    assert run.result.status is Status.DOWN
    assert run.result.message == f'authentication failed for user "{AUTH_USER}"'
    assert_no_secret(run.result, prober, WRONG_PASSWORD)


@pytest.mark.usefixtures("password_role")
async def test_wrong_password_in_dsn(pg, resources):
    dsn = f"postgresql://{AUTH_USER}:{WRONG_PASSWORD}@{address(pg)}/{pg['database']}"
    prober = make(pg, resources, dsn=dsn)
    assert prober.endpoint == f"postgresql://{address(pg)}/{pg['database']}"
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    assert caught.value.message == f'authentication failed for user "{AUTH_USER}"'
    assert_no_secret(caught.value, prober, WRONG_PASSWORD)


@pytest.mark.usefixtures("password_role")
async def test_right_password(pg, resources):
    prober = make(pg, resources, username=AUTH_USER, password=AUTH_PASSWORD, database="test")
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert_no_secret(outcome, prober, AUTH_PASSWORD)


async def test_unknown_database(pg, resources):
    with pytest.raises(ProbeError) as caught:
        await make(pg, resources, database="no_such_db_4711").check(CheckContext())
    assert caught.value.message == 'database "no_such_db_4711" does not exist'


async def test_unknown_role(pg, resources):
    with pytest.raises(ProbeError) as caught:
        await make(pg, resources, username="no_such_role_4711").check(CheckContext())
    assert caught.value.message == 'role "no_such_role_4711" does not exist'


async def test_closed_port(resources, closed_port):
    spec = PostgresSpec(
        name="pg", driver="postgres", host=f"127.0.0.1:{closed_port}", username="u", timeout="2s"
    )
    with pytest.raises(ProbeError) as caught:
        await PostgresProber(spec, resources).check(CheckContext())
    assert caught.value.message == "connection refused"


async def test_tls_configured(pg, resources):
    conn = await admin(pg)
    try:
        server_tls = await conn.fetchval("SHOW ssl") == "on"
    finally:
        await conn.close()
    prober = make(pg, resources, insecure=True)
    if server_tls:
        assert (await prober.check(CheckContext())).ok
    else:
        with pytest.raises(ProbeError) as caught:
            await prober.check(CheckContext())
        assert caught.value.message == "TLS: the server does not support TLS"


async def test_unusable_ca_file_is_a_check_failure(pg, resources, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    prober = make(pg, resources, ca=str(ca))  # built on first use, not at start-up
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    assert caught.value.message.startswith("TLS: ")


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
    key = f"{pg['database']}:{table}:state:id:2"
    prober = make(pg, resources, database=pg["database"], data={key: "ok"})
    outcome = await prober.check(CheckContext())
    assert not outcome.ok
    assert outcome.message == f'data "{key}": expected "ok", got "degraded"'
    assert outcome.details["server_version"]


async def test_data_null_and_no_rows(pg, resources, table):
    db = pg["database"]
    null = await make(pg, resources, database=db, data={f"{db}:{table}:state:id:3": "ok"}).check(
        CheckContext()
    )
    assert null.message.endswith('expected "ok", got NULL')
    none = await make(pg, resources, database=db, data={f"{db}:{table}:state:id:99": "ok"}).check(
        CheckContext()
    )
    assert none.message.endswith('expected "ok", got no rows')


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
        with pytest.raises(ProbeError) as caught:
            await make(pg, resources, database=db, data={key: "ok"}).check(CheckContext())
        assert caught.value.message == f'data "{key}": {expected}'


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
    for key in attacks:
        result = (await run_check(make(pg, resources, database=db, data={key: "ok"}))).result
        assert result.status is Status.DOWN
        assert result.message.startswith(f"data {shown(key)}: ")
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
    with pytest.raises(ProbeError) as caught:
        await make(pg, resources, query="SELEC 1", expect="1").check(CheckContext())
    assert caught.value.message == 'query: syntax error at or near "SELEC"'


# --- outages, silent ports, cancellation, descriptors ------------------------------------------


async def test_outage_and_recovery(pg, resources):
    async with TCPProxy(pg["host"], pg["port"]) as proxy:
        prober = make(pg, resources, host=proxy.address, timeout="2s")
        assert (await run_check(prober)).result.status is Status.UP
        proxy.cut()
        down = (await run_check(prober)).result
        assert down.status is Status.DOWN
        assert down.message in {"connection reset by peer", "connection closed by the server"}
        proxy.restore()
        up = (await run_check(prober)).result
        assert up.status is Status.UP, up.message


async def test_port_that_never_speaks(pg, resources):
    async with TCPProxy(pg["host"], pg["port"]) as proxy:
        proxy.stall()
        prober = make(pg, resources, host=proxy.address, timeout="1s")
        started = time.monotonic()
        run = await run_check(prober)
        assert time.monotonic() - started < 2.0
        assert run.straggler is None
        assert run.result.status is Status.DOWN
        assert run.result.message == "timeout after 1s during connect"


async def test_timeout_during_query_closes_the_connection(pg, resources, open_fds):
    prober = make(pg, resources, query="SELECT pg_sleep(2)", timeout="500ms")
    await run_check(make(pg, resources))  # warm imports and caches before counting
    before = open_fds()
    started = time.monotonic()
    run = await run_check(prober)
    assert time.monotonic() - started < 1.5
    assert run.straggler is None
    assert run.result.message == "timeout after 500ms during query"
    assert run.result.details["server_version"]
    assert open_fds() <= before


async def test_no_descriptor_leak(pg, resources, open_fds):
    prober = make(pg, resources, database=pg["database"])
    await run_check(prober)
    before = open_fds()
    for _ in range(200):
        run = await run_check(prober)
        assert run.result.status is Status.UP, run.result.message
    assert open_fds() <= before + 2


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
    with pytest.raises(ValidationError) as caught:
        PostgresSpec(name="pg", driver="postgres", **keys)
    # What the loader shows: the messages (pydantic's own str() would repeat the input).
    messages = " ".join(error["msg"] for error in caught.value.errors())
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


def test_quote_postgres():
    assert quote_postgres("users") == '"users"'
    assert quote_postgres('a"b') == '"a""b"'
    assert quote_postgres('x"; DROP TABLE t; --') == '"x""; DROP TABLE t; --"'
    for bad in ("", "a\x00b"):
        with pytest.raises(ValueError):
            quote_postgres(bad)


def test_values_as_text():
    assert as_text(None) is None
    assert as_text(True) == "true"
    assert as_text(b"ok") == "ok"
    assert as_text(Decimal("1.50")) == "1.50"
    assert as_text(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert as_text(7) == "7"
    assert mismatch("ok", "x" * 300).endswith('…"')
    assert mismatch('a"b', None) == 'expected "a\\"b", got NULL'
