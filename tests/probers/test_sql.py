"""What the mysql and postgres probers do alike, each test run against both real servers.

What only one of them does (its data types, its errors' wording, its handshake, its
account set-up) stays in test_mysql.py and test_postgres.py. Outages and silent ports are
made with a TCPProxy, never by stopping the shared servers.
"""

from __future__ import annotations

from functools import partial

import pytest

from probe.probers._sql import quote_mysql, quote_postgres
from tests.support import probers as scenarios
from tests.support.sql import SQL_CUT, SQL_KINDS, SQLKind, assert_query_times_out


@pytest.fixture(params=sorted(SQL_KINDS), scope="module")
def kind(request: pytest.FixtureRequest) -> SQLKind:
    return SQL_KINDS[request.param]


@pytest.fixture(scope="module")
def server(kind: SQLKind) -> dict[str, object]:
    """host, port, user, password and database of the kind's shared server."""
    return kind.server()


@pytest.fixture
def make(kind, server, resources):
    """`make(**keys)`: a prober of the kind for its shared server, unless keys say otherwise."""
    return partial(kind.make, server, resources)


async def test_unknown_database(make):
    error = await scenarios.failure(make(database="no_such_db_4711"))
    assert error.message == 'database "no_such_db_4711" does not exist'


async def test_closed_port(kind, resources, closed_port):
    keys = {"host": f"127.0.0.1:{closed_port}", "username": "u", "timeout": "2s"}
    spec = kind.spec(name=kind.name, driver=kind.driver, **keys)
    error = await scenarios.failure(kind.prober(spec, resources))
    assert error.message == "connection refused"


async def test_unusable_ca_file_is_a_check_failure(make, bad_ca_file):
    prober = make(ca=str(bad_ca_file))  # built on first use, not at start-up
    assert (await scenarios.failure(prober)).message.startswith("TLS: ")


async def test_outage_and_recovery(server, make):
    await scenarios.assert_outage_and_recovery(server["address"], make, SQL_CUT)


async def test_port_that_never_speaks(server, make):
    await scenarios.assert_silent_port_times_out(server["address"], make, "connect")


async def test_timeout_during_query_closes_the_connection(kind, make, open_fds):
    await assert_query_times_out(make, kind.slow_query, open_fds)


async def test_no_descriptor_leak(server, make, open_fds):
    await scenarios.assert_no_descriptor_leak(make(database=server["database"]), open_fds)


@pytest.mark.parametrize(
    ("quote", "cases"),
    [
        (
            quote_mysql,
            {
                "users": "`users`",
                "a`b": "`a``b`",
                "x`; DROP TABLE t; --": "`x``; DROP TABLE t; --`",
            },
        ),
        (
            quote_postgres,
            {
                "users": '"users"',
                'a"b': '"a""b"',
                'x"; DROP TABLE t; --': '"x""; DROP TABLE t; --"',
            },
        ),
    ],
    ids=["mysql", "postgres"],
)
def test_quote(quote, cases):
    for name, quoted in cases.items():
        assert quote(name) == quoted
    for bad in ("", "a\x00b"):
        with pytest.raises(ValueError):
            quote(bad)
