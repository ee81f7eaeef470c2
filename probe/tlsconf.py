"""The TLS client keys of a config entry (`ca`, `cert`, `key`, `insecure`): what the probers'
and the notifiers' specs check the same way.

A neutral module: probers and notifiers both import it, and it imports neither of them
(docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

__all__ = [
    "check_cert_and_key",
    "client_context",
    "configure_client",
    "existing_file",
    "trust_default_roots",
]


def existing_file(value: Path | None) -> Path | None:
    """A `ca`, `cert` or `key` path, checked when the config loads rather than at the first
    connection: a missing file is a config error, not a failed check or a lost alert."""
    if value is not None and not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


def check_cert_and_key(cert: Path | None, key: Path | None) -> None:
    """A client certificate is no use without its key, nor a key without its certificate."""
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together: set both or neither")


def trust_default_roots(context: ssl.SSLContext) -> None:
    """Trust what this machine trusts (the system store, where a company's own CA is
    installed) and Mozilla's roots (certifi, so a slim container without a store still
    verifies public services). Every prober and notifier uses this one rule."""
    context.load_default_certs()
    context.load_verify_locations(cafile=certifi.where())


def client_context(
    *, ca: Path | str | None, cert: Path | str | None, key: Path | str | None, insecure: bool
) -> ssl.SSLContext:
    """The client SSLContext of a config entry (see `configure_client`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    configure_client(context, ca=ca, cert=cert, key=key, insecure=insecure)
    return context


def configure_client(
    context: ssl.SSLContext,
    *,
    ca: Path | str | None,
    cert: Path | str | None,
    key: Path | str | None,
    insecure: bool,
) -> None:
    """Set up a new PROTOCOL_TLS_CLIENT context (or a subclass's, as the MQTT prober's that
    reports its handshake): `insecure` verifies nothing; `ca` replaces the default roots (as
    in EaseProbe: a private CA is what one trusts there); `cert`/`key` present a client
    certificate."""
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        context.load_verify_locations(cafile=str(ca))
    else:
        trust_default_roots(context)
    if cert is not None:
        context.load_cert_chain(cert, key)
