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
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import trustme
from pydantic import ValidationError

from probe.core.check import CheckContext
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers.base import SharedResources
from probe.probers.redis import RedisProber, RedisSpec
from tests.support.mosquitto import require_binary
from tests.support.proxy import TCPProxy
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


@pytest.fixture
async def resources():
    shared = SharedResources()
    yield shared
    await shared.aclose()


def make(resources: SharedResources, **keys: object) -> RedisProber:
    keys.setdefault("timeout", "2s")
    return RedisProber(RedisSpec(name="cache", driver="redis", **keys), resources)


async def failure(resources: SharedResources, **keys: object) -> ProbeError:
    with pytest.raises(ProbeError) as caught:
        await make(resources, **keys).check(CheckContext())
    return caught.value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateRedis:
    plain: str  # host:port, password on the default user
    tls: str  # host:port of the TLS listener (same server)
    ca_file: Path
    other_ca_file: Path


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of our own: `requirepass` on the default user and a TLS port."""
    binary = require_binary("redis-server")
    directory = tmp_path_factory.mktemp("redis")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    other_ca_file = directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca_file))
    for _attempt in range(3):
        port, tls_port = _free_port(), _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--tls-port", str(tls_port),
                "--tls-cert-file", str(cert),
                "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(ca_file),
                "--tls-auth-clients", "no",
                "--requirepass", PRIVATE_PASSWORD,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
                "--logfile", str(directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        if _wait_for_ports(process, (port, tls_port)):
            break
        _terminate(process)
    else:
        raise RuntimeError("private redis-server did not start")
    try:
        yield PrivateRedis(f"127.0.0.1:{port}", f"127.0.0.1:{tls_port}", ca_file, other_ca_file)
    finally:
        _terminate(process)


def _wait_for_ports(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
    deadline = time.monotonic() + 10
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.05)
    return not pending


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def settle(open_fds, limit: int) -> None:
    """Wait (bounded) until at most `limit` descriptors are open: a transport closes its
    socket on the loop iteration after it is aborted."""
    count = open_fds()
    for _ in range(100):
        count = open_fds()
        if count <= limit:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} descriptors open, expected at most {limit}")


# --- registry and healthy checks ------------------------------------------------------------


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
    host, port = shared_redis.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        prober = make(resources, host=proxy.address)
        for _ in range(3):
            assert (await prober.check(CheckContext())).ok
        assert proxy.connections == 3


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


async def test_timeout_during_tls_handshake_leaves_no_socket(raw_server, resources, open_fds):
    async def silent(reader, writer):
        await reader.read()

    server = await raw_server(silent)
    prober = make(resources, dsn=f"rediss://{server.address}", insecure=True, timeout="1s")
    prober._tls()  # build the SSLContext before counting
    before = open_fds()
    started = time.monotonic()
    result = (await run_check(prober)).result
    assert time.monotonic() - started < 2.0
    assert result.message == "timeout after 1s during TLS handshake"
    gc.collect()
    await settle(open_fds, before)


# --- outages, silence, refusals -------------------------------------------------------------


async def test_outage_and_recovery_through_a_proxy(shared_redis, resources):
    host, port = shared_redis.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        prober = make(resources, host=proxy.address, timeout="1s")
        assert (await run_check(prober)).result.status == "up"
        proxy.cut()
        down = (await run_check(prober)).result
        assert down.status == "down"
        assert down.message in {
            "connection reset by peer",
            "the server closed the connection",
        }
        proxy.restore()
        assert (await run_check(prober)).result.status == "up"


async def test_port_that_accepts_and_never_speaks(shared_redis, resources, open_fds):
    host, port = shared_redis.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        proxy.stall()
        prober = make(resources, host=proxy.address, timeout="1s")
        started = time.monotonic()
        result = (await run_check(prober)).result
        assert time.monotonic() - started < 2.0
        assert result.status == "down"
        assert result.message == "timeout after 1s during ping"
        assert result.details["phase"] == "ping"
        stalled_auth = make(resources, host=proxy.address, password="pw", timeout="1s")
        result = (await run_check(stalled_auth)).result
        assert result.message == "timeout after 1s during auth"


async def test_cancelled_check_leaves_no_socket(shared_redis, resources, open_fds):
    host, port = shared_redis.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        proxy.stall()
        before = open_fds()
        ctx = CheckContext()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await make(resources, host=proxy.address).check(ctx)
        assert ctx.phase == "ping"
        proxy.restore()
        await settle(open_fds, before + 1)  # the proxy may still hold its side


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
    loop = asyncio.get_running_loop()

    async def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", no_such_name)
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
    assert (await good.check(CheckContext())).ok
    before = open_fds()
    for i in range(200):
        if i % 10 == 0:
            with pytest.raises(ProbeError):
                await refused.check(CheckContext())
        elif i % 10 == 1:
            with pytest.raises(ProbeError):
                await bad_password.check(CheckContext())
        else:
            assert (await good.check(CheckContext())).ok
    gc.collect()
    await settle(open_fds, before + 2)


# --- secrets --------------------------------------------------------------------------------


async def test_passwords_never_in_endpoint_messages_or_details(shared_redis, auth_user, resources):
    secret = "dsn-secret-" + secrets.token_hex(4)
    spec = RedisSpec(name="c", driver="redis", dsn=f"redis://{auth_user}:{secret}@{shared_redis}/2")
    assert spec.endpoint() == f"redis://{shared_redis}/2"
    assert secret not in repr(spec)
    with pytest.raises(ProbeError) as caught:
        await RedisProber(spec, resources).check(CheckContext())
    assert secret not in caught.value.message
    assert secret not in repr(caught.value.details)
    keyed = RedisSpec(name="c", driver="redis", host=shared_redis, password="key-secret-1")
    assert "key-secret-1" not in keyed.endpoint() + repr(keyed)
    result = (await run_check(RedisProber(keyed, resources))).result
    assert "key-secret-1" not in result.message + repr(result.details)


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


async def test_unreadable_ca_is_a_failed_check(tmp_path, resources):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    error = await failure(resources, host="127.0.0.1:6379", ca=str(bad))
    assert error.message.startswith("TLS: cannot load the certificates")
