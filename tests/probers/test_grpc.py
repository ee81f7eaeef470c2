"""The grpc prober against real gRPC servers: grpc.aio servers started by each test on free
loopback ports, serving grpc-health-checking's own HealthServicer (the reference
implementation of the protocol), plaintext and TLS (certificates from trustme)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import grpc.aio
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from probe.assembly import load_config
from probe.core.check import CheckContext
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.errors import ConfigError, ProbeError
from probe.probers.grpc import GRPCProber, GRPCSpec
from tests.support import probers as scenarios
from tests.support.cli import REPO, spawn_probe
from tests.support.probers import Kind

GRPC = Kind(GRPCProber, GRPCSpec, {"name": "rpc", "timeout": "2s"})
make = GRPC.make
failure = GRPC.failure

TOKEN = "tok-" + secrets.token_hex(8)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.UNKNOWN


class _GuardedHealth(health.aio.HealthServicer):
    """The reference servicer, but the service "guarded" needs `authorization: Bearer TOKEN`."""

    async def Check(self, request, context):
        if request.service == "guarded":
            metadata = dict(context.invocation_metadata() or ())
            if metadata.get("authorization") != f"Bearer {TOKEN}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        return await super().Check(request, context)


@dataclass
class Servers:
    plain: str  # host:port of the plaintext listener
    tls: str  # host:port of the TLS listener (a certificate for 127.0.0.1 and localhost)
    mtls: str  # host:port of a TLS listener that requires a client certificate
    ca_file: Path
    other_ca_file: Path
    client_cert: Path
    client_key: Path
    health: health.aio.HealthServicer


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("probe-client")
    files = {name: tmp_path / f"grpc-{name}.pem" for name in ("ca", "other", "ccert", "ckey")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    trustme.CA().cert_pem.write_to_path(str(files["other"]))
    client.cert_chain_pems[0].write_to_path(str(files["ccert"]))
    client.private_key_pem.write_to_path(str(files["ckey"]))
    pair = [(leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())]

    servicer = _GuardedHealth()
    await servicer.set("shop.Orders", SERVING)
    await servicer.set("shop.Down", NOT_SERVING)
    await servicer.set("shop.Unsure", UNKNOWN)
    await servicer.set("guarded", SERVING)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    plain = server.add_insecure_port("127.0.0.1:0")
    tls = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(pair))
    mutual = grpc.ssl_server_credentials(
        pair, root_certificates=ca.cert_pem.bytes(), require_client_auth=True
    )
    mtls = server.add_secure_port("127.0.0.1:0", mutual)
    await server.start()
    try:
        yield Servers(
            plain=f"127.0.0.1:{plain}",
            tls=f"127.0.0.1:{tls}",
            mtls=f"127.0.0.1:{mtls}",
            ca_file=files["ca"],
            other_ca_file=files["other"],
            client_cert=files["ccert"],
            client_key=files["ckey"],
            health=servicer,
        )
    finally:
        await server.stop(None)


# --- up and down ----------------------------------------------------------------------------


async def test_serving_server_is_up(servers, resources):
    ctx = CheckContext()
    outcome = await make(resources, host=servers.plain).check(ctx)
    assert outcome.ok, outcome.message
    assert outcome.message == "server is SERVING"
    assert outcome.details["health"] == "SERVING"
    assert ctx.facts == {"IP": "127.0.0.1", "HEALTH": "SERVING"}
    named = await GRPC.check(resources, host=servers.plain, service="shop.Orders")
    assert named.message == 'service "shop.Orders" is SERVING'


async def test_not_serving_unknown_and_unknown_service_are_down(servers, resources):
    for service, message in [
        ("shop.Down", 'service "shop.Down" is NOT_SERVING'),
        ("shop.Unsure", 'service "shop.Unsure" is UNKNOWN'),
        ("shop.Nope", 'service "shop.Nope" is unknown to the server (SERVICE_UNKNOWN)'),
    ]:
        result = (await run_check(make(resources, host=servers.plain, service=service))).result
        assert result.status is Status.DOWN
        assert result.message == message


async def test_a_service_going_down_and_back(servers, resources):
    prober = make(resources, host=servers.plain, service="shop.Orders")
    assert (await run_check(prober)).result.status is Status.UP
    await servers.health.set("shop.Orders", NOT_SERVING)
    assert (await run_check(prober)).result.message == 'service "shop.Orders" is NOT_SERVING'
    await servers.health.set("shop.Orders", SERVING)
    assert (await run_check(prober)).result.status is Status.UP


async def test_health_condition(servers, resources):
    up = make(
        resources, host=servers.plain, service="shop.Down", conditions=["[HEALTH] == NOT_SERVING"]
    )
    result = (await run_check(up)).result
    assert result.status is Status.DOWN  # the health status judges first; conditions on top
    ok = make(
        resources, host=servers.plain, conditions=["[HEALTH] == SERVING", "[IP] == 127.0.0.1"]
    )
    assert (await run_check(ok)).result.status is Status.UP
    wrong = make(resources, host=servers.plain, conditions=["[HEALTH] == NOT_SERVING"])
    assert (await run_check(wrong)).result.status is Status.DOWN


async def test_not_a_health_server(resources):
    server = grpc.aio.server()  # no services at all: Check is UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        error = await failure(resources, host=f"127.0.0.1:{port}")
    finally:
        await server.stop(None)
    assert error.message == "the server does not implement the gRPC health service"


# --- metadata and secrets -------------------------------------------------------------------


async def test_metadata_is_sent_and_never_shown(servers, resources):
    good = make(
        resources,
        host=servers.plain,
        service="guarded",
        metadata={"Authorization": f"Bearer {TOKEN}"},
    )
    assert (await good.check(CheckContext())).ok
    wrong = make(
        resources, host=servers.plain, service="guarded", metadata={"authorization": "Bearer no"}
    )
    error = await scenarios.failure(wrong)
    assert error.message == "authentication failed (UNAUTHENTICATED)"
    result = (await run_check(good)).result
    scenarios.assert_no_secret(result, good, TOKEN)
    assert TOKEN not in repr(good.spec)


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_with_the_right_ca_and_a_client_certificate(servers, resources):
    outcome = await GRPC.check(resources, host=servers.tls, ca=servers.ca_file)
    assert outcome.ok, outcome.message
    by_name = servers.tls.replace("127.0.0.1", "localhost")
    assert (await GRPC.check(resources, host=by_name, ca=servers.ca_file)).ok
    mutual = await GRPC.check(
        resources,
        host=servers.mtls,
        ca=servers.ca_file,
        cert=servers.client_cert,
        key=servers.client_key,
    )
    assert mutual.ok, mutual.message


async def test_tls_failures(servers, resources):
    other = await failure(resources, host=servers.tls, ca=servers.other_ca_file)
    assert other.message.startswith("TLS: "), other.message
    public_roots = await failure(resources, host=servers.tls, tls=True)
    assert public_roots.message.startswith("TLS: "), public_roots.message
    to_plain = await failure(resources, host=servers.plain, ca=servers.ca_file)
    assert to_plain.message.startswith("TLS: ") or "closed" in to_plain.message
    no_client_cert = await failure(resources, host=servers.mtls, ca=servers.ca_file)
    assert no_client_cert.message.startswith(("TLS: ", "the server closed")), no_client_cert.message


async def test_a_ca_file_that_changed_since_load_is_a_failed_check(tmp_path, servers, resources):
    ca = tmp_path / "changing-ca.pem"
    ca.write_bytes(servers.ca_file.read_bytes())
    prober = make(resources, host=servers.tls, ca=ca)
    ca.write_text("not a certificate\n")  # gRPC reads it when the channel is made
    error = await scenarios.failure(prober)
    assert error.message == "TLS: handshake failed"


# --- outages, silence, timeouts, descriptors -------------------------------------------------


async def test_connection_refused(closed_port, resources):
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host=f"127.0.0.1:{closed_port}").check(ctx)
    assert caught.value.message == "connection refused"
    assert caught.value.details["peer"] == f"127.0.0.1:{closed_port}"


async def test_outage_and_recovery_through_a_proxy(servers, resources):
    cut = {"connection reset by peer", "the server closed the connection", "connection refused"}
    await scenarios.assert_outage_and_recovery(
        servers.plain, partial(make, resources), cut, timeout="1s"
    )


async def test_port_that_accepts_and_never_speaks(servers, resources, open_fds):
    before = open_fds()
    silent = scenarios.assert_silent_port_times_out
    result = await silent(servers.plain, partial(make, resources), "connect")
    assert result.details["phase"] == "connect"
    # gRPC ends the abandoned attempt at its deadline, a little past the probe's timeout: a
    # moment after the scheduler gave up, not at once (see probers/grpc.py).
    await scenarios.settle(open_fds, before, rounds=150)


async def test_cancelled_check_closes_its_channel(servers, resources, open_fds):
    async with scenarios.proxy_to(servers.plain) as proxy:
        proxy.stall()
        # gRPC ends an abandoned connection attempt at its deadline, a little past the
        # probe's timeout (see probers/grpc.py): cut off at 0.2 s, the sockets are gone by
        # 1.05 s.
        prober = make(resources, host=proxy.address, timeout="0.5s")
        before = open_fds()
        for _ in range(5):
            ctx = await scenarios.cancelled(prober, 0.2)
            assert ctx.phase == "connect"
        proxy.restore()
        await scenarios.settle(open_fds, before + 1)


async def test_name_that_does_not_resolve(monkeypatch, resources):
    scenarios.fail_name_resolution(monkeypatch)
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, host="rpc.invalid:50051").check(ctx)
    assert caught.value.message == "name resolution failed for host rpc.invalid"
    assert ctx.phase == "resolve"


async def test_no_descriptor_leak_over_a_thousand_checks(servers, closed_port, resources, open_fds):
    good = make(resources, host=servers.plain, service="shop.Orders")
    refused = make(resources, host=f"127.0.0.1:{closed_port}")
    await scenarios.assert_no_leaks_mixing(
        open_fds, good, [refused], every=10, rounds=1000, slack=4
    )


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "127.0.0.1"}, "missing port"),
        ({"host": "grpc://127.0.0.1:50051"}, "is a URL; write host:port"),
        ({"host": "127.0.0.1:1", "insecure": True}, "cannot skip certificate verification"),
        ({"host": "127.0.0.1:1", "metadata": {"a b": "x"}}, "is not a metadata key"),
        ({"host": "127.0.0.1:1", "metadata": {"grpc-timeout": "1"}}, "reserved by gRPC"),
        ({"host": "127.0.0.1:1", "metadata": {"x-bin": "1"}}, "binary key"),
        ({"host": "127.0.0.1:1", "metadata": {"x": "a\nb"}}, "printable ASCII"),
        ({"host": "127.0.0.1:1", "ca": "/nonexistent/ca.pem"}, "file not found"),
    ],
)
def test_invalid_specs(keys, needle):
    scenarios.assert_config_error(GRPCSpec, keys, needle, name="rpc")


def test_a_ca_file_without_a_certificate_is_refused(bad_ca_file):
    messages = scenarios.config_error_messages(GRPCSpec, name="rpc", host="h:1", ca=bad_ca_file)
    assert "no CA certificate could be read" in messages


def test_an_unknown_placeholder_is_a_located_config_error(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "grpc:\n  - name: api\n    host: 127.0.0.1:1\n    conditions: ['[VALUE].x == 1']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{path}:4:18: grpc[0].conditions[0]: [VALUE] is not a placeholder of grpc"
    )


def test_cert_without_key_is_refused(servers):
    messages = scenarios.config_error_messages(
        GRPCSpec, name="rpc", host=servers.tls, cert=servers.client_cert
    )
    assert "cert and key go together" in messages


def test_a_bad_key_is_a_located_config_error(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text("grpc:\n  - name: api\n    host: 127.0.0.1:50051\n    servce: shop\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f'{path}:4:5: grpc[0].servce: unknown key "servce"')


async def test_probe_check_accepts_a_grpc_section(tmp_path: Path):
    (tmp_path / "probes.yaml").write_text(
        "grpc:\n"
        "  - name: orders api\n"
        "    host: localhost:50051\n"
        "    service: shop.Orders\n"
        "    tls: true\n"
        "    metadata: {authorization: Bearer x}\n"
        '    conditions: ["[HEALTH] == SERVING"]\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await spawn_probe("check", "-c", "probes.yaml", cwd=tmp_path, env=env)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
