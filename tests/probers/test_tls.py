"""TLS prober against local asyncio TLS servers presenting certificates the tests generate
(trustme for CA-issued ones, cryptography for the self-signed one)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from probe.assembly import load_config
from probe.core.check import CheckContext, Outcome
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.core.tracker import Policy, StatusTracker
from probe.durations import format_duration
from probe.errors import ConfigError, ProbeError
from probe.metrics import SeriesLabels, probe_metrics
from probe.probers.base import SharedResources
from probe.probers.tls import TLSProber, TLSSpec, _Cert, _expiry
from tests.conftest import server_ssl_context
from tests.support import probers as scenarios

NOW = datetime.now(UTC)


def make(resources: SharedResources, host: str, **keys: object) -> TLSProber:
    keys.setdefault("timeout", "3s")
    return TLSProber(TLSSpec(name="tls", host=host, **keys), resources)


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the prober hangs up


@dataclass
class Served:
    address: str
    port: int
    server_names: list[str | None]


@pytest.fixture
def serve(raw_server):
    """`await serve(context) -> Served`: a TLS server on 127.0.0.1 recording the SNI names."""

    async def start(context: ssl.SSLContext, host: str = "127.0.0.1") -> Served:
        names: list[str | None] = []

        def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            names.append(name)

        context.sni_callback = record
        server = await raw_server(hold, host=host, ssl_context=context)
        return Served(server.address, server.port, names)

    return start


def leaf_context(
    ca: trustme.CA,
    *names: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> ssl.SSLContext:
    leaf = ca.issue_cert(*(names or ("127.0.0.1",)), not_before=not_before, not_after=not_after)
    return server_ssl_context(leaf)


def certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    days: tuple[int, int],
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """`key`'s certificate for `subject`, signed by `signer` (`issuer`), valid from `days[0]`
    to `days[1]` days from now, with `extensions` (each with whether it is critical)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + timedelta(days=days[0]))
        .not_valid_after(NOW + timedelta(days=days[1]))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def ip_names(address: str) -> tuple[x509.SubjectAlternativeName, bool]:
    """A (not critical) subjectAltName extension for the IP `address`."""
    return x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), False


def context_presenting(
    directory: Path, chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey
) -> ssl.SSLContext:
    """A server context presenting `chain` (leaf first) with the leaf's `key`."""
    cert_path, key_path = directory / "chain.pem", directory / "leaf.key"
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def self_signed_context(tmp_path: Path, name: str = "127.0.0.1") -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = common_name(name)
    cert = certificate(subject, subject, key, key, days=(-1, 90), extensions=[ip_names(name)])
    return context_presenting(tmp_path, [cert], key)


async def failed_check(serve, resources, context: ssl.SSLContext, **keys: object) -> Outcome:
    """The outcome of one check of a server presenting `context`, which must not be ok."""
    served = await serve(context)
    outcome = await make(resources, served.address, **keys).check(CheckContext())
    assert not outcome.ok
    return outcome


# --- healthy ---------------------------------------------------------------------------------


async def test_valid_certificate_is_up(serve, resources, tls_ca, tls_ca_file):
    served = await serve(leaf_context(tls_ca, "127.0.0.1", not_after=NOW + timedelta(days=90)))
    ctx = CheckContext()
    outcome = await make(resources, served.address, root_ca_pem_path=str(tls_ca_file)).check(ctx)
    assert outcome.ok, outcome.message
    expiry = (NOW + timedelta(days=90)).date().isoformat()
    assert outcome.message in (
        f"certificate expires in 89 days ({expiry})",
        f"certificate expires in 90 days ({expiry})",  # a slow second between NOW and the check
    )
    details = outcome.details
    assert details["days_left"] in (89, 90)
    assert details["not_after"].startswith(expiry) and details["not_after"].endswith("Z")
    assert "trustme" in details["issuer"]
    assert details["subject"]  # trustme's leaf subject: its organisation names
    assert details["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert details["cipher"]
    assert details["peer"] == served.address
    assert details["server_name"] == "127.0.0.1"
    assert details["certificates_checked"] == 1  # trustme serves the leaf alone
    assert ctx.phase == "TLS handshake"
    # An IP address is never sent as SNI (RFC 6066).
    assert served.server_names == [None]


async def test_inline_root_ca_pem(serve, resources, tls_ca):
    served = await serve(leaf_context(tls_ca))
    pem = tls_ca.cert_pem.bytes().decode()
    outcome = await make(resources, served.address, root_ca_pem=pem).check(CheckContext())
    assert outcome.ok, outcome.message


async def test_server_name_is_the_sni_and_the_name_verified(serve, resources, tls_ca, tls_ca_file):
    served = await serve(leaf_context(tls_ca, "svc.test"))
    prober = make(
        resources, served.address, root_ca_pem_path=str(tls_ca_file), server_name="svc.test"
    )
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert served.server_names == ["svc.test"]
    assert outcome.details["server_name"] == "svc.test"


async def test_chain_through_an_intermediate(serve, resources, tls_ca, tls_ca_file):
    intermediate = tls_ca.create_child_ca()
    served = await serve(server_ssl_context(intermediate.issue_cert("127.0.0.1")))
    outcome = await make(resources, served.address, root_ca_pem_path=str(tls_ca_file)).check(
        CheckContext()
    )
    assert outcome.ok, outcome.message
    # Python 3.11/3.12 give the leaf only; 3.13+ the verified chain (leaf, intermediate, root).
    expected = 1 if sys.version_info < (3, 13) else 3
    assert outcome.details["certificates_checked"] == expected


async def test_ipv6_loopback(serve, resources, tls_ca, tls_ca_file, ipv6_loopback):
    served = await serve(leaf_context(tls_ca, "::1"), host=ipv6_loopback)
    assert served.address.startswith("[::1]:")
    outcome = await make(resources, served.address, root_ca_pem_path=str(tls_ca_file)).check(
        CheckContext()
    )
    assert outcome.ok, outcome.message
    assert outcome.details["peer"] == served.address


async def test_through_run_check(serve, resources, tls_ca, tls_ca_file):
    served = await serve(leaf_context(tls_ca))
    run = await run_check(make(resources, served.address, root_ca_pem_path=str(tls_ca_file)))
    assert run.result.status.value == "up"
    assert run.result.latency is not None and run.result.latency > 0


# --- certificate problems --------------------------------------------------------------------


async def test_expired(serve, resources, tls_ca, tls_ca_file):
    ended = NOW - timedelta(days=3)
    context = leaf_context(tls_ca, not_before=NOW - timedelta(days=30), not_after=ended)
    outcome = await failed_check(serve, resources, context, root_ca_pem_path=str(tls_ca_file))
    assert outcome.message == f"TLS: certificate has expired (on {ended.date().isoformat()})"
    assert outcome.details["days_left"] == -3
    assert outcome.details["verify_error"] == "certificate has expired"


async def test_not_yet_valid(serve, resources, tls_ca, tls_ca_file):
    starts = NOW + timedelta(days=10)
    context = leaf_context(tls_ca, not_before=starts, not_after=NOW + timedelta(days=100))
    outcome = await failed_check(serve, resources, context, root_ca_pem_path=str(tls_ca_file))
    assert outcome.message == (
        f"TLS: certificate is not yet valid (valid from {starts.date().isoformat()})"
    )


async def test_expiring_within_the_window_is_down(serve, resources, tls_ca, tls_ca_file):
    ends = NOW + timedelta(days=5, hours=1)
    served = await serve(leaf_context(tls_ca, not_after=ends))
    prober = make(resources, served.address, root_ca_pem_path=str(tls_ca_file))
    outcome = await prober.check(CheckContext())
    assert not outcome.ok
    assert outcome.message == f"certificate expires in 5 days ({ends.date().isoformat()})"
    assert outcome.details["days_left"] == 5
    assert outcome.details["alert_expire_before"] == format_duration(7 * 86400)
    # A shorter window: the same certificate is fine.
    shorter = make(
        resources, served.address, root_ca_pem_path=str(tls_ca_file), alert_expire_before="5d"
    )
    assert (await shorter.check(CheckContext())).ok
    # 0 turns the alert off, as in EaseProbe.
    off = make(
        resources, served.address, root_ca_pem_path=str(tls_ca_file), alert_expire_before="0s"
    )
    assert (await off.check(CheckContext())).ok


async def test_expiring_in_less_than_a_day(serve, resources, tls_ca, tls_ca_file):
    ends = NOW + timedelta(hours=5)
    outcome = await failed_check(
        serve, resources, leaf_context(tls_ca, not_after=ends), root_ca_pem_path=str(tls_ca_file)
    )
    assert outcome.message == f"certificate expires in less than a day ({ends.date().isoformat()})"


async def test_expire_skip_verify(serve, resources, tls_ca, tls_ca_file):
    ended = NOW - timedelta(days=3)
    served = await serve(leaf_context(tls_ca, not_before=NOW - timedelta(days=30), not_after=ended))
    prober = make(
        resources, served.address, root_ca_pem_path=str(tls_ca_file), expire_skip_verify=True
    )
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message
    assert outcome.message == (
        f"certificate expired on {ended.date().isoformat()} (expire_skip_verify)"
    )
    # The chain is still verified, dates aside.
    other_ca = trustme.CA()
    served2 = await serve(leaf_context(other_ca))
    prober2 = make(
        resources, served2.address, root_ca_pem_path=str(tls_ca_file), expire_skip_verify=True
    )
    outcome2 = await prober2.check(CheckContext())
    assert not outcome2.ok
    assert outcome2.message == "TLS: certificate signed by an unknown authority"


def chain_with_expired_intermediate(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    """A valid leaf for 127.0.0.1 under an intermediate CA that expired yesterday."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid_name = common_name("Expired Intermediate")
    # A CA's key usage: it signs certificates and CRLs (and its own digital signatures).
    unused = ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
        **dict.fromkeys(unused, False),
    )
    ca_extensions = [(x509.BasicConstraints(ca=True, path_length=0), True), (usage, True)]
    mid = certificate(
        mid_name, ca_cert.subject, mid_key, ca_key, days=(-60, -1), extensions=ca_extensions
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(
        common_name("leaf"),
        mid_name,
        leaf_key,
        mid_key,
        days=(-10, 90),
        extensions=[ip_names("127.0.0.1")],
    )
    return context_presenting(tmp_path, [leaf, mid], leaf_key)


async def test_expired_intermediate(serve, resources, tls_ca, tls_ca_file, tmp_path):
    outcome = await failed_check(
        serve,
        resources,
        chain_with_expired_intermediate(tls_ca, tmp_path),
        root_ca_pem_path=str(tls_ca_file),
    )
    if sys.version_info < (3, 13):
        # Only the leaf can be read here, and it is valid: the message cannot name the one
        # that expired.
        assert outcome.message == "TLS: a certificate in the chain has expired"
    else:
        ended = (NOW - timedelta(days=1)).date().isoformat()
        assert outcome.message == (
            f'TLS: certificate "CN=Expired Intermediate" in the chain has expired (on {ended})'
        )
    assert outcome.details["subject"] == "CN=leaf"


async def test_self_signed(serve, resources, tmp_path):
    outcome = await failed_check(serve, resources, self_signed_context(tmp_path))
    assert outcome.message == "TLS: self-signed certificate"
    assert outcome.details["subject"] == "CN=127.0.0.1"
    assert outcome.details["issuer"] == "CN=127.0.0.1"


async def test_unknown_ca(serve, resources, tls_ca):
    # No root_ca_pem: the system's roots (certifi), which do not know the test CA.
    outcome = await failed_check(serve, resources, leaf_context(tls_ca))
    assert outcome.message == "TLS: certificate signed by an unknown authority"
    assert "trustme" in outcome.details["issuer"]


async def test_wrong_host(serve, resources, tls_ca, tls_ca_file):
    served = await serve(leaf_context(tls_ca, "other.test", "www.other.test"))
    outcome = await make(resources, served.address, root_ca_pem_path=str(tls_ca_file)).check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == (
        'TLS: hostname mismatch: the certificate is not valid for "127.0.0.1" '
        "(it is for other.test, www.other.test)"
    )
    named = make(
        resources, served.address, root_ca_pem_path=str(tls_ca_file), server_name="shop.test"
    )
    outcome = await named.check(CheckContext())
    assert outcome.message.startswith(
        'TLS: hostname mismatch: the certificate is not valid for "shop.test"'
    )


async def test_insecure_skip_verify(serve, resources, tls_ca, tmp_path):
    served = await serve(self_signed_context(tmp_path))
    outcome = await make(resources, served.address, insecure_skip_verify=True).check(CheckContext())
    assert outcome.ok, outcome.message
    # Dates are still judged (EaseProbe does the same): an expired certificate is down.
    ended = NOW - timedelta(days=1, hours=1)
    expired = await serve(
        leaf_context(tls_ca, "x.test", not_before=NOW - timedelta(days=9), not_after=ended)
    )
    outcome = await make(resources, expired.address, insecure_skip_verify=True).check(
        CheckContext()
    )
    assert not outcome.ok
    assert outcome.message == f"TLS: certificate has expired (on {ended.date().isoformat()})"


# --- connection problems ---------------------------------------------------------------------


async def test_refused(resources, closed_port):
    with pytest.raises(ProbeError) as caught:
        await make(resources, f"127.0.0.1:{closed_port}").check(CheckContext())
    assert caught.value.message == "connection refused"


async def test_plain_tcp_server(raw_server, resources):
    async def http(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await raw_server(http)
    ctx = CheckContext()
    with pytest.raises(ProbeError) as caught:
        await make(resources, server.address).check(ctx)
    assert caught.value.message == "TLS: the server did not answer with TLS (plain HTTP?)"
    assert ctx.phase == "TLS handshake"


async def test_server_that_hangs_up(raw_server, resources):
    async def hang_up(reader, writer):
        writer.close()

    server = await raw_server(hang_up)
    with pytest.raises(ProbeError) as caught:
        await make(resources, server.address).check(CheckContext())
    assert caught.value.message in (
        "TLS: the server closed the connection",
        "connection reset by peer",
    )


@pytest.mark.slow
async def test_silent_port_times_out_during_the_handshake(raw_server, resources):
    server = await raw_server(hold)
    started = time.monotonic()
    run = await run_check(make(resources, server.address, timeout="1s"))
    assert run.result.message == "timeout after 1s during TLS handshake"
    assert run.result.status.value == "down"
    assert time.monotonic() - started < 2.0
    assert run.straggler is None


# --- resources -------------------------------------------------------------------------------


# The servers in this process close their side of each connection a moment after the
# prober closes its own; garbage is collected on every round.
settle = partial(scenarios.settle, rounds=150, collect=True)


@pytest.mark.slow
async def test_no_descriptor_leaks_after_many_checks(
    serve, raw_server, resources, tls_ca, tls_ca_file, open_fds, closed_port
):
    good = await serve(leaf_context(tls_ca))
    wrong = await serve(leaf_context(tls_ca, "other.test"))
    silent = await raw_server(hold)
    ok = make(resources, good.address, root_ca_pem_path=str(tls_ca_file))
    bad = make(resources, wrong.address, root_ca_pem_path=str(tls_ca_file))
    refused = make(resources, f"127.0.0.1:{closed_port}")
    hung = make(resources, silent.address, timeout="0.05s")
    # Shared contexts (and the CA bundle) are built before counting.
    assert (await ok.check(CheckContext())).ok
    assert not (await bad.check(CheckContext())).ok
    before = open_fds()
    for _ in range(200):
        assert (await ok.check(CheckContext())).ok
    for _ in range(30):
        assert not (await bad.check(CheckContext())).ok  # two connections each
        with pytest.raises(ProbeError):
            await refused.check(CheckContext())
        run = await run_check(hung)
        assert run.result.message.startswith("timeout after 50ms during TLS handshake")
    await settle(open_fds, before)


@pytest.mark.slow
async def test_cancelled_handshake_leaves_no_socket(raw_server, resources, open_fds):
    server = await raw_server(hold)
    prober = make(resources, server.address)
    prober._context(verify=True)  # build the shared context (and read certifi) before counting
    before = open_fds()
    ctx = await scenarios.cancelled(prober, 0.2)
    assert ctx.phase == "TLS handshake"
    await settle(open_fds, before)


def test_contexts_are_shared(resources, tls_ca_file):
    a = make(resources, "127.0.0.1:1", root_ca_pem_path=str(tls_ca_file))
    b = make(resources, "127.0.0.1:2", root_ca_pem_path=str(tls_ca_file))
    c = make(resources, "127.0.0.1:3")
    assert a._context(verify=True) is b._context(verify=True)
    assert a._context(verify=True) is not c._context(verify=True)
    assert a._context(verify=False) is c._context(verify=False)
    assert len(resources) == 3


# --- config ----------------------------------------------------------------------------------


def test_spec_defaults_and_endpoint():
    spec = TLSSpec(name="t", host="example.com:443")
    assert spec.kind == "tls"
    assert spec.alert_expire_before == 7 * 86400
    assert not spec.insecure_skip_verify and not spec.expire_skip_verify
    assert spec.endpoint() == "example.com:443"
    assert TLSSpec(name="t", host="https://u:p@example.com").endpoint() == "https://example.com"
    assert (
        TLSSpec(name="t", host="h:1", alert_expire_before="30d").alert_expire_before == 30 * 86400
    )
    assert TLSSpec(name="t", host="h:1", root_ca_pem="").root_ca_pem is None


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"host": "example.com"}, "missing port"),
        ({"host": "h:1", "alert_expire_before": 7}, 'a bare number is not a duration; write "7s"'),
        ({"host": "h:1", "root_ca_pem": "not a pem"}, "cannot load root_ca_pem"),
        ({"host": "h:1", "root_ca_pem_path": "/nonexistent/ca.pem"}, "file not found"),
        ({"host": "h:1", "server_name": "a b"}, "is not a host name"),
        ({"host": "h:1", "server_name": "a..b"}, "is not a valid host name"),
        ({"host": "a..b:443"}, "is not a valid host name"),
        ({"host": "h:1", "verify": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_spec(keys, needle):
    with pytest.raises(ValidationError) as caught:
        TLSSpec(name="t", **keys)
    assert needle in str(caught.value)


def test_both_root_sources_is_an_error(tls_ca, tls_ca_file):
    with pytest.raises(ValidationError) as caught:
        TLSSpec(
            name="t",
            host="h:1",
            root_ca_pem=tls_ca.cert_pem.bytes().decode(),
            root_ca_pem_path=str(tls_ca_file),
        )
    assert "set root_ca_pem or root_ca_pem_path, not both" in str(caught.value)


def test_pem_path_without_certificates(tmp_path):
    path = tmp_path / "empty.pem"
    path.write_text("nothing here\n")
    with pytest.raises(ValidationError) as caught:
        TLSSpec(name="t", host="h:1", root_ca_pem_path=str(path))
    assert "cannot load root_ca_pem_path" in str(caught.value)


def test_easeprobe_file_loads(tmp_path, tls_ca):
    (tmp_path / "certs").mkdir()
    tls_ca.cert_pem.write_to_path(str(tmp_path / "certs" / "ca.pem"))
    path = tmp_path / "probes.yaml"
    path.write_text(
        "tls:\n"
        "  - name: site\n"
        "    host: www.example.com:443\n"
        "    insecure_skip_verify: false\n"
        "    expire_skip_verify: false\n"
        "    alert_expire_before: 168h\n"
        "    root_ca_pem_path: certs/ca.pem\n"
        "    proxy: socks5://127.0.0.1:1080\n"
        "  - name: inline\n"
        "    host: 127.0.0.1:8443\n"
        "    server_name: svc.test\n"
        "    root_ca_pem: |\n"
        + "".join(f"      {line}\n" for line in tls_ca.cert_pem.bytes().decode().splitlines())
    )
    cfg = load_config(path, environ={})
    site, inline = cfg.probes
    assert isinstance(site, TLSSpec) and isinstance(inline, TLSSpec)
    assert site.kind == "tls"
    assert site.alert_expire_before == 7 * 86400
    assert site.root_ca_pem_path == tmp_path / "certs" / "ca.pem"  # relative to the file
    assert inline.server_name == "svc.test"
    assert [w.message for w in cfg.warnings] == ["accepted for EaseProbe compatibility; not used"]


def test_config_errors_are_located(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "tls:\n"
        "  - name: a\n"
        "    host: h:1\n"
        "    root_ca_pem_path: missing.pem\n"
        "    alert_expire_befor: 1d\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    lines = [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]
    assert lines == [
        f"probes.yaml:4:23: tls[0].root_ca_pem_path: file not found: {tmp_path}/missing.pem",
        'probes.yaml:5:5: tls[0].alert_expire_befor: unknown key "alert_expire_befor" '
        '(did you mean "alert_expire_before"?)',
    ]


# --- typed readings: the certificate expiry metrics (and conditions) read -----------------------


def shown_expiry(details: Mapping[str, Any]) -> float:
    """The earliest expiry the details show (what the metrics used to parse out of them)."""
    shown = [details[key] for key in ("not_after", "earliest_not_after") if key in details]
    return min(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() for text in shown)


async def test_cert_expiry_is_a_typed_reading(serve, resources, tls_ca, tls_ca_file, tmp_path):
    ends = NOW + timedelta(days=90)
    valid = await serve(leaf_context(tls_ca, not_after=ends))
    outcome = await make(resources, valid.address, root_ca_pem_path=str(tls_ca_file)).check(
        CheckContext()
    )
    assert outcome.ok, outcome.message
    assert outcome.cert_expiry == shown_expiry(outcome.details)
    assert outcome.cert_expiry == ends.replace(microsecond=0).timestamp()
    # Judged down, or read over the second connection after a failed verification.
    ended = NOW - timedelta(days=3)
    expired = leaf_context(tls_ca, not_before=NOW - timedelta(days=30), not_after=ended)
    for context in (expired, self_signed_context(tmp_path)):
        outcome = await failed_check(serve, resources, context, root_ca_pem_path=str(tls_ca_file))
        assert outcome.cert_expiry == shown_expiry(outcome.details), outcome.message
    # Dates judged without verification (down), or not judged at all (up).
    for keys, ok in (({"insecure_skip_verify": True}, False), ({"expire_skip_verify": True}, True)):
        skipped = await serve(expired)
        prober = make(resources, skipped.address, root_ca_pem_path=str(tls_ca_file), **keys)
        outcome = await prober.check(CheckContext())
        assert outcome.ok is ok, outcome.message
        assert outcome.cert_expiry == ended.replace(microsecond=0).timestamp()


async def test_cert_expiry_of_the_chain_is_the_earliest(
    serve, resources, tls_ca, tls_ca_file, tmp_path
):
    outcome = await failed_check(
        serve,
        resources,
        chain_with_expired_intermediate(tls_ca, tmp_path),
        root_ca_pem_path=str(tls_ca_file),
    )
    assert outcome.cert_expiry == shown_expiry(outcome.details)
    leaf = shown_expiry({"not_after": outcome.details["not_after"]})
    if sys.version_info >= (3, 13):  # the intermediate is read too, and it ended yesterday
        assert outcome.cert_expiry is not None and outcome.cert_expiry < leaf
    # The earliest of a chain, whichever certificate it is (not only the leaf's).
    late, early = (_Cert("CN=a", "CN=b", NOW, NOW + timedelta(days=d), ()) for d in (90, 9))
    assert _expiry([late, early]) == (NOW + timedelta(days=9)).replace(microsecond=0).timestamp()
    assert _expiry([]) is None


async def test_no_certificate_read_gives_no_expiry(resources, closed_port):
    run = await run_check(make(resources, f"127.0.0.1:{closed_port}"))
    assert run.result.status is Status.DOWN
    assert (run.result.cert_expiry, run.result.http_status) == (None, None)


async def test_probe_ssl_earliest_cert_expiry_comes_from_a_real_check(
    serve, resources, tls_ca, tls_ca_file
):
    served = await serve(leaf_context(tls_ca, not_after=NOW + timedelta(days=30)))
    run = await run_check(make(resources, served.address, root_ca_pem_path=str(tls_ca_file)))
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, [SeriesLabels("tls", "tls", served.address, {})])
    tracker = StatusTracker()
    metrics.attach(tracker)
    tracker.observe(run.result, Policy(interval=60))
    [family] = [
        family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        if family.name == "probe_ssl_earliest_cert_expiry"
    ]
    assert [sample.value for sample in family.samples] == [shown_expiry(run.result.details)]


# --- conditions: [CERTIFICATE_EXPIRATION] (judged by the runner, through run_check) -----------


async def test_certificate_expiration_condition(serve, resources, tls_ca, tls_ca_file):
    served = await serve(leaf_context(tls_ca, not_after=NOW + timedelta(days=30)))

    async def judged(condition: str) -> Any:
        prober = make(
            resources, served.address, root_ca_pem_path=str(tls_ca_file), conditions=[condition]
        )
        return (await run_check(prober)).result

    up = await judged("[CERTIFICATE_EXPIRATION] > 48h")
    assert up.status is Status.UP, up.message
    down = await judged("[CERTIFICATE_EXPIRATION] > 60d")
    assert down.status is Status.DOWN
    # The time left, as people read it: the certificate ends 30 days after NOW, a moment ago.
    assert down.message == "condition failed: [CERTIFICATE_EXPIRATION] (29d23h) > 60d"
    ip = await judged("[IP] == 127.0.0.1")
    assert ip.status is Status.UP, ip.message


async def test_certificate_expiration_is_read_from_a_certificate_that_fails(
    serve, resources, tls_ca, tls_ca_file
):
    # Expired: verification fails, the certificate is read over the second connection.
    ended = NOW - timedelta(days=3)
    expired = leaf_context(tls_ca, not_before=NOW - timedelta(days=30), not_after=ended)
    served = await serve(expired)
    prober = make(
        resources,
        served.address,
        root_ca_pem_path=str(tls_ca_file),
        conditions=["[CERTIFICATE_EXPIRATION] < 0", "[CERTIFICATE_EXPIRATION] > 1h"],
    )
    result = (await run_check(prober)).result
    assert result.status is Status.DOWN  # the prober's verdict stands, the conditions add
    assert result.message.startswith("TLS: certificate has expired (on ")
    assert result.message.endswith("; condition failed: [CERTIFICATE_EXPIRATION] (expired) > 1h")
    assert result.details["failed_conditions"] == ["[CERTIFICATE_EXPIRATION] (expired) > 1h"]


def test_tls_placeholders_at_load(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "tls:\n"
        "  - name: site\n"
        "    host: 127.0.0.1:443\n"
        "    conditions: ['[CERTIFICATE_EXPIRATION] > 48h', '[STATUS] == 200']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert "tls[0].conditions[1]: [STATUS] is not a placeholder of tls probes" in str(problem)
