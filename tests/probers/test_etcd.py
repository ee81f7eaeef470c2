"""etcd probes against real etcd servers.

The shared etcd (127.0.0.1:2379, PROBE_TEST_ETCD) runs without authentication; failures it
cannot show are made on private instances started here (tests/support/daemons.py): one with a
root user, a user `app` that may read `/app/` and auth enabled (wrong password, permission
denied, an alarm raised on purpose), one speaking TLS that requires a client certificate.
Outages go through a TCP proxy the test controls; the shared server is never stopped.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import ValidationError

from probe.core.check import CheckContext, Outcome
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ProbeError
from probe.probers.base import SharedResources
from probe.probers.etcd import EtcdProber, EtcdSpec
from tests.support.daemons import PrivateEtcd, TLSFiles
from tests.support.proxy import TCPProxy
from tests.support.services import require_service

APP_PASSWORD = "app-secret-3f9c"
WRONG_PASSWORD = "wrong-secret-77d1"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


@pytest.fixture(scope="module")
def etcd_url() -> str:
    return require_service("etcd")


@pytest.fixture(scope="module")
def etcd_address(etcd_url: str) -> str:
    return etcd_url.split("://", 1)[1].rstrip("/")


@pytest.fixture(scope="module")
def shared_keys(etcd_url: str) -> Iterator[dict[str, str]]:
    """Two keys of this test run on the shared server, deleted at the end."""
    prefix = f"/probe-test/{uuid.uuid4().hex}"
    keys = {f"{prefix}/mode": "active", f"{prefix}/ünïcode": "wert ✓"}
    with httpx.Client(base_url=etcd_url, trust_env=False, timeout=10) as client:
        for key, value in keys.items():
            client.post(
                "/v3/kv/put", json={"key": b64(key), "value": b64(value)}
            ).raise_for_status()
        yield keys
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        client.post("/v3/kv/deleterange", json={"key": b64(prefix), "range_end": b64(end)})


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEtcd]:
    """A private etcd with auth enabled: root, and `app` who may read `/app/`."""
    server = PrivateEtcd(
        tmp_path_factory.mktemp("etcd-auth"),
        users={"app": APP_PASSWORD},
        readable={"app": "/app/"},
    )
    with server:
        server.put("/app/mode", "active")
        server.put("/other/secret", "hidden")
        yield server


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate (all files)."""
    directory = tmp_path_factory.mktemp("etcd-tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("probe-client")
    files = {
        "ca": directory / "ca.pem",
        "server_cert": directory / "server.pem",
        "server_key": directory / "server.key",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["server_cert"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return files


@pytest.fixture(scope="module")
def tls_etcd(
    tmp_path_factory: pytest.TempPathFactory, tls_material: dict[str, Path]
) -> Iterator[PrivateEtcd]:
    """A private etcd speaking only TLS and requiring a client certificate."""
    files = tls_material
    server = PrivateEtcd(
        tmp_path_factory.mktemp("etcd-tls-server"),
        tls=TLSFiles(files["server_cert"], files["server_key"], client_ca=files["ca"]),
        client_cert=(files["client_cert"], files["client_key"]),
    )
    with server:
        yield server


@pytest.fixture
async def resources():
    shared = SharedResources()
    yield shared
    await shared.aclose()


def make(resources: SharedResources, **keys: object) -> EtcdProber:
    keys.setdefault("timeout", "5s")
    return EtcdProber(EtcdSpec(name="etcd", driver="etcd", **keys), resources)


async def check(resources: SharedResources, **keys: object) -> Outcome:
    return await make(resources, **keys).check(CheckContext())


async def failure(resources: SharedResources, **keys: object) -> ProbeError:
    with pytest.raises(ProbeError) as caught:
        await check(resources, **keys)
    return caught.value


def assert_no_secret(*texts: object, secrets: tuple[str, ...]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in str(text)


# --- healthy, data --------------------------------------------------------------------------


async def test_healthy_with_version_and_leader(etcd_address, resources):
    outcome = await check(resources, host=etcd_address)
    assert outcome.ok, outcome.message
    version = outcome.details["version"]
    assert version.startswith("3.")
    assert outcome.message == f"etcd {version} healthy"
    assert outcome.details["leader"] != "0"
    assert outcome.details["leader"] == outcome.details["member_id"]  # a single member
    assert outcome.details["db_size"] > 0


async def test_dsn_is_the_endpoint_url(etcd_url, resources):
    prober = make(resources, dsn=etcd_url)
    assert (await prober.check(CheckContext())).ok
    assert prober.endpoint == etcd_url


async def test_data_pass(etcd_address, shared_keys, resources):
    outcome = await check(resources, host=etcd_address, data=shared_keys)
    assert outcome.ok, outcome.message
    assert outcome.details["keys_checked"] == 2


async def test_data_mismatch(etcd_address, shared_keys, resources):
    key = next(iter(shared_keys))
    outcome = await check(resources, host=etcd_address, data={key: "standby"})
    assert not outcome.ok
    assert outcome.message == f'key "{key}": expected "standby", got "active"'


async def test_data_missing_key(etcd_address, shared_keys, resources):
    key = next(iter(shared_keys)) + "-missing"
    outcome = await check(resources, host=etcd_address, data={key: "v"})
    assert not outcome.ok
    assert outcome.message == f'key "{key}": expected "v", got nothing'


# --- authentication (private etcd with auth enabled) ----------------------------------------


async def test_right_password_reads_its_keys(auth_etcd, resources):
    keys = {"host": auth_etcd.address, "username": "app", "password": APP_PASSWORD}
    outcome = await check(resources, **keys, data={"/app/mode": "active"})
    assert outcome.ok, outcome.message


async def test_wrong_password_is_an_authentication_failure(auth_etcd, resources):
    prober = make(resources, host=auth_etcd.address, username="app", password=WRONG_PASSWORD)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == 'authentication failed for user "app"'
    assert_no_secret(
        result.message, result.details, prober.endpoint, secrets=(WRONG_PASSWORD, APP_PASSWORD)
    )


async def test_credentials_in_the_dsn(auth_etcd, resources):
    good = make(resources, dsn=f"http://app:{APP_PASSWORD}@{auth_etcd.address}")
    assert (await good.check(CheckContext())).ok
    assert good.endpoint == f"http://{auth_etcd.address}"
    bad = make(resources, dsn=f"http://app:{WRONG_PASSWORD}@{auth_etcd.address}")
    result = (await run_check(bad)).result
    assert result.message == 'authentication failed for user "app"'
    assert_no_secret(result.message, result.details, bad.endpoint, secrets=(WRONG_PASSWORD,))


async def test_permission_denied_outside_the_users_keys(auth_etcd, resources):
    error = await failure(
        resources,
        host=auth_etcd.address,
        username="app",
        password=APP_PASSWORD,
        data={"/other/secret": "hidden"},
    )
    assert error.message == 'permission denied for user "app" reading key "/other/secret"'


async def test_no_credentials_for_a_key_on_an_auth_server(auth_etcd, resources):
    # Health and status need no credentials; reading a key does.
    assert (await check(resources, host=auth_etcd.address)).ok
    error = await failure(resources, host=auth_etcd.address, data={"/app/mode": "active"})
    assert error.message.startswith("authentication required")


async def test_credentials_for_a_server_without_auth(etcd_address, resources):
    # As etcd's own client does: not an error, and said in the details.
    outcome = await check(resources, host=etcd_address, username="app", password="x")
    assert outcome.ok
    assert outcome.details["auth"] == "not enabled on the server"


async def test_alarm_makes_it_down_then_up_again(auth_etcd, resources):
    keys = {"host": auth_etcd.address}
    auth_etcd.alarm("ACTIVATE", "NOSPACE")
    try:
        outcome = await check(resources, **keys)
        assert not outcome.ok
        member = format(int(auth_etcd.member_id()), "x")
        assert outcome.message == f"alarm raised: NOSPACE (member {member})"
    finally:
        auth_etcd.alarm("DEACTIVATE", "NOSPACE")
    assert (await check(resources, **keys)).ok


# --- TLS (private etcd requiring a client certificate) --------------------------------------


async def test_tls_with_ca_and_client_certificate(tls_etcd, tls_material, resources):
    files = tls_material
    outcome = await check(
        resources,
        host=tls_etcd.address,
        ca=files["ca"],
        cert=files["client_cert"],
        key=files["client_key"],
    )
    assert outcome.ok, outcome.message
    assert outcome.details["tls_version"].startswith("TLSv1")


async def test_tls_insecure_skips_verification(tls_etcd, tls_material, resources):
    files = tls_material
    keys = {"cert": files["client_cert"], "key": files["client_key"], "insecure": True}
    assert (await check(resources, dsn=tls_etcd.url, **keys)).ok


async def test_tls_unknown_authority(tls_etcd, tls_material, resources):
    files = tls_material
    error = await failure(
        resources, dsn=tls_etcd.url, cert=files["client_cert"], key=files["client_key"]
    )
    assert error.message == "TLS: certificate signed by an unknown authority"


async def test_tls_without_the_client_certificate(tls_etcd, tls_material, resources):
    error = await failure(resources, host=tls_etcd.address, ca=tls_material["ca"])
    assert error.message.startswith(("TLS:", "connection reset", "server closed"))


# --- outages, silence, leaks ----------------------------------------------------------------


async def test_refused(closed_port, resources):
    error = await failure(resources, host=f"127.0.0.1:{closed_port}")
    assert error.message == "connection refused"


async def test_outage_and_recovery_through_a_proxy(etcd_address, resources):
    host, port = etcd_address.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        prober = make(resources, host=proxy.address, timeout="2s")
        assert (await run_check(prober)).result.status is Status.UP
        proxy.cut()
        down = (await run_check(prober)).result
        assert down.status is Status.DOWN
        assert down.message in (
            "connection reset by peer",
            "server closed the connection during health",
        )
        proxy.restore()
        assert (await run_check(prober)).result.status is Status.UP


async def test_silent_port_times_out_waiting_for_health(etcd_address, resources, open_fds):
    host, port = etcd_address.rsplit(":", 1)
    async with TCPProxy(host, int(port)) as proxy:
        proxy.stall()
        prober = make(resources, host=proxy.address, timeout="1s")
        before = open_fds()
        started = time.monotonic()
        result = (await run_check(prober)).result
        assert time.monotonic() - started < 2.0
        assert result.status is Status.DOWN
        assert result.message == "timeout after 1s during health"
    await asyncio.sleep(0.05)
    assert open_fds() <= before


async def test_silent_tls_port_times_out_in_the_handshake(raw_server, resources, open_fds):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await raw_server(silent)
    prober = make(resources, host=server.address, insecure=True, timeout="1s")
    await run_check(prober)  # the shared client and its SSLContext exist from here on
    before = open_fds()
    started = time.monotonic()
    result = (await run_check(prober)).result
    assert time.monotonic() - started < 2.0
    assert result.message == "timeout after 1s during TLS handshake"
    await asyncio.sleep(0.05)
    assert open_fds() <= before  # the cancelled handshake closed its socket


async def test_not_an_etcd_server(web_server, resources):
    from aiohttp import web

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    url = await web_server(app)
    error = await failure(resources, dsn=url)
    assert error.message == (
        'unexpected answer to GET /health: HTTP 404 "Not Found" (not an etcd 3.4+ JSON gateway?)'
    )


async def test_no_descriptor_leak_after_200_checks(etcd_address, shared_keys, resources, open_fds):
    prober = make(resources, host=etcd_address, data=shared_keys)
    assert (await prober.check(CheckContext())).ok  # the shared client exists from here on
    before = open_fds()
    for _ in range(200):
        assert (await prober.check(CheckContext())).ok
    assert open_fds() <= before + 2


async def test_no_descriptor_leak_after_200_failed_auth_checks(auth_etcd, resources, open_fds):
    prober = make(resources, host=auth_etcd.address, username="app", password=WRONG_PASSWORD)
    await run_check(prober)
    before = open_fds()
    for _ in range(200):
        assert (await run_check(prober)).result.status is Status.DOWN
    assert open_fds() <= before + 2


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"host": "127.0.0.1:2379", "data": {"": "x"}}, "data: a key must not be empty"),
        ({"host": "127.0.0.1:2379", "data": ["/k"]}, "valid dictionary"),
        ({"host": "127.0.0.1:2379", "data": {"/k": ["v"]}}, "valid string"),
        ({"host": "127.0.0.1:2379", "database": "x"}, "the etcd driver takes no database"),
        ({"host": "127.0.0.1:2379", "query": "x"}, "the etcd driver takes no query"),
        ({"host": "127.0.0.1:2379", "expect": "x"}, "expect needs a query"),
        ({"host": "127.0.0.1:2379", "password": "x"}, "password needs a username"),
        ({"dsn": "ftp://127.0.0.1:2379"}, "dsn must start with http://, https://"),
        ({"dsn": "http://127.0.0.1:2379", "insecure": True}, "need an https:// dsn"),
        ({"dsn": "http://127.0.0.1:2379?x=1"}, "takes no query"),
        ({"dsn": "http://:pw@:2379"}, "invalid dsn: no host"),
        (
            {"dsn": "http://u:pw@127.0.0.1:2379", "username": "u"},
            "set the credentials in the dsn or in username/password",
        ),
        ({"host": "127.0.0.1"}, "missing port"),
        ({}, "host is required"),
    ],
)
def test_config_errors(keys, message):
    with pytest.raises(ValidationError) as caught:
        EtcdSpec(name="etcd", driver="etcd", **keys)
    # What the config loader shows: the messages, never the input (a DSN may hold a password).
    shown = " ".join(error["msg"] for error in caught.value.errors())
    assert message in shown
    assert "pw" not in shown.replace("password", "")


def test_host_becomes_an_https_url_with_tls_keys(tls_material):
    plain = EtcdSpec(name="e", driver="etcd", host="[::1]:2379")
    assert plain.base_url() == "http://[::1]:2379"
    secure = EtcdSpec(name="e", driver="etcd", host="etcd.lan:2379", ca=tls_material["ca"])
    assert secure.base_url() == "https://etcd.lan:2379"
    assert secure.endpoint() == "etcd.lan:2379"
    prefixed = EtcdSpec(name="e", driver="etcd", dsn="https://u:pw@etcd.lan:2379/gw/")
    assert prefixed.base_url() == "https://etcd.lan:2379/gw"
    assert prefixed.endpoint() == "https://etcd.lan:2379/gw/"
    assert prefixed.credentials() == ("u", "pw")
