"""InfluxDB probes against real servers, and 2.x answers replayed by a local server.

1.x, for real: the shared InfluxDB (127.0.0.1:8086, PROBE_TEST_INFLUXDB) runs without
authentication; wrong passwords and missing privileges are tried on a private `influxd` started
here with `[http] auth-enabled = true` and an admin user created first
(tests/support/daemons.py). Outages go through a TCP proxy the test controls.

2.x, replayed: Debian's `influxdb` package is InfluxDB 1.x (no Flux, no /api/v2 endpoints), and
nothing may be downloaded at test time, so the Flux query path, `/health`, token
authentication and the bucket check are tested against a local aiohttp server that replays
InfluxDB 2.x answers (status, headers, body: `/ping` 204 with `X-Influxdb-Version: 2.7.10`,
`/health` JSON, annotated CSV from `/api/v2/query`, JSON errors) from
tests/probers/recorded/influxdb2.json. The client under test is the real influxdb-client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web

from probe.core.result import Result, Status
from probe.core.scheduler import run_check
from probe.probers._sql import MAX_RESULT_ROWS
from probe.probers.influxdb import InfluxDBProber, InfluxDBSpec
from tests.support import probers as scenarios
from tests.support import sql
from tests.support.daemons import PrivateInfluxDB
from tests.support.probers import HTTPService, Kind, http_service

ADMIN_PASSWORD = "admin-secret-51ab"
READER_PASSWORD = "reader-secret-90fe"
WRONG_PASSWORD = "wrong-secret-c3d2"
TOKEN = "token-secret-e8a1-AbCdEf=="
RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "recorded" / "influxdb2.json").read_text()
)


INFLUXDB = Kind(
    InfluxDBProber, InfluxDBSpec, {"name": "influx", "driver": "influxdb", "timeout": "5s"}
)
make, check, failure = INFLUXDB.make, INFLUXDB.check, INFLUXDB.failure


@pytest.fixture(scope="module")
def influx() -> HTTPService:
    """The shared InfluxDB 1.x (PROBE_TEST_INFLUXDB)."""
    return http_service("influxdb")


@pytest.fixture(scope="module")
def shared_database(influx: HTTPService) -> Iterator[str]:
    """A database of this test run on the shared server with one point, dropped at the end."""
    name = f"probe_test_{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=influx.url, trust_env=False, timeout=10) as client:
        client.post("/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
        line = 'service,host=web-1 state="ok",load=0.5'
        client.post("/write", params={"db": name}, content=line).raise_for_status()
        yield name
        client.post("/query", data={"q": f'DROP DATABASE "{name}"'})


@pytest.fixture(scope="module")
def rows_database(influx: HTTPService) -> Iterator[str]:
    """A database of this test run for conditions: `answer` (one point), `service` (a point per
    host, one second apart) and `tick` (1,200 points, n = 1..1200), dropped at the end."""
    name = f"probe_rows_{uuid.uuid4().hex[:12]}"
    second = 1_000_000_000
    lines = [
        'answer value=42i,name="bob" 1',
        f'service,host=web-1 state="ok",load=0.5 {1 * second}',
        f'service,host=web-2 state="degraded",load=1.5 {2 * second}',
        f'service,host=web-3 state="ok",load=2.5 {3 * second}',
        *(f"tick n={n}i {n * second}" for n in range(1, 1201)),
    ]
    with httpx.Client(base_url=influx.url, trust_env=False, timeout=10) as client:
        client.post("/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
        client.post("/write", params={"db": name}, content="\n".join(lines)).raise_for_status()
        yield name
        client.post("/query", data={"q": f'DROP DATABASE "{name}"'})


@pytest.fixture(scope="module")
def auth_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInfluxDB]:
    """A private influxd with auth enabled: `admin`, and `reader` with READ on `probe`."""
    server = PrivateInfluxDB(
        tmp_path_factory.mktemp("influxd-auth"),
        admin=("admin", ADMIN_PASSWORD),
        users={"reader": READER_PASSWORD},
        databases=("probe",),
    )
    with server:
        server.write("probe", 'service,host=web-1 state="ok"')
        server.query('CREATE DATABASE "other"')
        yield server


# --- InfluxDB 2.x, replayed -----------------------------------------------------------------


@dataclass
class Replay:
    url: str
    health: str = "health_pass"
    seen: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)


def recorded(name: str) -> web.Response:
    answer = RECORDED[name]
    return web.Response(
        status=answer["status"], headers=answer["headers"], body=answer["body"].encode()
    )


def replay_app(replay: Replay) -> web.Application:
    """Answers as InfluxDB 2.7 does: the query text picks which recorded answer comes back."""

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Token {TOKEN}"

    async def seen(request: web.Request) -> str:
        body = (await request.read()).decode()
        replay.seen.append((request.method, request.path_qs, dict(request.headers), body))
        return body

    async def ping(request: web.Request) -> web.Response:
        await seen(request)
        return recorded("ping")

    async def health(request: web.Request) -> web.Response:
        await seen(request)
        return recorded(replay.health)

    async def query(request: web.Request) -> web.Response:
        body = json.loads(await seen(request))
        if not authorised(request):
            return recorded("unauthorized")
        if request.query.get("org") == "nope":
            return recorded("org_not_found")
        flux = body["query"]
        for marker, name in (
            ('bucket: "nope"', "query_bucket_not_found"),
            ("syntax", "query_compile_error"),
            ("empty", "query_empty"),
            ("number", "query_number"),
            ("inband", "query_inband_error"),
        ):
            if marker in flux:
                return recorded(name)
        return recorded("query_value")

    async def buckets(request: web.Request) -> web.Response:
        await seen(request)
        if not authorised(request):
            return recorded("unauthorized")
        if request.query.get("org") == "nope":
            return recorded("org_not_found")
        name = request.query.get("name")
        return recorded("buckets_one" if name in (None, "probe") else "buckets_none")

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/health", health)
    app.router.add_post("/api/v2/query", query)
    app.router.add_get("/api/v2/buckets", buckets)
    return app


@pytest.fixture
async def influx2(web_server) -> Replay:
    replay = Replay(url="")
    replay.url = await web_server(replay_app(replay))
    return replay


async def test_v2_ping_and_health(influx2, resources):
    outcome = await check(resources, dsn=influx2.url)
    assert outcome.ok, outcome.message
    assert outcome.message == "InfluxDB 2.7.10 ready"
    assert outcome.details["version"] == "2.7.10"
    assert outcome.details["health"] == "pass"
    assert [(m, p) for m, p, _, _ in influx2.seen] == [("GET", "/ping"), ("GET", "/health")]


async def test_v2_health_fail_is_down(influx2, resources):
    influx2.health = "health_fail"
    outcome = await check(resources, dsn=influx2.url)
    assert not outcome.ok
    assert outcome.message == 'health "fail": the storage engine is not ready'


async def test_v2_flux_query_pass(influx2, resources):
    flux = 'from(bucket: "probe") |> range(start: -1h) |> last()'
    outcome = await check(
        resources, dsn=influx2.url, token=TOKEN, org="acme", query=flux, expect="ok"
    )
    assert outcome.ok, outcome.message
    assert outcome.message == 'InfluxDB 2.7.10: query returned "ok"'
    assert outcome.details["value"] == "ok"
    method, path, headers, body = influx2.seen[-1]
    assert (method, path) == ("POST", "/api/v2/query?org=acme")
    assert headers["Authorization"] == f"Token {TOKEN}"
    assert json.loads(body)["query"] == flux


async def test_v2_flux_query_mismatch(influx2, resources):
    outcome = await check(
        resources, dsn=influx2.url, token=TOKEN, org="acme", query="from(...)", expect="degraded"
    )
    assert not outcome.ok
    assert outcome.message == 'expected "degraded", got "ok"'


async def test_v2_flux_number_and_no_rows(influx2, resources):
    keys = {"dsn": influx2.url, "token": TOKEN, "org": "acme"}
    assert (await check(resources, **keys, query="number", expect="42.5")).ok
    outcome = await check(resources, **keys, query="empty", expect="ok")
    assert outcome.message == 'expected "ok", got nothing'
    # Without `expect`, a query that runs is enough.
    assert (await check(resources, **keys, query="empty")).ok


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"token": "not-the-token"}, "authentication failed: the token was rejected"),
        ({}, "authentication required: set username and password (1.x) or token (2.x)"),
        (
            {"token": TOKEN, "query": "syntax error"},
            "query failed: compilation failed: error at @1:1-1:5: undefined identifier nope",
        ),
        ({"token": TOKEN, "query": 'from(bucket: "nope")'}, 'bucket "nope" does not exist'),
        (
            {"token": TOKEN, "query": "inband"},
            "query failed: runtime error @1:1-1:45: schema collision: cannot group string and"
            " float types together",
        ),
        ({"token": TOKEN, "org": "nope"}, 'organization "nope" does not exist'),
    ],
)
async def test_v2_query_failures(influx2, resources, keys, message):
    keys.setdefault("query", "from(...)")
    keys.setdefault("org", "acme")
    prober = make(resources, dsn=influx2.url, **keys)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == message
    scenarios.assert_no_secret(result, prober, TOKEN)


async def test_v2_token_and_bucket_without_a_query(influx2, resources):
    assert (await check(resources, dsn=influx2.url, token=TOKEN, org="acme")).ok
    assert influx2.seen[-1][1] == "/api/v2/buckets?limit=1&org=acme"
    assert (await check(resources, dsn=influx2.url, token=TOKEN, database="probe")).ok
    error = await failure(resources, dsn=influx2.url, token=TOKEN, database="nope")
    assert error.message == 'bucket "nope" does not exist'
    error = await failure(resources, dsn=influx2.url, token="wrong")
    assert error.message == "authentication failed: the token was rejected"


async def test_v2_over_tls(web_server, resources, tmp_path, server_ssl_context):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = server_ssl_context(ca.issue_cert("127.0.0.1"))
    url = await web_server(replay_app(Replay(url="")), ssl_context=context)
    address = url.removeprefix("https://")
    outcome = await check(resources, host=address, ca=ca_file)
    assert outcome.ok, outcome.message
    assert (await check(resources, dsn=url, insecure=True)).ok
    error = await failure(resources, dsn=url)
    assert error.message == "TLS: certificate signed by an unknown authority"


# --- InfluxDB 1.x, the shared server --------------------------------------------------------


async def test_healthy_1x_with_version(influx, resources):
    outcome = await check(resources, host=influx.address)
    version = scenarios.version_of(outcome, "1.")
    assert outcome.message == f"InfluxDB {version} ready"
    assert "health" not in outcome.details  # 1.x has no /health before 1.8: not asked


async def test_influxql_pass(influx, shared_database, resources):
    outcome = await check(
        resources,
        host=influx.address,
        database=shared_database,
        influxql='SELECT last("state") FROM "service"',
        expect="ok",
    )
    assert outcome.ok, outcome.message
    assert outcome.details["value"] == "ok"


async def test_influxql_mismatch_and_numbers(influx, shared_database, resources):
    keys = {"host": influx.address, "database": shared_database}
    outcome = await check(
        resources, **keys, influxql='SELECT last("state") FROM "service"', expect="degraded"
    )
    assert not outcome.ok
    assert outcome.message == 'expected "degraded", got "ok"'
    assert (
        await check(resources, **keys, influxql='SELECT "load" FROM "service"', expect="0.5")
    ).ok


async def test_influxql_no_rows(influx, shared_database, resources):
    outcome = await check(
        resources,
        host=influx.address,
        database=shared_database,
        influxql='SELECT * FROM "nothing_here"',
        expect="x",
    )
    assert outcome.message == 'expected "x", got nothing'


async def test_unknown_database(influx, resources):
    name = f"nope_{uuid.uuid4().hex[:8]}"
    error = await failure(
        resources, host=influx.address, database=name, influxql='SELECT * FROM "m"'
    )
    assert error.message == f'database "{name}" does not exist'
    # Without a query, the database is looked up with SHOW DATABASES.
    error = await failure(resources, host=influx.address, database=name)
    assert error.message == f'database "{name}" does not exist'


async def test_existing_database_without_query(influx, shared_database, resources):
    assert (await check(resources, host=influx.address, database=shared_database)).ok


async def test_influxql_syntax_error(influx, resources):
    error = await failure(resources, host=influx.address, influxql="SELEC 1")
    assert error.message.startswith("query failed: error parsing query: found SELEC")


async def test_flux_on_1x_says_why(influx, resources):
    error = await failure(resources, host=influx.address, query='from(bucket: "x")')
    assert error.message == (
        "no Flux query API here (404): Flux needs InfluxDB 2.x, or 1.8+ with flux-enabled"
    )


# --- conditions: [RESULT], [ROWS], [IP] (judged by the runner, through run_check) --------------


async def judged(resources, **keys) -> Result:
    return (await run_check(make(resources, **keys))).result


async def test_influxql_conditions(influx, rows_database, resources):
    keys = {"host": influx.address, "database": rows_database}
    query = 'SELECT "value", "name" FROM "answer"'
    conditions = ["[RESULT] == 42", "[RESULT][0].name == bob", "[ROWS] == 1"]
    result = await judged(resources, **keys, influxql=query, conditions=conditions)
    assert result.status is Status.UP, result.message
    assert "failed_conditions" not in result.details
    facts = await sql.facts_of(make(resources, **keys, influxql=query, conditions=conditions))
    # The column `expect` reads first (not `time`), so that [RESULT] alone is that value.
    assert facts["RESULT"] == [
        {"value": 42, "time": "1970-01-01T00:00:00.000000001Z", "name": "bob"}
    ]
    assert list(facts["RESULT"][0]) == ["value", "time", "name"]

    result = await judged(resources, **keys, influxql=query, conditions=["[RESULT] > 100"])
    assert result.status is Status.DOWN
    assert result.message == "condition failed: [RESULT] (42) > 100"


async def test_influxql_rows_of_every_series_with_their_tags(influx, rows_database, resources):
    keys = {"host": influx.address, "database": rows_database}
    query = 'SELECT "state", "load" FROM "service" GROUP BY "host"'
    conditions = [
        "[ROWS] == 3",
        "[RESULT] == ok",
        "[RESULT][1].state == degraded",
        "[RESULT][1].host == web-2",
        "[RESULT][2].load == 2.5",
    ]
    result = await judged(resources, **keys, influxql=query, conditions=conditions)
    assert result.status is Status.UP, result.message
    # `expect` still judges the first value alone.
    result = await judged(
        resources, **keys, influxql=query, expect="degraded", conditions=["[ROWS] == 3"]
    )
    assert result.status is Status.DOWN
    assert result.message == 'expected "degraded", got "ok"'


async def test_influxql_result_keeps_the_first_rows_and_rows_counts_them_all(
    influx, rows_database, resources
):
    prober = make(
        resources,
        host=influx.address,
        database=rows_database,
        influxql='SELECT "n" FROM "tick"',
        conditions=["[ROWS] == 1200"],
    )
    assert (await run_check(prober)).result.status is Status.UP
    facts = await sql.facts_of(prober)
    assert len(facts["RESULT"]) == MAX_RESULT_ROWS
    assert facts["RESULT"][-1] == {"n": 1000, "time": "1970-01-01T00:16:40Z"}
    assert facts["ROWS"] == 1200  # the whole JSON answer is read: the true count


async def test_influxql_no_rows_counted(influx, rows_database, resources):
    keys = {"host": influx.address, "database": rows_database}
    result = await judged(
        resources, **keys, influxql='SELECT * FROM "nothing_here"', conditions=["[ROWS] == 0"]
    )
    assert result.status is Status.UP, result.message


async def test_v2_flux_conditions(influx2, resources):
    keys = {"dsn": influx2.url, "token": TOKEN, "org": "acme", "query": "from(...)"}
    conditions = [
        "[RESULT] == ok",
        "[RESULT][1]._value == degraded",
        "[RESULT][0].host == web-1",
        "[ROWS] == 2",
    ]
    result = await judged(resources, **keys, conditions=conditions)
    assert result.status is Status.UP, result.message
    facts = await sql.facts_of(make(resources, **keys, conditions=conditions))
    assert facts["RESULT"][0] == {
        "_value": "ok",
        "result": "_result",
        "table": 0,
        "_start": "2024-05-14T08:00:00+00:00",
        "_stop": "2024-05-14T09:00:00+00:00",
        "_time": "2024-05-14T08:59:50+00:00",
        "_field": "state",
        "_measurement": "service",
        "host": "web-1",
    }
    assert next(iter(facts["RESULT"][0])) == "_value"  # what `expect` and [RESULT] read
    number = await judged(resources, **{**keys, "query": "number"}, conditions=["[RESULT] > 100"])
    assert number.status is Status.DOWN
    assert number.message == "condition failed: [RESULT] (42.5) > 100"
    empty = await judged(resources, **{**keys, "query": "empty"}, conditions=["[ROWS] == 0"])
    assert empty.status is Status.UP, empty.message


async def test_flux_reads_its_first_record_only_without_row_conditions(influx2, resources):
    keys = {"dsn": influx2.url, "token": TOKEN, "org": "acme", "query": "from(...)"}
    facts = await sql.facts_of(make(resources, **keys, conditions=["[RESPONSE_TIME] < 1m"]))
    assert "RESULT" not in facts
    assert "ROWS" not in facts


async def test_ip_condition(influx, influx2, resources):
    host = influx.address.rsplit(":", 1)[0]
    result = await judged(resources, host=influx.address, conditions=[f"[IP] == {host}"])
    assert result.status is Status.UP, result.message
    keys = {"dsn": influx2.url, "token": TOKEN, "org": "acme", "query": "from(...)"}
    assert (await sql.facts_of(make(resources, **keys)))["IP"] == "127.0.0.1"


def test_placeholders_checked_at_load(tmp_path):
    sql.assert_placeholders_checked_at_load(tmp_path, "influxdb", "127.0.0.1:8086")


# --- authentication (private influxd with auth enabled) -------------------------------------


async def test_right_password(auth_influx, resources):
    keys = {"host": auth_influx.address, "username": "reader", "password": READER_PASSWORD}
    assert (await check(resources, **keys)).ok
    outcome = await check(
        resources, **keys, database="probe", influxql='SELECT last("state") FROM "service"'
    )
    assert outcome.ok, outcome.message
    assert outcome.details["value"] == "ok"


async def test_wrong_password_is_an_authentication_failure(auth_influx, resources):
    prober = make(resources, host=auth_influx.address, username="reader", password=WRONG_PASSWORD)
    await scenarios.assert_authentication_failure(prober, "reader", WRONG_PASSWORD, READER_PASSWORD)


async def test_credentials_in_the_dsn(auth_influx, resources):
    await scenarios.assert_credentials_in_the_dsn(
        partial(make, resources), auth_influx.address, "reader", READER_PASSWORD, WRONG_PASSWORD
    )


async def test_no_credentials_on_an_auth_server(auth_influx, resources):
    # /ping needs none; any query does.
    assert (await check(resources, host=auth_influx.address)).ok
    error = await failure(resources, host=auth_influx.address, influxql="SHOW DATABASES")
    assert error.message == (
        "authentication required: set username and password (1.x) or token (2.x)"
    )


async def test_not_authorised_on_another_database(auth_influx, resources):
    error = await failure(
        resources,
        host=auth_influx.address,
        username="reader",
        password=READER_PASSWORD,
        database="other",
        influxql='SELECT * FROM "service"',
    )
    assert error.message.startswith("not authorised: error authorizing query: reader")


# --- outages, silence, leaks ----------------------------------------------------------------


async def test_refused(closed_port, resources):
    error = await failure(resources, host=f"127.0.0.1:{closed_port}")
    assert error.message == "connection refused"


async def test_outage_and_recovery_through_a_proxy(influx, resources):
    cut = {"connection reset by peer", "server closed the connection during ping"}
    make_it = partial(make, resources, influxql="SHOW DATABASES")
    await scenarios.assert_outage_and_recovery(influx.address, make_it, cut)


async def test_silent_port_times_out_during_ping(influx, resources, open_fds):
    await run_check(make(resources, host=influx.address))  # shared objects exist now
    make_it = partial(make, resources)
    await scenarios.assert_silent_port_times_out(influx.address, make_it, "ping", open_fds=open_fds)


async def test_no_descriptor_leak_after_200_checks(influx, shared_database, resources, open_fds):
    prober = make(
        resources,
        host=influx.address,
        database=shared_database,
        influxql='SELECT last("state") FROM "service"',
        expect="ok",
    )
    # The first check builds the shared objects.
    await scenarios.assert_no_descriptor_leak(prober, open_fds, pause=0.05)


async def test_no_descriptor_leak_after_200_failed_checks(closed_port, resources, open_fds):
    prober = make(resources, host=f"127.0.0.1:{closed_port}")
    refused = {"status": Status.DOWN, "message": "connection refused"}
    await scenarios.assert_no_descriptor_leak(prober, open_fds, **refused)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"host": "127.0.0.1:8086", "data": {"k": "v"}}, "the influxdb driver takes no data"),
        ({"host": "127.0.0.1:8086", "query": "q", "influxql": "q"}, "not both"),
        ({"host": "127.0.0.1:8086", "expect": "x"}, "expect needs a query or influxql"),
        ({"host": "127.0.0.1:8086", "influxql": "  "}, "influxql must not be empty"),
        ({"host": "127.0.0.1:8086", "password": "pw"}, "password needs a username"),
        (
            {"host": "127.0.0.1:8086", "username": "u", "token": "t"},
            "set token (2.x) or username/password (1.x), not both",
        ),
        ({"dsn": "postgres://127.0.0.1:8086"}, "dsn must start with http://, https://"),
        ({"dsn": "http://u:pw@127.0.0.1:8086?token=pw"}, "not in the dsn"),
        ({"dsn": "http://127.0.0.1:8086", "insecure": True}, "need an https:// dsn"),
        ({"dsn": "http://u:pw@127.0.0.1:8086", "username": "u"}, "in the dsn or in username"),
        ({"host": "127.0.0.1:8086", "token": ["x"]}, "valid string"),
        ({}, "host is required"),
    ],
)
def test_config_errors(keys, message):
    scenarios.assert_config_error(InfluxDBSpec, keys, message, name="influx", driver="influxdb")


def test_urls_and_endpoint():
    spec = InfluxDBSpec(name="i", driver="influxdb", host="[::1]:8086", token="t0ken")
    assert spec.base_url() == "http://[::1]:8086"
    assert spec.endpoint() == "[::1]:8086"
    assert "t0ken" not in repr(spec)
    spec = InfluxDBSpec(name="i", driver="influxdb", dsn="https://u:p%40ss@influx.lan/x/")
    assert spec.base_url() == "https://influx.lan/x"
    assert spec.endpoint() == "https://influx.lan/x/"
    assert spec.credentials() == ("u", "p@ss")
