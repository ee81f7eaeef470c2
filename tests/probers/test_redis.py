"""The redis prober against real servers.

The shared Redis (PROBE_TEST_REDIS, default 127.0.0.1:6379) has no password on its default
user, so authentication failures use an ACL user made for the test (`probe_auth`, deleted at
the end; the default user is never touched). What needs a server configured otherwise (a
password on the default user, TLS) runs against a private `redis-server` on free loopback
ports, started here and terminated at the end.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import uuid
from collections.abc import Iterator
from functools import partial
from urllib.parse import urlsplit

import pytest
import redis
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError, ProbeError
from probe.probers.redis import RedisProber, RedisSpec
from tests.support import probers as scenarios
from tests.support.probers import Kind
from tests.support.redis_server import PrivateRedis
from tests.support.services import require_service

AUTH_USER = "probe_auth"
AUTH_PASSWORD = "auth-" + secrets.token_hex(8)
PRIVATE_PASSWORD = "private-" + secrets.token_hex(8)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_redis() -> str:
    """host:port of the shared Redis (skips, or fails in CI, when it does not answer)."""
    parts = urlsplit(require_service("redis"))
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="module")
def admin(shared_redis: str) -> Iterator[redis.Redis]:
    host, port = shared_redis.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), socket_timeout=5)
    yield client
    client.close()


@pytest.fixture(scope="module")
def auth_user(admin):
    """An ACL user with a password, so a wrong password really fails (services.md)."""
    admin.execute_command(
        "ACL", "SETUSER", AUTH_USER, "reset", "on", f">{AUTH_PASSWORD}", "~*", "+@all"
    )
    yield AUTH_USER
    admin.execute_command("ACL", "DELUSER", AUTH_USER)


@pytest.fixture(scope="module")
def keys(admin: redis.Redis) -> Iterator[dict[str, str]]:
    """Keys this module owns (a unique prefix), deleted at the end."""
    prefix = f"probe-test:{uuid.uuid4().hex}:"
    names = {"status": prefix + "status", "hash": prefix + "hash", "missing": prefix + "missing"}
    admin.set(names["status"], "ok")
    admin.hset(names["hash"], "field", "value")
    admin.set(prefix + "db3", "three")
    yield names
    admin.delete(names["status"], names["hash"], prefix + "db3")


REDIS = Kind(RedisProber, RedisSpec, {"name": "cache", "driver": "redis", "timeout": "2s"})
make, failure = REDIS.make, REDIS.failure


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of our own: `requirepass` on the default user and a TLS port."""
    with PrivateRedis(tmp_path_factory.mktemp("redis"), password=PRIVATE_PASSWORD) as server:
        yield server


# --- healthy checks ------------------------------------------------------------------------


async def test_healthy_server_is_up_with_its_version(shared_redis, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=shared_redis).check(ctx)
    assert outcome.ok
    version = outcome.details["version"]
    assert version and version[0].isdigit()
    assert outcome.message == f"PONG from redis {version} (db 0)"
    assert outcome.details["peer"] == shared_redis
    assert outcome.details["db"] == 0
    assert ctx.phase == "info"


async def test_dsn_selects_the_database(shared_redis, keys, resources, admin):
    admin.execute_command("SELECT", 0)
    outcome = await make(resources, dsn=f"redis://{shared_redis}/3").check(CheckContext())
    assert outcome.ok
    assert outcome.details["db"] == 3
    assert outcome.message.endswith("(db 3)")
    outcome = await make(resources, host=shared_redis, database="3").check(CheckContext())
    assert outcome.details["db"] == 3


async def test_each_check_opens_a_connection_of_its_own(shared_redis, resources):
    await scenarios.assert_a_connection_per_check(shared_redis, partial(make, resources))


# --- authentication -------------------------------------------------------------------------


async def test_acl_user_with_the_right_password_is_up(shared_redis, auth_user, resources):
    outcome = await make(
        resources, host=shared_redis, username=auth_user, password=AUTH_PASSWORD
    ).check(CheckContext())
    assert outcome.ok
    dsn = f"redis://{auth_user}:{AUTH_PASSWORD}@{shared_redis}/0"
    assert (await make(resources, dsn=dsn).check(CheckContext())).ok


async def test_wrong_password_is_an_authentication_failure(shared_redis, auth_user, resources):
    ctx = CheckContext()
    prober = make(resources, host=shared_redis, username=auth_user, password="wrong-secret")
    with pytest.raises(ProbeError) as caught:
        await prober.check(ctx)
    assert caught.value.message == f'authentication failed for user "{auth_user}"'
    assert ctx.phase == "auth"
    error = await failure(resources, dsn=f"redis://{auth_user}:wrong-secret@{shared_redis}")
    assert error.message == f'authentication failed for user "{auth_user}"'
    assert "wrong-secret" not in repr(error.details)


async def test_unknown_user_is_an_authentication_failure(shared_redis, resources):
    error = await failure(resources, host=shared_redis, username="nobody-here", password="x")
    assert error.message == 'authentication failed for user "nobody-here"'


async def test_password_the_server_does_not_want(shared_redis, resources):
    error = await failure(resources, host=shared_redis, password="needless-secret")
    assert error.message == (
        'authentication failed for user "default" (the server has no password set)'
    )


async def test_default_user_password_on_a_private_server(private_redis, resources):
    up = await make(resources, host=private_redis.plain, password=PRIVATE_PASSWORD).check(
        CheckContext()
    )
    assert up.ok
    error = await failure(resources, host=private_redis.plain, password="wrong-secret")
    assert error.message == 'authentication failed for user "default"'
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=private_redis.plain).check(ctx)
    assert caught.value.message == "authentication required"
    assert ctx.phase == "ping"


async def test_acl_user_without_permission(shared_redis, admin, resources):
    user, password = "probe_noperm", "np-" + secrets.token_hex(6)
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", "+auth")
    try:
        error = await failure(resources, host=shared_redis, username=user, password=password)
    finally:
        admin.execute_command("ACL", "DELUSER", user)
    assert error.message.startswith("permission denied: ")
    assert "ping" in error.message


# --- databases and data ---------------------------------------------------------------------


async def test_database_index_out_of_range(shared_redis, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=shared_redis, database="99").check(ctx)
    assert caught.value.message == "invalid database index 99"
    assert ctx.phase == "select"
    error = await failure(resources, dsn=f"redis://{shared_redis}/12345")
    assert error.message == "invalid database index 12345"


async def test_data_that_matches(shared_redis, keys, resources):
    outcome = await make(resources, host=shared_redis, data={keys["status"]: "ok"}).check(
        CheckContext()
    )
    assert outcome.ok
    assert outcome.message.endswith("; 1 key as expected")
    assert outcome.details["keys_checked"] == 1


async def test_data_mismatch_missing_key_and_wrong_type(shared_redis, keys, resources):
    status, missing, hashed = keys["status"], keys["missing"], keys["hash"]
    outcome = await make(resources, host=shared_redis, data={status: "degraded"}).check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == f'key "{status}": expected "degraded", got "ok"'
    outcome = await make(resources, host=shared_redis, data={missing: "v"}).check(CheckContext())
    assert outcome.message == f'key "{missing}": expected "v", got nothing'
    outcome = await make(resources, host=shared_redis, data={hashed: "v"}).check(CheckContext())
    assert outcome.message == f'key "{hashed}": expected "v", got a value that is not a string'
    outcome = await make(
        resources, host=shared_redis, data={status: "ok", missing: "a", hashed: "b"}
    ).check(CheckContext())
    assert not outcome.ok
    assert outcome.message == f'key "{missing}": expected "a", got nothing (and 1 more)'
    assert outcome.details["mismatches"] == 2


async def test_data_in_another_database(shared_redis, keys, resources):
    key = keys["status"].replace("status", "db3")
    # The key was written in db 0: db 3 does not have it.
    outcome = await make(resources, host=shared_redis, database="3", data={key: "three"}).check(
        CheckContext()
    )
    assert outcome.message == f'key "{key}": expected "three", got nothing'
    assert (await make(resources, host=shared_redis, data={key: "three"}).check(CheckContext())).ok


async def test_long_values_are_cut_in_messages(shared_redis, keys, resources):
    outcome = await make(resources, host=shared_redis, data={keys["status"]: "x" * 500}).check(
        CheckContext()
    )
    assert not outcome.ok
    assert len(outcome.message) < 200
    assert "..." in outcome.message


# --- conditions: [VALUE] (judged by the runner, through run_check) ----------------------------


async def test_value_condition_up_and_down(shared_redis, keys, resources):
    status = keys["status"]
    up = make(
        resources, host=shared_redis, data={status: "ok"}, conditions=[f"[VALUE].{status} == ok"]
    )
    result = (await run_check(up)).result
    assert result.status is Status.UP, result.message
    assert "failed_conditions" not in result.details
    # `data` agrees, the condition does not: down, and the message shows what the key held.
    down = make(
        resources, host=shared_redis, data={status: "ok"}, conditions=[f"[VALUE].{status} == on"]
    )
    result = (await run_check(down)).result
    assert result.status is Status.DOWN
    assert result.message == f"condition failed: [VALUE].{status} (ok) == on"
    assert result.details["failed_conditions"] == [f"[VALUE].{status} (ok) == on"]


async def test_data_comparison_still_applies_with_value_conditions(shared_redis, keys, resources):
    status = keys["status"]
    prober = make(
        resources,
        host=shared_redis,
        data={status: "degraded"},
        conditions=[f"[VALUE].{status} == ok"],
    )
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == f'key "{status}": expected "degraded", got "ok"'
    assert "failed_conditions" not in result.details


async def test_value_holds_the_keys_read_and_not_the_missing_one(shared_redis, keys, resources):
    status, missing, hashed = keys["status"], keys["missing"], keys["hash"]
    data = {status: "ok", missing: "x", hashed: "y"}
    ctx = CheckContext()
    await make(resources, host=shared_redis, data=data).check(ctx)
    # Neither a missing key nor one that holds no string has a value to read.
    assert ctx.facts["VALUE"] == {status: "ok"}
    conditions = [
        f"has([VALUE].{missing}) == false",
        f"has([VALUE].{hashed}) == false",
        f"has([VALUE].{status}) == true",
    ]
    prober = make(resources, host=shared_redis, data=data, conditions=conditions)
    result = (await run_check(prober)).result
    # The conditions hold; `data` still finds the missing key (and the hash) wrong.
    assert "failed_conditions" not in result.details
    assert result.status is Status.DOWN
    assert result.message == f'key "{missing}": expected "x", got nothing (and 1 more)'


async def test_ip_and_connected_conditions(shared_redis, closed_port, resources):
    host = shared_redis.rsplit(":", 1)[0]
    prober = make(resources, host=shared_redis, conditions=[f"[IP] == {host}"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    closed = make(resources, host=f"127.0.0.1:{closed_port}", conditions=["[CONNECTED] == false"])
    result = (await run_check(closed)).result
    assert result.status is Status.UP
    assert result.message == "connection refused, as the conditions expect"


def test_value_key_not_in_data_is_a_config_error(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n"
        "  - name: cache\n"
        "    driver: redis\n"
        "    host: 127.0.0.1:6379\n"
        "    data: {app:mode: active, app:color: blue}\n"
        "    conditions:\n"
        '      - "[VALUE].app:mode == active"\n'
        '      - "has([VALUE].app:mod) == true"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{path}:8:9: client[0].conditions[1]: [VALUE].app:mod reads key"
        ' "app:mod", which is not in data (its keys: "app:mode", "app:color"): a condition'
        " reads only the keys the check reads (at character 5)"
    )


def test_value_conditions_need_data_keys():
    spec = RedisSpec(
        name="c",
        driver="redis",
        host="127.0.0.1:6379",
        conditions=["[VALUE].k == v", "[VALUE] == v", "[BODY] == x", "[RESPONSE_TIME] < 50"],
    )
    problems = spec.condition_problems()
    assert [index for index, _ in problems] == [0, 1, 2]
    assert problems[0][1].startswith('[VALUE].k reads key "k", which is not in data (data names')
    assert problems[1][1].startswith("[VALUE] needs one key")
    assert problems[2][1].startswith("[BODY] is not a placeholder of redis probes")
    ok = RedisSpec(
        name="c",
        driver="redis",
        host="127.0.0.1:6379",
        data={"k": "v"},
        conditions=["[VALUE].k == v"],
    )
    assert ok.condition_problems() == []


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_with_the_right_ca(private_redis, resources):
    ca = str(private_redis.ca_file)
    ctx = CheckContext()
    outcome = await make(resources, host=private_redis.tls, password=PRIVATE_PASSWORD, ca=ca).check(
        ctx
    )
    assert outcome.ok
    dsn = f"rediss://:{PRIVATE_PASSWORD}@{private_redis.tls}/0"
    assert (await make(resources, dsn=dsn, ca=ca).check(CheckContext())).ok
    host_url = f"rediss://{private_redis.tls}"
    assert (
        await make(resources, host=host_url, password=PRIVATE_PASSWORD, ca=ca).check(CheckContext())
    ).ok


async def test_tls_failures(private_redis, resources):
    other = str(private_redis.other_ca_file)
    error = await failure(resources, host=private_redis.tls, ca=other, password=PRIVATE_PASSWORD)
    # Redis sends its CA along with its certificate: a CA the client does not trust.
    assert error.message in {
        "TLS: certificate signed by an unknown authority",
        "TLS: self-signed certificate in the chain",
    }
    port = private_redis.tls.rsplit(":", 1)[1]
    error = await failure(
        resources,
        dsn=f"rediss://:{PRIVATE_PASSWORD}@localhost:{port}",
        ca=str(private_redis.other_ca_file),
    )
    assert error.message.startswith("TLS: ")
    insecure = await make(
        resources, host=private_redis.tls, insecure=True, password=PRIVATE_PASSWORD
    ).check(CheckContext())
    assert insecure.ok


async def test_tls_to_a_plain_port(private_redis, resources):
    # Redis reads the ClientHello as the start of a command and waits for the rest.
    prober = make(
        resources,
        dsn=f"rediss://:{PRIVATE_PASSWORD}@{private_redis.plain}",
        insecure=True,
        timeout="500ms",
    )
    result = (await run_check(prober)).result
    assert result.message == "timeout after 500ms during TLS handshake"


@pytest.mark.slow
async def test_timeout_during_tls_handshake_leaves_no_socket(raw_server, resources, open_fds):
    async def silent(reader, writer):
        await reader.read()

    server = await raw_server(silent)
    prober = make(resources, dsn=f"rediss://{server.address}", insecure=True, timeout="1s")
    prober._tls.get()  # build the SSLContext before counting
    before = open_fds()
    result = (await scenarios.timed_run(prober, within=2.0)).result
    assert result.message == "timeout after 1s during TLS handshake"
    gc.collect()
    await scenarios.settle(open_fds, before)


# --- outages, silence, refusals -------------------------------------------------------------


async def test_outage_and_recovery_through_a_proxy(shared_redis, resources):
    cut = {"connection reset by peer", "the server closed the connection"}
    await scenarios.assert_outage_and_recovery(
        shared_redis, partial(make, resources), cut, timeout="1s"
    )


async def test_port_that_accepts_and_never_speaks(shared_redis, resources):
    silent = scenarios.assert_silent_port_times_out
    result = await silent(shared_redis, partial(make, resources), "ping")
    assert result.details["phase"] == "ping"
    await silent(shared_redis, partial(make, resources, password="pw"), "auth")


async def test_cancelled_check_leaves_no_socket(shared_redis, resources, open_fds):
    async with scenarios.proxy_to(shared_redis) as proxy:
        proxy.stall()
        before = open_fds()
        ctx = CheckContext()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await make(resources, host=proxy.address).check(ctx)
        assert ctx.phase == "ping"
        proxy.restore()
        await scenarios.settle(open_fds, before + 1)  # the proxy may still hold its side


async def test_connection_refused(closed_port, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=f"127.0.0.1:{closed_port}").check(ctx)
    assert caught.value.message == "connection refused"
    assert caught.value.details["peer"] == f"127.0.0.1:{closed_port}"
    assert ctx.phase == "connect"


async def test_not_a_redis_server(raw_server, resources):
    async def http(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await raw_server(http)
    error = await failure(resources, host=server.address)
    assert error.message == "not a Redis server (invalid reply)"


async def test_name_that_does_not_resolve(monkeypatch, resources):
    scenarios.fail_name_resolution(monkeypatch)
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host="cache.invalid:6379").check(ctx)
    assert caught.value.message == "name resolution failed for host cache.invalid"
    assert ctx.phase == "resolve"


async def test_no_descriptor_leaks_after_many_checks(
    shared_redis, auth_user, keys, closed_port, resources, open_fds
):
    good = make(resources, host=shared_redis, data={keys["status"]: "ok"})
    bad_password = make(resources, host=shared_redis, username=auth_user, password="nope")
    refused = make(resources, host=f"127.0.0.1:{closed_port}")
    await scenarios.assert_no_leaks_mixing(open_fds, good, [refused, bad_password], every=10)


# --- secrets --------------------------------------------------------------------------------


async def test_passwords_never_in_endpoint_messages_or_details(shared_redis, auth_user, resources):
    secret = "dsn-secret-" + secrets.token_hex(4)
    in_dsn = make(resources, dsn=f"redis://{auth_user}:{secret}@{shared_redis}/2")
    assert in_dsn.endpoint == f"redis://{shared_redis}/2"
    await scenarios.assert_password_hidden(in_dsn, secret)
    # The shared server has no password on its default user: one given is a failure too.
    keyed = make(resources, host=shared_redis, password="key-secret-1")
    await scenarios.assert_password_hidden(keyed, "key-secret-1")


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1:6379", "query": "KEYS *"}, "the redis driver runs no query"),
        ({"host": "127.0.0.1:6379", "query": "GET a", "expect": "b"}, "runs no query"),
        ({"host": "127.0.0.1:6379", "database": "x"}, 'database: "x" is not a database index'),
        ({"host": "127.0.0.1:6379", "database": "-1"}, "is not a database index"),
        ({"dsn": "redis://127.0.0.1/abc"}, "the path must be a database index"),
        ({"dsn": "redis://127.0.0.1/1", "database": "2"}, "not both"),
        ({"dsn": "redis://u:p@127.0.0.1", "password": "q"}, "not both"),
        ({"dsn": "redis://u@127.0.0.1", "username": "v", "password": "q"}, "not both"),
        ({"dsn": "redis://127.0.0.1/0?ssl_cert_reqs=none"}, "query parameters are not supported"),
        ({"dsn": "redis://127.0.0.1:99999"}, "invalid URI"),
        ({"dsn": "redis:///0"}, "has no host"),
        ({"dsn": "http://127.0.0.1:6379"}, "dsn must start with redis://, rediss://"),
        ({"host": "127.0.0.1:6379", "username": "u"}, "username needs a password"),
        ({"host": "http://127.0.0.1:6379"}, 'unsupported scheme "http://"'),
        ({"host": "127.0.0.1:6379", "data": {"": "x"}}, "a redis key cannot be empty"),
        ({"host": "127.0.0.1"}, "missing port"),
        ({}, "host is required"),
        ({"driver": "mysql", "host": "127.0.0.1:1"}, 'driver "mysql" does not match redis'),
    ],
)
def test_invalid_specs(keys, needle):
    keys.setdefault("driver", "redis")
    with pytest.raises(ValidationError) as caught:
        RedisSpec(name="c", **keys)
    assert needle in str(caught.value)


def test_dsn_error_never_repeats_the_password():
    with pytest.raises(ValidationError) as caught:
        RedisSpec(name="c", driver="redis", dsn="redis://u:hunter2@127.0.0.1/xyz")
    # What the loader shows is each error's message (never the input, which holds the DSN).
    messages = [error["msg"] for error in caught.value.errors()]
    assert messages and "hunter2" not in repr(messages)


@pytest.mark.parametrize(
    ("keys", "target"),
    [
        ({"host": "cache.lan:6380"}, ("cache.lan", 6380, False, None, None, 0)),
        ({"host": "rediss://cache.lan:6380"}, ("cache.lan", 6380, True, None, None, 0)),
        ({"host": "[::1]:6379", "insecure": True}, ("::1", 6379, True, None, None, 0)),
        ({"dsn": "redis://cache.lan"}, ("cache.lan", 6379, False, None, None, 0)),
        ({"dsn": "rediss://:p%40ss@cache.lan/4"}, ("cache.lan", 6379, True, None, "p@ss", 4)),
        ({"dsn": "redis://app:pw@[::1]:7000/"}, ("::1", 7000, False, "app", "pw", 0)),
        (
            {"dsn": "redis://app@cache.lan", "password": "pw"},
            ("cache.lan", 6379, False, "app", "pw", 0),
        ),
        ({"host": "cache.lan:1", "database": " 7 "}, ("cache.lan", 1, False, None, None, 7)),
    ],
)
def test_targets(keys, target):
    spec = RedisSpec(name="c", driver="redis", **keys)
    got = spec.target()
    assert (got.host, got.port, got.tls, got.username, got.password, got.db) == target


def test_endpoint_forms():
    assert RedisSpec(name="c", driver="redis", host="cache.lan:6379").endpoint() == "cache.lan:6379"
    dsn = RedisSpec(name="c", driver="redis", dsn="rediss://app:pw@cache.lan:6380/1")
    assert dsn.endpoint() == "rediss://cache.lan:6380/1"


async def test_unreadable_ca_is_a_failed_check(bad_ca_file, resources):
    error = await failure(resources, host="127.0.0.1:6379", ca=str(bad_ca_file))
    assert error.message.startswith("TLS: cannot load the certificates")
