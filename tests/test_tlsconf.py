"""One trust rule for every TLS client (probers and notifiers): the system's roots and
Mozilla's (certifi) by default, only `ca` when set, nothing when `insecure`."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import trustme

from probe.tlsconf import client_context


def roots(context: ssl.SSLContext) -> int:
    return context.cert_store_stats()["x509_ca"]


def test_default_roots_include_certifi_and_the_system_store():
    context = client_context(ca=None, cert=None, key=None, insecure=False)
    bundle = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bundle.load_verify_locations(cafile=certifi.where())
    assert roots(bundle) > 100
    assert roots(context) >= roots(bundle)  # Mozilla's, plus whatever the system adds
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_ca_replaces_the_default_roots(tmp_path: Path):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = client_context(ca=ca_file, cert=None, key=None, insecure=False)
    assert roots(context) == 1
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_client_certificate_and_insecure(tmp_path: Path):
    ca = trustme.CA()
    client = ca.issue_cert("client@example.test")
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    context = client_context(ca=None, cert=cert_file, key=key_file, insecure=True)
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname
    assert roots(context) == 0  # verifying nothing, it loads no roots either
