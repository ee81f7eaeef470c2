"""gRPC probes (`grpc:` section): the standard health checking protocol,
`grpc.health.v1.Health/Check`, as Kubernetes' gRPC probes, grpc_health_probe, Gatus and
blackbox_exporter's `grpc` module ask it.

    resolve -> connect (TCP, TLS, HTTP/2 settings) -> health check

SERVING is up; NOT_SERVING, UNKNOWN and SERVICE_UNKNOWN (the server does not know `service`:
`Check` answers NOT_FOUND, as the protocol says) are down with that word in the message.
`[HEALTH]` reads the status word for conditions (`[HEALTH] == SERVING`), set whenever the
server answered one.

Every check builds a channel of its own (grpc.aio, a local subchannel pool: nothing is shared
with another check or probe, so each check opens a connection, as a new client would) and
closes it in `finally`, on every path, cancellation included. The name is resolved by our
resolver (`_net.resolve`, bounded, no DNS for an IP literal) and gRPC is handed the address,
so gRPC's own resolver (c-ares) never runs; `:authority` and the TLS name stay the configured
host. gRPC's HTTP proxy support is off (an `http_proxy` in the environment must not reroute a
health check), and so are its retries (one check is one attempt).

TLS: `tls: true`, or any of `ca` (the CA file to trust instead of the system's and certifi's
roots), `cert` + `key` (a client certificate). gRPC's Python library cannot skip certificate
verification, so `insecure` is refused at load with a message that says so.

Messages: gRPC's status codes and error strings are mapped in `_describe()`:
`connection refused`, `TLS: certificate verify failed`, `the server does not implement the
gRPC health service`, `authentication failed (UNAUTHENTICATED)`, ...
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any, ClassVar

import certifi

# gRPC's core logs every failed handshake or connection to stderr itself, in its own format;
# our messages and log already say it. Set before grpc is first imported (a user's own
# GRPC_VERBOSITY wins).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field, field_validator, model_validator

from probe.config.models import ConfigPath, ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._net import format_address, redact_url, resolve, split_host_port
from probe.probers.base import Prober, SharedResources
from probe.text import printable
from probe.tlsconf import check_cert_and_key, existing_file

__all__ = ["GRPCProber", "GRPCSpec"]

# What a metadata key may be (gRPC's rule: lowercase ASCII letters, digits, "-", "_", ".").
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")

# Channel options of every check's channel (see the module's docstring for why).
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
)

_STATUS_NAMES = {
    health_pb2.HealthCheckResponse.UNKNOWN: "UNKNOWN",
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN",
}

# Connectivity states after which waiting longer for the connection tells nothing more.
_SETTLED = frozenset({grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE})


class GRPCSpec(ProbeSpec):
    """A `grpc:` entry: `host` (host:port), `service` (the name asked about; "" means the
    server as a whole), `tls`, `ca`, `cert`/`key`, and `metadata` sent with the call."""

    kind: ClassVar[str] = "grpc"
    # [HEALTH]: the serving status the server answered (SERVING, NOT_SERVING, ...).
    condition_placeholders: ClassVar[frozenset[str]] = frozenset({"HEALTH"})

    host: str
    service: str = ""
    tls: bool = False
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None
    insecure: bool = False
    # Sent with the call (an `authorization` token, say): never shown (probe.logs finds
    # credential-named keys' values and masks them).
    metadata: dict[str, str] = Field(default_factory=dict, repr=False)

    _existing_file = field_validator("ca", "cert", "key")(existing_file)

    @field_validator("ca")
    @classmethod
    def _valid_ca(cls, value: Path | None) -> Path | None:
        # gRPC reads the file only when a channel is made, and then says only that the
        # handshake failed: a file with no certificate is better refused here.
        if value is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=value)
            except (OSError, ssl.SSLError):
                raise ValueError(f"ca: no CA certificate could be read from {value}") from None
        return value

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        value = value.strip()
        if "://" in value:
            raise ValueError(f'host: "{redact_url(value)}" is a URL; write host:port')
        split_host_port(value)  # raises ValueError with a config-fit message
        return value

    @field_validator("metadata")
    @classmethod
    def _valid_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for raw_key, text in value.items():
            key = raw_key.strip().lower()  # gRPC metadata keys are lowercase, as HTTP/2's
            if not _METADATA_KEY.fullmatch(key):
                raise ValueError(
                    f'metadata: "{printable(raw_key, 60)}" is not a metadata key'
                    " (letters, digits, '-', '_' and '.')"
                )
            if key.startswith("grpc-"):
                raise ValueError(f'metadata: "{key}" is reserved by gRPC')
            if key.endswith("-bin"):
                raise ValueError(f'metadata: "{key}" is a binary key; only text values are sent')
            if any(ord(c) < 0x20 or ord(c) > 0x7E for c in text):
                raise ValueError(f'metadata: the value of "{key}" must be printable ASCII')
            checked[key] = text
        return checked

    @model_validator(mode="after")
    def _valid_tls(self) -> GRPCSpec:
        if self.insecure:
            raise ValueError(
                "insecure: gRPC's Python library cannot skip certificate verification;"
                " give the CA that signed the server's certificate in ca"
            )
        check_cert_and_key(self.cert, self.key)
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca is not None or self.cert is not None

    def endpoint(self) -> str:
        return self.host


class GRPCProber(Prober[GRPCSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = GRPCSpec

    def __init__(self, spec: GRPCSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port = split_host_port(spec.host)
        self._metadata = tuple(spec.metadata.items())
        self._request = health_pb2.HealthCheckRequest(service=spec.service)
        self._credentials: grpc.ChannelCredentials | None = None
        self._attempt_ms = math.ceil(spec.timeout * 1100) + 500

    def prepare(self) -> None:
        self._tls()

    def _tls(self) -> grpc.ChannelCredentials | None:
        """The channel credentials, built on first use (a bad file is a failed check)."""
        if not self.spec.uses_tls:
            return None
        if self._credentials is None:
            spec = self.spec
            try:
                roots = _read(spec.ca) if spec.ca is not None else _default_roots()
                key = _read(spec.key) if spec.key is not None else None
                chain = _read(spec.cert) if spec.cert is not None else None
                self._credentials = grpc.ssl_channel_credentials(roots, key, chain)
            except OSError as exc:
                raise ProbeError(
                    f"TLS: cannot load the certificates: {exc.strerror or exc}"
                ) from None
        return self._credentials

    async def check(self, ctx: CheckContext) -> Outcome:
        credentials = self._tls()
        ctx.phase = "resolve"
        addresses = await resolve(self._host, self._port)
        family, sockaddr = addresses[0]
        peer = format_address(sockaddr)
        ctx.details["peer"] = peer
        ctx.facts["IP"] = str(sockaddr[0])
        # The address, not the name: gRPC connects where our resolver said.
        scheme = "ipv6" if family == socket.AF_INET6 else "ipv4"
        target = f"{scheme}:{peer}"
        options = [
            *_CHANNEL_OPTIONS,
            ("grpc.default_authority", self.spec.host),
            # gRPC's core does not abandon a connection attempt when its channel is closed:
            # the attempt lives until its own deadline, at least this long (20 s by default).
            # A little past the probe's timeout: the scheduler's timeout always strikes first
            # (one message, "timeout after 5s during connect"), and the socket of a timed-out
            # check is gone soon after.
            ("grpc.min_reconnect_backoff_ms", self._attempt_ms),
        ]
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=options)
        else:
            options.append(("grpc.ssl_target_name_override", self._host))
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        try:
            ctx.phase = "connect"
            state = channel.get_state(try_to_connect=True)
            while state not in _SETTLED:
                await channel.wait_for_state_change(state)
                state = channel.get_state(try_to_connect=True)
            # On a failed connection the call below fails at once with gRPC's reason.
            ctx.phase = "health check"
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(self._request, metadata=self._metadata or None)
        except grpc.aio.AioRpcError as exc:
            health = _health_of_error(exc)
            if health is not None:
                ctx.facts["HEALTH"] = health
                return Outcome(ok=False, message=self._status_message(health), details=ctx.details)
            raise ProbeError(_describe(exc), **ctx.details) from None
        finally:
            # No await happens before the channel is closed: close() with no grace cancels
            # the calls and destroys the channel synchronously, so a cancelled check too
            # leaves no connection behind.
            await channel.close()

        health = _STATUS_NAMES.get(reply.status, "UNKNOWN")
        ctx.facts["HEALTH"] = health
        details = {**ctx.details, "health": health}
        ok = health == "SERVING"
        return Outcome(ok=ok, message=self._status_message(health), details=details)

    def _status_message(self, health: str) -> str:
        what = f'service "{printable(self.spec.service, 80)}"' if self.spec.service else "server"
        if health == "SERVING":
            return f"{what} is SERVING"
        if health == "SERVICE_UNKNOWN":
            return f"{what} is unknown to the server (SERVICE_UNKNOWN)"
        return f"{what} is {health}"


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _default_roots() -> bytes:
    """What this machine trusts plus Mozilla's roots (certifi), as PEM: the rule every other
    prober follows (probe.tlsconf.trust_default_roots). gRPC otherwise trusts only its own
    bundled roots, which miss a company's CA installed on the machine."""
    pem = Path(certifi.where()).read_bytes()
    system = ssl.get_default_verify_paths().cafile
    if system:
        with contextlib.suppress(OSError):  # no system bundle: certifi's roots alone
            pem = Path(system).read_bytes() + b"\n" + pem
    return pem


def _health_of_error(exc: grpc.aio.AioRpcError) -> str | None:
    """SERVICE_UNKNOWN for the NOT_FOUND `Check` answers for a service it does not know."""
    if exc.code() == grpc.StatusCode.NOT_FOUND:
        return "SERVICE_UNKNOWN"
    return None


# Words of gRPC's connection errors (its debug strings), and what they mean to a user.
_CONNECT_ERRORS = (
    ("connection refused", "connection refused"),
    ("connection reset", "connection reset by peer"),
    ("no route to host", "host unreachable"),
    ("network is unreachable", "network unreachable"),
    ("certificate_verify_failed", "TLS: certificate verify failed"),
    ("certificate verify failed", "TLS: certificate verify failed"),
    ("peer name", "TLS: hostname mismatch"),
    ("wrong_version_number", "TLS: the server did not answer with TLS"),
    ("wrong version number", "TLS: the server did not answer with TLS"),
    ("ssl handshake failed", "TLS: handshake failed"),
    ("handshake", "TLS: handshake failed"),
    ("socket closed", "the server closed the connection"),
    ("connection closed", "the server closed the connection"),
    ("end of tcp stream", "the server closed the connection"),
)

_CODE_MESSAGES = {
    grpc.StatusCode.UNIMPLEMENTED: "the server does not implement the gRPC health service",
    grpc.StatusCode.UNAUTHENTICATED: "authentication failed (UNAUTHENTICATED)",
    grpc.StatusCode.PERMISSION_DENIED: "permission denied (PERMISSION_DENIED)",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the server is overloaded (RESOURCE_EXHAUSTED)",
}


def _describe(exc: grpc.aio.AioRpcError) -> str:
    """The one place gRPC errors become messages."""
    code = exc.code()
    known = _CODE_MESSAGES.get(code)
    if known is not None:
        return known
    text = f"{exc.details() or ''} {exc.debug_error_string() or ''}".lower()
    if code == grpc.StatusCode.UNAVAILABLE:
        for words, message in _CONNECT_ERRORS:
            if words in text:
                return message
        return f"unavailable: {printable(exc.details() or 'no reason given', 120)}"
    name = code.name if code is not None else "UNKNOWN"
    details = printable(exc.details() or "", 120)
    return f"health check failed: {name}" + (f" ({details})" if details else "")
