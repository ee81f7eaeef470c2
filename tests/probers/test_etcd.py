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
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trustme

from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers.etcd import EtcdProber, EtcdSpec
from tests.support import probers as scenarios
from tests.support.daemons import PrivateEtcd, TLSFiles
from tests.support.probers import HTTPService, Kind, http_service

APP_PASSWORD = "app-secret-3f9c"
WRONG_PASSWORD = "wrong-secret-77d1"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


ETCD = Kind(EtcdProber, EtcdSpec, {"name": "etcd", "driver": "etcd", "timeout": "5s"})
make, check, failure = ETCD.make, ETCD.check, ETCD.failure


@pytest.fixture(scope="module")
def etcd() -> HTTPService:
    """The shared etcd (PROBE_TEST_ETCD)."""
    return http_service("etcd")


@pytest.fixture(scope="module")
def shared_keys(etcd: HTTPService) -> Iterator[dict[str, str]]:
    """Two keys of this test run on the shared server, deleted at the end."""
    prefix = f"/probe-test/{uuid.uuid4().hex}"
    keys = {f"{prefix}/mode": "active", f"{prefix}/ünïcode": "wert ✓"}
    with httpx.Client(base_url=etcd.url, trust_env=False, timeout=10) as client:
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


# --- healthy, data --------------------------------------------------------------------------


async def test_healthy_with_version_and_leader(etcd, resources):
    outcome = await check(resources, host=etcd.address)
    version = scenarios.version_of(outcome, "3.")
    assert outcome.message == f"etcd {version} healthy"
    assert outcome.details["leader"] != "0"
    assert outcome.details["leader"] == outcome.details["member_id"]  # a single member
    assert outcome.details["db_size"] > 0


async def test_dsn_is_the_endpoint_url(etcd, resources):
    prober = make(resources, dsn=etcd.url)
    assert (await prober.check(CheckContext())).ok
    assert prober.endpoint == etcd.url


async def test_data_pass(etcd, shared_keys, resources):
    outcome = await check(resources, host=etcd.address, data=shared_keys)
    assert outcome.ok, outcome.message
    assert outcome.details["keys_checked"] == 2


async def test_data_mismatch(etcd, shared_keys, resources):
    key = next(iter(shared_keys))
    outcome = await check(resources, host=etcd.address, data={key: "standby"})
    assert not outcome.ok
    assert outcome.message == f'key "{key}": expected "standby", got "active"'


async def test_data_missing_key(etcd, shared_keys, resources):
    key = next(iter(shared_keys)) + "-missing"
    outcome = await check(resources, host=etcd.address, data={key: "v"})
    assert not outcome.ok
    assert outcome.message == f'key "{key}": expected "v", got nothing'


# --- conditions (judged by the runner, through run_check) ----------------------------------


async def test_value_condition_up_and_down(etcd, shared_keys, resources):
    key = next(iter(shared_keys))
    up = make(
        resources, host=etcd.address, data=shared_keys, conditions=[f"[VALUE].{key} == active"]
    )
    result = (await run_check(up)).result
    assert result.status is Status.UP, result.message
    down = make(
        resources, host=etcd.address, data=shared_keys, conditions=[f"[VALUE].{key} == standby"]
    )
    result = (await run_check(down)).result
    assert result.status is Status.DOWN
    assert result.message == f"condition failed: [VALUE].{key} (active) == standby"


async def test_value_holds_every_key_read_and_not_the_missing_one(etcd, shared_keys, resources):
    mode, other = shared_keys
    missing = mode + "-missing"
    # The first key fails `data` (its message is the check's), yet every key is read.
    data = {mode: "standby", missing: "v", other: shared_keys[other]}
    ctx = CheckContext()
    outcome = await make(resources, host=etcd.address, data=data).check(ctx)
    assert outcome.message == f'key "{mode}": expected "standby", got "active"'
    assert ctx.facts["VALUE"] == {mode: "active", other: "wert ✓"}
    conditions = [f"has([VALUE].{missing}) == false", f'[VALUE]."{other}" == "wert ✓"']
    prober = make(resources, host=etcd.address, data=data, conditions=conditions)
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == f'key "{mode}": expected "standby", got "active"'
    assert "failed_conditions" not in result.details


async def test_ip_is_the_address_connected_to(etcd, resources):
    host = etcd.address.rsplit(":", 1)[0]
    ctx = CheckContext()
    assert (await make(resources, host=etcd.address).check(ctx)).ok
    assert ctx.facts["IP"] == host
    assert ctx.details["peer"] == etcd.address
    prober = make(resources, host=etcd.address, conditions=[f"[IP] == {host}"])
    result = (await run_check(prober)).result
    assert result.status is Status.UP, result.message
    prober = make(resources, host=etcd.address, conditions=["[IP] == 192.0.2.1"])
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN
    assert result.message == f"condition failed: [IP] ({host}) == 192.0.2.1"


def test_value_key_not_in_data_is_a_config_error():
    spec = EtcdSpec(
        name="e",
        driver="etcd",
        host="127.0.0.1:2379",
        data={"/config/mode": "active"},
        conditions=["[VALUE]./config/mode == active", "[VALUE]./config/node == active"],
    )
    ((index, message),) = spec.condition_problems()
    assert index == 1
    assert message == (
        '[VALUE]./config/node reads key "/config/node", which is not in data (its keys:'
        ' "/config/mode"): a condition reads only the keys the check reads (at character 1)'
    )


# --- authentication (private etcd with auth enabled) ----------------------------------------


async def test_right_password_reads_its_keys(auth_etcd, resources):
    keys = {"host": auth_etcd.address, "username": "app", "password": APP_PASSWORD}
    outcome = await check(resources, **keys, data={"/app/mode": "active"})
    assert outcome.ok, outcome.message


async def test_wrong_password_is_an_authentication_failure(auth_etcd, resources):
    prober = make(resources, host=auth_etcd.address, username="app", password=WRONG_PASSWORD)
    await scenarios.assert_authentication_failure(prober, "app", WRONG_PASSWORD, APP_PASSWORD)


async def test_credentials_in_the_dsn(auth_etcd, resources):
    await scenarios.assert_credentials_in_the_dsn(
        partial(make, resources), auth_etcd.address, "app", APP_PASSWORD, WRONG_PASSWORD
    )


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


async def test_credentials_for_a_server_without_auth(etcd, resources):
    # As etcd's own client does: not an error, and said in the details.
    outcome = await check(resources, host=etcd.address, username="app", password="x")
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


async def test_outage_and_recovery_through_a_proxy(etcd, resources):
    cut = {"connection reset by peer", "server closed the connection during health"}
    await scenarios.assert_outage_and_recovery(etcd.address, partial(make, resources), cut)


async def test_silent_port_times_out_waiting_for_health(etcd, resources, open_fds):
    make_it = partial(make, resources)
    await scenarios.assert_silent_port_times_out(etcd.address, make_it, "health", open_fds=open_fds)


@pytest.mark.slow
async def test_silent_tls_port_times_out_in_the_handshake(raw_server, resources, open_fds):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await raw_server(silent)
    prober = make(resources, host=server.address, insecure=True, timeout="1s")
    await run_check(prober)  # the shared client and its SSLContext exist from here on
    before = open_fds()
    result = (await scenarios.timed_run(prober, within=2.0)).result
    assert result.message == "timeout after 1s during TLS handshake"
    await asyncio.sleep(0.05)
    assert open_fds() <= before  # the cancelled handshake closed its socket


async def test_not_an_etcd_server(web_server, resources):
    from aiohttp import web

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    url = await web_server(scenarios.web_app({"* /{tail:.*}": not_found}))
    error = await failure(resources, dsn=url)
    assert error.message == (
        'unexpected answer to GET /health: HTTP 404 "Not Found" (not an etcd 3.4+ JSON gateway?)'
    )


async def test_no_descriptor_leak_after_200_checks(etcd, shared_keys, resources, open_fds):
    prober = make(resources, host=etcd.address, data=shared_keys)
    await scenarios.assert_no_descriptor_leak(
        prober, open_fds
    )  # the first check builds the shared client


async def test_no_descriptor_leak_after_200_failed_auth_checks(auth_etcd, resources, open_fds):
    prober = make(resources, host=auth_etcd.address, username="app", password=WRONG_PASSWORD)
    await scenarios.assert_no_descriptor_leak(prober, open_fds, status=Status.DOWN)


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
    scenarios.assert_config_error(EtcdSpec, keys, message, name="etcd", driver="etcd")


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
