"""TLS probes: a TLS handshake with `host`, the certificate chain verified, and the
certificates' validity dates judged against `alert_expire_before`.

One check is one TCP connection and one handshake (with SNI: `server_name`, else the host's
name) made with a verifying context, unless `insecure_skip_verify`. When verification fails, a
second connection is made with a non-verifying context, only to read the certificate the
message names (`TLS: certificate has expired (on 2026-01-01)`).

What is checked:
- the chain, by OpenSSL, during the handshake: a trusted root (`root_ca_pem_path` or
  `root_ca_pem` replace the system's roots, as in EaseProbe), the signatures, the validity
  dates of every certificate in the chain (not with `expire_skip_verify`) and the host name;
- the validity dates against `alert_expire_before` (not with `expire_skip_verify`): on Python
  3.11 and 3.12 of the leaf certificate only, the one peer certificate their ssl module gives
  without private APIs (`getpeercert(binary_form=True)`); on Python 3.13+ of every certificate
  in the verified chain (leaf to trusted root), or with `insecure_skip_verify` of every
  certificate the server sent (`get_verified_chain()` / `get_unverified_chain()`).
  Certificates are parsed with `cryptography`.

The handshake runs over `ssl.MemoryBIO`s on a socket this module owns, so every path (failure,
timeout, cancellation) closes the socket at once, with nothing left to await.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import socket
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from cryptography import x509
from pydantic import Field, field_validator, model_validator

from probe.config.models import ConfigPath, Duration, ExpiryWarnings, ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.durations import format_duration
from probe.errors import ProbeError
from probe.probers._connect import NOLINGER, connect_tcp
from probe.probers._net import describe_os_error, plain_error, redact_url, split_host_port
from probe.probers.base import Prober, SharedResources
from probe.text import printable
from probe.tlsconf import trust_default_roots

__all__ = ["DEFAULT_ALERT_EXPIRE_BEFORE", "TLSProber", "TLSSpec"]

DEFAULT_ALERT_EXPIRE_BEFORE = 7 * 86400.0

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (1.1.0+), which Python's ssl.VerifyFlags does not name:
# verify the chain without its validity dates (`expire_skip_verify`).
_X509_V_FLAG_NO_CHECK_TIME = 0x200000

# OpenSSL X509_V_ERR_* codes the messages treat specially.
_ERR_NOT_YET_VALID = 9
_ERR_EXPIRED = 10
_ERR_HOSTNAME_MISMATCH = 62
_ERR_IP_MISMATCH = 64

_READ_SIZE = 65536


class TLSSpec(ProbeSpec):
    """A `tls:` entry: EaseProbe's keys plus `server_name` (the SNI and the name verified)."""

    kind: ClassVar[str] = "tls"
    # The runner derives it (ms left) from the Outcome's cert_expiry, set whenever a
    # certificate was read: also when verification or the dates fail the check.
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"CERTIFICATE_EXPIRATION"})
    # EaseProbe can reach TLS services through a SOCKS5 proxy; we do not (yet).
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"proxy"})

    host: str
    insecure_skip_verify: bool = False
    expire_skip_verify: bool = False
    alert_expire_before: Duration = DEFAULT_ALERT_EXPIRE_BEFORE
    # A notification as the certificate's remaining time crosses each (ours).
    expiry_warnings: ExpiryWarnings = Field(default_factory=list)
    root_ca_pem_path: ConfigPath | None = None
    root_ca_pem: str | None = Field(default=None, repr=False)
    server_name: str | None = None
    # Close with a reset (SO_LINGER 0), leaving no TIME_WAIT behind (EaseProbe's key).
    nolinger: bool = False

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        split_host_port(value)  # raises ValueError with a config-fit message
        return value.strip()

    @field_validator("server_name")
    @classmethod
    def _valid_server_name(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip()
        _check_name(value)
        return value

    @field_validator("root_ca_pem")
    @classmethod
    def _valid_pem(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # EaseProbe's "" means "the system's roots"
        _load_roots(cadata=value)
        return value

    @field_validator("root_ca_pem_path")
    @classmethod
    def _valid_pem_path(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        _load_roots(cafile=value)
        return value

    @model_validator(mode="after")
    def _one_root_source(self) -> TLSSpec:
        if self.root_ca_pem is not None and self.root_ca_pem_path is not None:
            raise ValueError("set root_ca_pem or root_ca_pem_path, not both")
        if self.server_name is None:
            host = split_host_port(self.host)[0]
            if not _is_ip(host):
                _check_name(host)
        return self

    def endpoint(self) -> str:
        return redact_url(self.host) if "://" in self.host else self.host

    def expiry_warning_thresholds(self) -> tuple[float, ...]:
        return tuple(self.expiry_warnings)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _check_name(name: str) -> None:
    """A name fit for SNI and certificate matching, or ValueError."""
    if any(c in name for c in " /:@[]\\\t\r\n") or name.startswith("."):
        raise ValueError(f'"{name[:60]}" is not a host name')
    try:
        name.encode("idna")
    except UnicodeError:
        raise ValueError(
            f'"{name[:60]}" is not a valid host name (empty or too long label)'
        ) from None


def _load_roots(*, cafile: Path | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A verifying context trusting only the given roots; ValueError when they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=cafile, cadata=cadata)
    except (ssl.SSLError, OSError, ValueError) as exc:
        what = "root_ca_pem_path" if cafile is not None else "root_ca_pem"
        raise ValueError(f"cannot load {what}: {_ssl_reason(exc)}") from None
    if not context.get_ca_certs():
        raise ValueError("no CA certificate found in the PEM data")
    return context


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Roots(NamedTuple):
    """What makes two probes' verifying contexts interchangeable (the shared context's key)."""

    cafile: str | None
    cadata: str | None
    check_time: bool


def _verifying_context(roots: _Roots) -> ssl.SSLContext:
    if roots.cafile is None and roots.cadata is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        trust_default_roots(context)
    else:
        context = ssl.create_default_context(cafile=roots.cafile, cadata=roots.cadata)
    if not roots.check_time:
        context.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
    return context


def _reading_context() -> ssl.SSLContext:
    """A context that verifies nothing: for reading the certificates the server sends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Cert(NamedTuple):
    """What a check reports of one certificate."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses

    @classmethod
    def parse(cls, der: bytes) -> _Cert:
        cert = x509.load_der_x509_certificate(der)
        names: list[str] = []
        with contextlib.suppress(x509.ExtensionNotFound, ValueError):
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names.extend(_shown(name) for name in san.get_values_for_type(x509.DNSName))
            names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        return cls(
            subject=_shown(_name(cert.subject)),
            issuer=_shown(_name(cert.issuer)),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            names=tuple(names),
        )

    def days_left(self, now: datetime) -> int:
        """Whole days until `not_after` (negative once expired), rounded towards zero."""
        return int((self.not_after - now).total_seconds() / 86400)


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:  # an attribute cryptography cannot render
        return "<unreadable name>"


def _shown(text: str, limit: int = 200) -> str:
    """A server's text as we show it: one line of printable characters, bounded."""
    return printable(text, limit)


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handshake(NamedTuple):
    """What one completed handshake gives: the peer's certificates (leaf first)."""

    certs: list[_Cert]
    tls_version: str | None
    cipher: str | None


class TLSProber(Prober[TLSSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = TLSSpec

    def __init__(self, spec: TLSSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port = split_host_port(spec.host)
        # The name sent as SNI and verified against the certificate (an IP address is only
        # verified: it is never sent as SNI). A scoped IPv6 address loses its scope here.
        self._server_name = spec.server_name or self._host.split("%", 1)[0]
        self._roots = _Roots(
            cafile=None if spec.root_ca_pem_path is None else str(spec.root_ca_pem_path),
            cadata=spec.root_ca_pem,
            check_time=not spec.expire_skip_verify,
        )

    def prepare(self) -> None:
        self._context(verify=True)

    def _context(self, verify: bool) -> ssl.SSLContext:
        if not verify:
            return self.resources.get_or_create(("tls.read",), _reading_context)
        roots = self._roots
        try:
            return self.resources.get_or_create(
                ("tls.verify", roots), lambda: _verifying_context(roots)
            )
        except (ssl.SSLError, OSError, ValueError) as exc:  # the CA file changed since loading
            reason = _ssl_reason(exc)
            raise ProbeError(f"TLS: cannot load the root certificates: {reason}") from None

    async def check(self, ctx: CheckContext) -> Outcome:
        verify = not self.spec.insecure_skip_verify
        try:
            shake = await self._handshake(ctx, self._context(verify))
        except ssl.SSLCertVerificationError as exc:
            return await self._verification_failed(ctx, exc)
        except OSError as exc:  # ssl.SSLError included
            raise ProbeError(_describe(exc), **ctx.details) from None
        return self._judge(ctx, shake)

    async def _verification_failed(
        self, ctx: CheckContext, exc: ssl.SSLCertVerificationError
    ) -> Outcome:
        """Read the certificate over a second, non-verifying connection, for the message."""
        details = dict(ctx.details)
        try:
            shake = await self._handshake(ctx, self._context(verify=False))
        except OSError:
            shake = None  # the server went away in between: say what verification said
        certs = shake.certs if shake is not None else []
        if shake is not None:
            details.update(self._details(shake, datetime.now(UTC)))
        details["verify_error"] = exc.verify_message or "certificate verification failed"
        message = _describe(exc, certs=certs, server_name=self._server_name)
        return Outcome(ok=False, message=message, details=details, cert_expiry=_expiry(certs))

    def _judge(self, ctx: CheckContext, shake: _Handshake) -> Outcome:
        return replace(self._verdict(ctx, shake), cert_expiry=_expiry(shake.certs))

    def _verdict(self, ctx: CheckContext, shake: _Handshake) -> Outcome:
        now = datetime.now(UTC)
        details = {**ctx.details, **self._details(shake, now)}
        if not shake.certs:
            return Outcome(ok=False, message="TLS: the server sent no certificate", details=details)
        leaf = shake.certs[0]
        if self.spec.expire_skip_verify:
            if leaf.not_after <= now:
                message = f"certificate expired on {_date(leaf.not_after)} (expire_skip_verify)"
            else:
                message = _expires_in(leaf, now)
            return Outcome(ok=True, message=message, details=details)
        for index, cert in enumerate(shake.certs):
            which = _which(cert, index)
            if cert.not_after <= now:
                message = f"TLS: {which} has expired (on {_date(cert.not_after)})"
                return Outcome(ok=False, message=message, details=details)
            if cert.not_before > now:
                message = f"TLS: {which} is not yet valid (valid from {_date(cert.not_before)})"
                return Outcome(ok=False, message=message, details=details)
        window = self.spec.alert_expire_before
        soonest = min(shake.certs, key=lambda cert: cert.not_after)
        message = _expires_in(soonest, now, leaf=soonest is leaf)
        if window > 0 and (soonest.not_after - now).total_seconds() < window:
            details["alert_expire_before"] = format_duration(window)
            return Outcome(ok=False, message=message, details=details)
        return Outcome(ok=True, message=message, details=details)

    def _details(self, shake: _Handshake, now: datetime) -> dict[str, Any]:
        details: dict[str, Any] = {
            "server_name": self._server_name,
            "tls_version": shake.tls_version,
            "cipher": shake.cipher,
            "certificates_checked": len(shake.certs),
        }
        if shake.certs:
            leaf = shake.certs[0]
            details.update(
                subject=leaf.subject,
                issuer=leaf.issuer,
                not_before=_iso(leaf.not_before),
                not_after=_iso(leaf.not_after),
                days_left=leaf.days_left(now),
            )
        if len(shake.certs) > 1:
            soonest = min(shake.certs, key=lambda cert: cert.not_after)
            details["earliest_not_after"] = _iso(soonest.not_after)
            details["earliest_subject"] = soonest.subject
        return details

    async def _handshake(self, ctx: CheckContext, context: ssl.SSLContext) -> _Handshake:
        """Connect, shake hands and hang up; the socket is closed on every path."""
        options = (NOLINGER,) if self.spec.nolinger else ()
        sock = await connect_tcp(self._host, self._port, ctx, options=options)
        loop = asyncio.get_running_loop()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls: ssl.SSLObject | None = None
        try:
            ctx.phase = "TLS handshake"
            tls = context.wrap_bio(incoming, outgoing, server_hostname=self._server_name)
            await _drive(loop, sock, tls, incoming, outgoing)
            return _Handshake(
                certs=_peer_certs(tls, verified=context.verify_mode != ssl.CERT_NONE),
                tls_version=tls.version(),
                cipher=(tls.cipher() or (None,))[0],
            )
        finally:
            # No await here: this runs on cancellation too (the scheduler's hard timeout).
            _hang_up(sock, tls, outgoing)


async def _drive(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    tls: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
) -> None:
    """Run the handshake to completion, moving bytes between the BIOs and `sock`."""
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        else:
            await _flush(loop, sock, outgoing)
            return
        await _flush(loop, sock, outgoing)
        data = await loop.sock_recv(sock, _READ_SIZE)
        if data:
            incoming.write(data)
        else:
            incoming.write_eof()  # the next step raises SSLEOFError


async def _flush(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, outgoing: ssl.MemoryBIO
) -> None:
    data = outgoing.read()
    if data:
        await loop.sock_sendall(sock, data)


def _peer_certs(tls: ssl.SSLObject, *, verified: bool) -> list[_Cert]:
    """The peer's certificates, leaf first.

    On Python 3.13+: the chain OpenSSL verified (leaf to trusted root) when verifying, else
    every certificate the server sent. Before 3.13 the ssl module gives the leaf alone.
    """
    name = "get_verified_chain" if verified else "get_unverified_chain"
    chain_of: Callable[[], list[Any] | None] | None = getattr(tls, name, None)
    ders: list[bytes] = []
    if chain_of is not None:
        items = chain_of() or []
        if all(isinstance(item, bytes | bytearray) for item in items):
            ders = [bytes(item) for item in items]
    if not ders:
        leaf = tls.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    return [_Cert.parse(der) for der in ders]


def _hang_up(sock: socket.socket, tls: ssl.SSLObject | None, outgoing: ssl.MemoryBIO) -> None:
    """Say goodbye (close_notify) if the handshake finished, then close the socket at once.

    Nothing is awaited: whatever the server has not read, or we have not, is dropped.
    """
    try:
        if tls is not None:
            # Writes close_notify; OpenSSL then wants the peer's, which we do not wait for.
            with contextlib.suppress(ssl.SSLError, ValueError):
                tls.unwrap()
        with contextlib.suppress(OSError):
            data = outgoing.read()
            if data:
                sock.send(data)
            # Reading what already arrived (session tickets) lets the close be a FIN, not a
            # reset; the socket is non-blocking, so this stops at the first empty read.
            while sock.recv(_READ_SIZE):
                pass
    finally:
        sock.close()


def _expiry(certs: list[_Cert]) -> float | None:
    """The earliest notAfter of `certs` in Unix seconds (whole seconds, as `details` shows
    it), None without certificates."""
    if not certs:
        return None
    soonest = min(cert.not_after for cert in certs)
    return soonest.replace(microsecond=0).timestamp()


def _which(cert: _Cert, index: int) -> str:
    """How a message names a certificate: the leaf is "certificate"."""
    return "certificate" if index == 0 else f'certificate "{cert.subject}" in the chain'


def _expires_in(cert: _Cert, now: datetime, *, leaf: bool = True) -> str:
    which = _which(cert, 0 if leaf else 1)
    seconds = (cert.not_after - now).total_seconds()
    days = math.floor(seconds / 86400)
    if days < 1:
        when = "in less than a day"
    elif days == 1:
        when = "in 1 day"
    else:
        when = f"in {days} days"
    return f"{which} expires {when} ({_date(cert.not_after)})"


# --- the one place exceptions become messages -----------------------------------------------


def _describe(
    exc: BaseException, *, certs: list[_Cert] | None = None, server_name: str = ""
) -> str:
    """A short message for a connection, handshake or verification failure; `certs` are the
    peer's certificates (leaf first) when they could be read."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        certs = certs or []
        now = datetime.now(UTC)
        code = exc.verify_code
        if code == _ERR_EXPIRED:
            for index, cert in enumerate(certs):
                if cert.not_after <= now:
                    return f"TLS: {_which(cert, index)} has expired (on {_date(cert.not_after)})"
            # Not one we could read (before Python 3.13 only the leaf can be), or none at all.
            if certs:
                return "TLS: a certificate in the chain has expired"
            return "TLS: certificate has expired"
        if code == _ERR_NOT_YET_VALID:
            for index, cert in enumerate(certs):
                if cert.not_before > now:
                    since = _date(cert.not_before)
                    return f"TLS: {_which(cert, index)} is not yet valid (valid from {since})"
            if certs:
                return "TLS: a certificate in the chain is not yet valid"
            return "TLS: certificate is not yet valid"
        if code in (_ERR_HOSTNAME_MISMATCH, _ERR_IP_MISMATCH):
            message = f'TLS: hostname mismatch: the certificate is not valid for "{server_name}"'
            names = certs[0].names if certs else ()
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                message += f" (it is for {shown})"
            return message
    known = describe_os_error(exc)
    if known is not None:
        return known
    return f"TLS: {plain_error(exc)}"
