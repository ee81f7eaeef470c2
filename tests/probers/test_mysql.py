"""The mysql prober against the real MariaDB server (DESIGN.md section 6).

The shared server lets root in without a password, so a wrong password is tested with a user of
our own, `probe_auth`, created (idempotently) by a fixture as services.md says. Outages and
silent ports are made with a TCPProxy, never by stopping the shared server; the handshake's
later phases (TLS, auth) are reached with a raw server that replays the real server's greeting
and then falls silent. Each test's tables live in the `test` database and are dropped after.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from urllib.parse import urlsplit

import aiomysql
import pytest
from pydantic import ValidationError
from pymysql.constants import CLIENT

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers import CLIENT_DRIVERS, load_prober_class
from probe.probers._sql import quote_mysql, shown
from probe.probers.base import SharedResources
from probe.probers.mysql import MySQLProber, MySQLSpec
from tests.support.proxy import TCPProxy
from tests.support.services import require_service

AUTH_USER = "probe_auth"
AUTH_PASSWORD = "probe-auth-secret"
WRONG_PASSWORD = "wrong-Secret-4711"


@pytest.fixture(scope="module")
def my() -> dict[str, object]:
    """host, port, user and database of the shared server (PROBE_TEST_MYSQL)."""
    url = require_service("mysql")
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "database": parts.path.lstrip("/") or "test",
        "url": url,
    }


@pytest.fixture
async def resources():
    shared = SharedResources()
    yield shared
    await shared.aclose()


def address(my) -> str:
    return f"{my['host']}:{my['port']}"


def make(my, resources, **keys) -> MySQLProber:
    keys.setdefault("timeout", "3s")
    if "dsn" not in keys:
        keys.setdefault("host", address(my))
        keys.setdefault("username", my["user"])
        if my["password"]:
            keys.setdefault("password", my["password"])
    return MySQLProber(MySQLSpec(name="my", driver="mysql", **keys), resources)


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


def assert_no_secret(result_or_error, prober: MySQLProber, *secrets: str) -> None:
    texts = [str(result_or_error.message), repr(result_or_error.details), prober.endpoint]
    for secret in secrets:
        for text in texts:
            assert secret not in text


# --- registry and healthy -------------------------------------------------------------------


def test_registry_points_at_the_prober():
    assert load_prober_class(CLIENT_DRIVERS["mysql"]) is MySQLProber
    assert MySQLProber.spec_type is MySQLSpec
    assert MySQLSpec.kind == "mysql"


async def test_healthy(my, resources):
    prober = make(my, resources, database=my["database"])
    ctx = CheckContext()
    outcome = await prober.check(ctx)
    assert outcome.ok, outcome.message
    version = outcome.details["server_version"]
    assert version[0].isdigit()  # MariaDB's "5.5.5-" prefix is gone
    product = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    short = version.split("-")[0]
    assert outcome.message == f'{product} {short}, database "{my["database"]}"'
    assert ctx.phase == "close"
    assert prober.endpoint == address(my)


async def test_no_database_needed(my, resources):
    outcome = await make(my, resources).check(CheckContext())
    assert outcome.ok, outcome.message
    assert "database" not in outcome.message


async def test_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{AUTH_PASSWORD}@{address(my)}/{my['database']}"
    prober = make(my, resources, dsn=dsn)
    assert prober.endpoint == f"mysql://{address(my)}/{my['database']}"
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert_no_secret(outcome, prober, AUTH_PASSWORD)


# --- failures to connect ----------------------------------------------------------------------


async def test_wrong_password(my, resources, auth_user):
    prober = make(my, resources, username=auth_user, password=WRONG_PASSWORD)
    run = await run_check(prober)
    assert run.result.status is Status.DOWN
    assert run.result.message == f'authentication failed for user "{auth_user}"'
    assert_no_secret(run.result, prober, WRONG_PASSWORD)


async def test_wrong_password_in_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{WRONG_PASSWORD}@{address(my)}/{my['database']}"
    prober = make(my, resources, dsn=dsn)
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    assert caught.value.message == f'authentication failed for user "{auth_user}"'
    assert_no_secret(caught.value, prober, WRONG_PASSWORD)


async def test_password_key_wins_over_the_dsn(my, resources, auth_user):
    dsn = f"mysql://{auth_user}:{WRONG_PASSWORD}@{address(my)}/{my['database']}"
    prober = make(my, resources, dsn=dsn, password=AUTH_PASSWORD)
    assert (await prober.check(CheckContext())).ok


async def test_unknown_database(my, resources):
    with pytest.raises(ProbeError) as caught:
        await make(my, resources, database="no_such_db_4711").check(CheckContext())
    assert caught.value.message == 'database "no_such_db_4711" does not exist'


async def test_database_not_granted(my, resources, auth_user):
    prober = make(my, resources, username=auth_user, password=AUTH_PASSWORD, database="mysql")
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    assert caught.value.message.startswith(f"access denied for user '{auth_user}'@")
    assert caught.value.message.endswith("to database 'mysql'")


async def test_closed_port(resources, closed_port):
    spec = MySQLSpec(
        name="my", driver="mysql", host=f"127.0.0.1:{closed_port}", username="u", timeout="2s"
    )
    with pytest.raises(ProbeError) as caught:
        await MySQLProber(spec, resources).check(CheckContext())
    assert caught.value.message == "connection refused"


async def test_tls_configured(my, resources):
    rows = await execute(my, "SHOW VARIABLES LIKE 'have_ssl'")
    prober = make(my, resources, insecure=True)
    if rows and rows[0][1] == "YES":
        assert (await prober.check(CheckContext())).ok
    else:
        with pytest.raises(ProbeError) as caught:
            await prober.check(CheckContext())
        assert caught.value.message == "TLS: the server does not support TLS"


async def test_unusable_ca_file_is_a_check_failure(my, resources, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    prober = make(my, resources, ca=str(ca))  # built on first use, not at start-up
    with pytest.raises(ProbeError) as caught:
        await prober.check(CheckContext())
    assert caught.value.message.startswith("TLS: ")


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
    key = f"{my['database']}:{table}:state:id:2"
    outcome = await make(my, resources, data={key: "ok"}).check(CheckContext())
    assert not outcome.ok
    assert outcome.message == f'data "{key}": expected "ok", got "degraded"'
    assert outcome.details["server_version"]


async def test_data_null_and_no_rows(my, resources, table):
    db = my["database"]
    null = await make(my, resources, data={f"{db}:{table}:state:id:3": "ok"}).check(CheckContext())
    assert null.message.endswith('expected "ok", got NULL')
    none = await make(my, resources, data={f"{db}:{table}:state:id:99": "ok"}).check(CheckContext())
    assert none.message.endswith('expected "ok", got no rows')


async def test_data_errors_say_which_key(my, resources, table):
    db = my["database"]
    cases = {
        f"{db}:no_such_table_4711:state:id:1": f'table "{db}.no_such_table_4711" does not exist',
        f"{db}:{table}:nope:id:1": "unknown column 'nope' in ",
    }
    for key, expected in cases.items():
        with pytest.raises(ProbeError) as caught:
            await make(my, resources, data={key: "ok"}).check(CheckContext())
        assert caught.value.message.startswith(f'data "{key}": {expected}')


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
    for key in attacks:
        result = (await run_check(make(my, resources, data={key: "ok"}))).result
        assert result.status is Status.DOWN
        assert result.message.startswith(f"data {shown(key)}: ")
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
    with pytest.raises(ProbeError) as caught:
        await make(my, resources, query="SELEC 1", expect="1").check(CheckContext())
    assert caught.value.message == "query: SQL syntax error near 'SELEC 1' at line 1"


# --- outages, silent ports, handshake phases, descriptors ---------------------------------------


async def test_outage_and_recovery(my, resources):
    async with TCPProxy(my["host"], my["port"]) as proxy:
        prober = make(my, resources, host=proxy.address, timeout="2s")
        assert (await run_check(prober)).result.status is Status.UP
        proxy.cut()
        down = (await run_check(prober)).result
        assert down.status is Status.DOWN
        assert down.message in {"connection reset by peer", "connection closed by the server"}
        proxy.restore()
        up = (await run_check(prober)).result
        assert up.status is Status.UP, up.message


async def test_port_that_never_speaks(my, resources):
    async with TCPProxy(my["host"], my["port"]) as proxy:
        proxy.stall()
        prober = make(my, resources, host=proxy.address, timeout="1s")
        started = time.monotonic()
        run = await run_check(prober)
        assert time.monotonic() - started < 2.0
        assert run.straggler is None
        assert run.result.message == "timeout after 1s during connect"


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
    started = time.monotonic()
    run = await run_check(MySQLProber(spec, resources))
    assert time.monotonic() - started < 1.5
    assert run.straggler is None
    assert run.result.message == f"timeout after 500ms during {phase}"
    # The raw server is in this process: its side closes once it reads the prober's EOF.
    for _ in range(50):
        if open_fds() <= before:
            break
        await asyncio.sleep(0.02)
    assert open_fds() <= before


async def test_timeout_during_query_closes_the_connection(my, resources, open_fds):
    prober = make(my, resources, query="SELECT SLEEP(2)", timeout="500ms")
    await run_check(make(my, resources))  # warm imports and caches before counting
    before = open_fds()
    started = time.monotonic()
    run = await run_check(prober)
    assert time.monotonic() - started < 1.5
    assert run.straggler is None
    assert run.result.message == "timeout after 500ms during query"
    assert run.result.details["server_version"]
    assert open_fds() <= before


async def test_no_descriptor_leak(my, resources, open_fds):
    prober = make(my, resources, database=my["database"])
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
    with pytest.raises(ValidationError) as caught:
        MySQLSpec(name="my", driver="mysql", **keys)
    # What the loader shows: the messages (pydantic's own str() would repeat the input).
    messages = " ".join(error["msg"] for error in caught.value.errors())
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


def test_quote_mysql():
    assert quote_mysql("users") == "`users`"
    assert quote_mysql("a`b") == "`a``b`"
    assert quote_mysql("x`; DROP TABLE t; --") == "`x``; DROP TABLE t; --`"
    for bad in ("", "a\x00b"):
        with pytest.raises(ValueError):
            quote_mysql(bad)
