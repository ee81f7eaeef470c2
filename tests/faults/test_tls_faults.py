"""Certificates that must not pass (expired, self-signed, for another host, from a CA nobody
trusts) and a TLS port that never speaks, against the real https and tls probers run by the
scheduler's `run_check`."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from probe.core.result import Status
from probe.probers.base import Prober, SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.tls import TLSProber, TLSSpec
from tests.faults import servers
from tests.faults.servers import FaultServer, timed_check

pytestmark = pytest.mark.slow

_overruns = servers.overrun_report("TLS faults")

SLACK = 1.5
NOW = datetime.now(UTC)
EXPIRED_ON = (NOW - timedelta(days=2)).replace(microsecond=0)


@dataclass(frozen=True)
class Material:
    ca_file: Path  # the CA the probers trust
    leaves: dict[str, trustme.LeafCert]


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    trusted = trustme.CA()
    ca_file = tmp_path_factory.mktemp("faults-tls") / "ca.pem"
    trusted.cert_pem.write_to_path(str(ca_file))
    # A CA's own certificate served as the leaf: self-signed, nothing vouches for it.
    lone = trustme.CA()
    self_signed = trustme.LeafCert(
        private_key_pem=lone.private_key_pem.bytes(),
        server_cert_pem=lone.cert_pem.bytes(),
        chain_to_ca=[],
    )
    leaves = {
        "good": trusted.issue_cert("127.0.0.1"),
        "expired": trusted.issue_cert(
            "127.0.0.1", not_before=NOW - timedelta(days=30), not_after=EXPIRED_ON
        ),
        "self-signed": self_signed,
        "wrong host": trusted.issue_cert("other.test"),
        "untrusted CA": trustme.CA().issue_cert("127.0.0.1"),
    }
    return Material(ca_file, leaves)


@pytest.fixture
async def resources() -> AsyncIterator[SharedResources]:
    shared = SharedResources()
    yield shared
    await shared.aclose()


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def https(resources: SharedResources, server: FaultServer, ca_file: Path) -> Prober[HTTPSpec]:
    spec = HTTPSpec(name="site", url=server.url("/", "https"), ca=ca_file, timeout="1s")
    return HTTPProber(spec, resources)


def tls(resources: SharedResources, server: FaultServer, ca_file: Path) -> Prober[TLSSpec]:
    spec = TLSSpec(name="cert", host=server.address, root_ca_pem_path=ca_file, timeout="1s")
    return TLSProber(spec, resources)


MAKERS = {"https": https, "tls": tls}
EXPECTED = {
    ("https", "expired"): "TLS: certificate has expired",
    ("tls", "expired"): f"TLS: certificate has expired (on {EXPIRED_ON.date().isoformat()})",
    ("https", "self-signed"): "TLS: self-signed certificate",
    ("tls", "self-signed"): "TLS: self-signed certificate",
    ("https", "wrong host"): "TLS: hostname mismatch",
    ("tls", "wrong host"): (
        'TLS: hostname mismatch: the certificate is not valid for "127.0.0.1" (it is for '
        "other.test)"
    ),
    ("https", "untrusted CA"): "TLS: certificate signed by an unknown authority",
    ("tls", "untrusted CA"): "TLS: certificate signed by an unknown authority",
}


@pytest.mark.parametrize(("prober", "leaf"), list(EXPECTED))
async def test_a_bad_certificate_is_down_with_the_reason(
    prober, leaf, material, resources, fault_figures
):
    label = f"{prober}: {leaf} certificate"
    async with FaultServer(servers.healthy, server_context(material.leaves[leaf])) as server:
        made = MAKERS[prober](resources, server, material.ca_file)
        timed = await timed_check(made, label)
    fault_figures.add(timed.line(label))
    assert timed.elapsed < made.timeout + SLACK
    assert timed.result.status is Status.DOWN
    assert timed.result.message == EXPECTED[prober, leaf]


@pytest.mark.parametrize("prober", list(MAKERS))
async def test_the_good_certificate_passes(prober, material, resources):
    # The same servers and probers are right when the certificate is: the faults above are
    # the certificates' doing.
    async with FaultServer(servers.healthy, server_context(material.leaves["good"])) as server:
        timed = await timed_check(MAKERS[prober](resources, server, material.ca_file))
    assert timed.result.status is Status.UP, timed.result.message


@pytest.mark.parametrize("prober", list(MAKERS))
async def test_a_port_that_never_starts_the_handshake(prober, material, resources, fault_figures):
    label = f"{prober}: TLS port that accepts and never speaks"
    async with FaultServer(servers.silent) as server:  # plain TCP: no ServerHello ever comes
        made = MAKERS[prober](resources, server, material.ca_file)
        timed = await timed_check(made, label)
    fault_figures.add(timed.line(label))
    assert timed.elapsed < made.timeout + SLACK
    assert not timed.straggler
    assert timed.result.status is Status.DOWN
    assert timed.result.message == "timeout after 1s during TLS handshake"
