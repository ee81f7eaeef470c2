"""The `client:` section: one spec shape for every native-client driver.

EaseProbe's keys (`driver`, `host`, `username`, `password`, `data`, `ca`/`cert`/`key`/`insecure`)
plus ours: `dsn` (a connection URI instead of host/username/password), `database`, `query` with
`expect`. Each driver module subclasses `ClientSpec`, sets `kind` to its driver name, and
validates what its driver needs (which `data` form it takes, the DSN scheme, ...).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from probe.config.models import ConfigPath, ProbeSpec
from probe.errors import ProbeError
from probe.probers._net import error_text, redact_url, split_host_port
from probe.tlsconf import check_cert_and_key, client_context, existing_file

__all__ = [
    "ClientSpec",
    "HTTPServiceSpec",
    "LazyClientTLS",
    "SchemedHostSpec",
    "ServiceDSN",
    "TLSKey",
    "Target",
    "client_ssl_context",
    "dsn_or_key",
    "split_service_dsn",
    "tls_key",
]


class ClientSpec(ProbeSpec):
    """Keys every `client:` entry accepts. `kind` is the driver name."""

    driver: str
    host: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    dsn: SecretStr | None = None
    database: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    query: str | None = None
    expect: str | None = None
    insecure: bool = False
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None

    # Schemes a `dsn:` of this driver may use; empty means the driver takes no DSN.
    dsn_schemes: ClassVar[tuple[str, ...]] = ()
    # Keys whose query `expect` judges (a driver may add its own, as influxdb's `influxql`).
    query_keys: ClassVar[tuple[str, ...]] = ("query",)

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)  # raises ValueError with a config-fit message
        return value

    _existing_file = field_validator("ca", "cert", "key")(existing_file)

    @model_validator(mode="after")
    def _host_or_dsn(self) -> ClientSpec:
        if self.driver != self.kind:
            raise ValueError(f'driver "{self.driver}" does not match {self.kind}')
        if self.dsn is not None:
            if not self.dsn_schemes:
                raise ValueError(f"the {self.kind} driver takes no dsn; use host")
            scheme = self.dsn.get_secret_value().partition("://")[0].lower()
            if scheme not in self.dsn_schemes:
                allowed = ", ".join(f"{s}://" for s in self.dsn_schemes)
                raise ValueError(f"dsn must start with {allowed}")  # never repeat the DSN
            if self.host is not None:
                raise ValueError("set host or dsn, not both")
        elif self.host is None:
            raise ValueError("host is required (host:port), or a dsn")
        check_cert_and_key(self.cert, self.key)
        if self.expect is not None and all(getattr(self, k) is None for k in self.query_keys):
            raise ValueError("expect needs a " + " or ".join(self.query_keys))
        return self

    def host_port(self) -> tuple[str, int]:
        """(host, port) from `host` (validated as host:port, [v6]:port or a URL)."""
        assert self.host is not None
        return split_host_port(self.host)

    @property
    def uses_tls(self) -> bool:
        return self.insecure or self.ca is not None or self.cert is not None

    def endpoint(self) -> str:
        """host:port, or the DSN without credentials."""
        if self.host is not None:
            return self.host
        assert self.dsn is not None
        return redact_url(self.dsn.get_secret_value())


def client_ssl_context(spec: ClientSpec) -> ssl.SSLContext:
    """The SSLContext a driver connects with when TLS is configured (see `uses_tls`)."""
    return client_context(ca=spec.ca, cert=spec.cert, key=spec.key, insecure=spec.insecure)


class LazyClientTLS:
    """A prober's SSLContext, built on its first check: a CA or key file that cannot be
    loaded is a failed check ("TLS: cannot load the certificates: ..."), not a failed start."""

    def __init__(self, spec: ClientSpec, enabled: bool) -> None:
        self._spec = spec
        self._enabled = enabled
        self._context: ssl.SSLContext | None = None

    def get(self) -> ssl.SSLContext | None:
        """The context, or None without TLS. Raises ProbeError when it cannot be built."""
        if not self._enabled:
            return None
        if self._context is None:
            try:
                self._context = client_ssl_context(self._spec)
            except (OSError, ssl.SSLError) as exc:
                raise ProbeError(f"TLS: cannot load the certificates: {error_text(exc)}") from None
        return self._context


class TLSKey(NamedTuple):
    """What makes two probes' TLS set-ups interchangeable (the key of shared clients)."""

    insecure: bool
    ca: str | None
    cert: str | None
    key: str | None


def tls_key(spec: ClientSpec) -> TLSKey:
    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    # With `insecure` nothing is verified, so the CA file does not make a different context.
    ca = None if spec.insecure else text(spec.ca)
    return TLSKey(spec.insecure, ca, text(spec.cert), text(spec.key))


class _DSN(NamedTuple):
    scheme: str
    hostname: str
    port: int | None
    path: str
    username: str | None
    password: str | None


class HTTPServiceSpec(ClientSpec):
    """A client of a service with an HTTP API (etcd, InfluxDB): `host` means http://host:port
    (https:// when TLS keys are set), or `dsn` is the base URL, which may carry credentials."""

    dsn_schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    # Said when a DSN has a query string: where those settings belong instead.
    dsn_query_hint: ClassVar[str] = "the endpoint takes no query or fragment"

    @model_validator(mode="after")
    def _valid_http_service(self) -> HTTPServiceSpec:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.dsn is not None:
            parts = self._dsn_parts()
            if parts.username is not None and self.username is not None:
                raise ValueError("set the credentials in the dsn or in username/password")
            if parts.scheme == "http" and self.uses_tls:
                raise ValueError("ca, cert, key and insecure need an https:// dsn")
        return self

    def _dsn_parts(self) -> _DSN:
        """The parts of the DSN; a ValueError that never repeats it (it may hold a password)."""
        assert self.dsn is not None
        try:
            parts = urlsplit(self.dsn.get_secret_value().strip())
            port = parts.port
        except ValueError:
            raise ValueError("invalid dsn: not a valid URL (check the port)") from None
        if not parts.hostname:
            raise ValueError("invalid dsn: no host")
        if parts.query or parts.fragment:
            raise ValueError(f"invalid dsn: {self.dsn_query_hint}")
        return _DSN(
            parts.scheme.lower(), parts.hostname, port, parts.path, parts.username, parts.password
        )

    def dsn_user(self) -> str | None:
        return None if self.dsn is None else self._dsn_parts().username

    def base_url(self) -> str:
        """`scheme://host:port[/prefix]`, without credentials."""
        if self.dsn is not None:
            parts = self._dsn_parts()
            host = parts.hostname
            shown = f"[{host}]" if ":" in host else host
            suffix = f":{parts.port}" if parts.port is not None else ""
            return f"{parts.scheme}://{shown}{suffix}{parts.path.rstrip('/')}"
        assert self.host is not None
        host, port = self.host_port()
        shown = f"[{host}]" if ":" in host else host
        scheme = urlsplit(self.host.strip()).scheme.lower() if "://" in self.host else ""
        if scheme not in ("http", "https"):
            scheme = "https" if self.uses_tls else "http"
        return f"{scheme}://{shown}:{port}"

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) from `username`/`password` or the DSN's userinfo; None without."""
        if self.username is not None:
            password = "" if self.password is None else self.password.get_secret_value()
            return self.username, password
        if self.dsn is not None:
            parts = self._dsn_parts()
            if parts.username is not None:
                return unquote(parts.username), unquote(parts.password or "")
        return None


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect and as whom, from `host` + keys or from the DSN."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


class ServiceDSN(NamedTuple):
    """A service's DSN (redis://, mqtts://, ...) taken apart, the credentials unquoted."""

    scheme: str
    host: str
    port: int | None
    path: str
    has_query: bool  # a query string or a fragment: the driver decides what it makes of them
    username: str | None
    password: str | None


def split_service_dsn(dsn: str) -> ServiceDSN:
    """The parts of `dsn`; a ValueError that never repeats it (it may hold a password)."""
    try:
        parts = urlsplit(dsn.strip())
        port = parts.port
    except ValueError:
        raise ValueError(
            "dsn: invalid URI (check the port and the brackets of an IPv6 host)"
        ) from None
    if not parts.hostname:
        raise ValueError("dsn: the URI has no host")
    return ServiceDSN(
        scheme=parts.scheme.lower(),
        host=parts.hostname,
        port=port,
        path=parts.path,
        has_query=bool(parts.query or parts.fragment),
        # `redis://:secret@host` names no user: an empty one is none.
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def dsn_or_key(from_dsn: str | None, from_key: str | None, both: str) -> str | None:
    """The one value set, in the DSN or in its own key; setting both is ambiguous, so a
    ValueError "set the `both`, not both" (as `both="username in the dsn or in username"`)."""
    if from_dsn is None:
        return from_key
    if from_key is not None:
        raise ValueError(f"set the {both}, not both")
    return from_dsn


class SchemedHostSpec(ClientSpec):
    """A client whose `host:` may carry a URL scheme that says whether to use TLS
    (`rediss://host:port`), and whose `dsn:` may carry the credentials, merged with
    `username`/`password` (redis, mqtt).

    A subclass sets `host_schemes` (its DSN schemes among them), checks the host's scheme
    with `_check_host_scheme()` and builds its `Target` with `_target()`.
    """

    # The URL schemes `host:` may start with, and whether each means TLS.
    host_schemes: ClassVar[dict[str, bool]] = {}

    def _check_host_scheme(self) -> None:
        if self.host is None or "://" not in self.host:
            return
        scheme = self.host.partition("://")[0].lower()
        if scheme not in self.host_schemes:
            named = " or ".join(f"{s}://" for s in self.dsn_schemes)
            raise ValueError(f'host: unsupported scheme "{scheme}://"; use host:port, {named}')

    def _target(
        self, dsn: ServiceDSN | None, *, default_port: int, default_tls_port: int | None = None
    ) -> Target:
        """The target from the DSN merged with the keys, or from `host`; TLS when the scheme
        says so or TLS keys are set. A DSN without a port gets `default_port`, or
        `default_tls_port` when its scheme means TLS and the service listens elsewhere then."""
        username = self.username
        password = self.password.get_secret_value() if self.password is not None else None
        if dsn is not None:
            username = dsn_or_key(dsn.username, username, "username in the dsn or in username")
            password = dsn_or_key(dsn.password, password, "password in the dsn or in password")
            tls = self.host_schemes.get(dsn.scheme, False)
            fallback = default_tls_port if tls and default_tls_port is not None else default_port
            host, port = dsn.host, dsn.port or fallback  # port 0 too means "the default"
        else:
            host, port = self.host_port()
            tls = self._host_scheme_tls()
        return Target(
            host=host,
            port=port,
            tls=tls or self.uses_tls,
            username=username or None,
            password=password,
        )

    def _host_scheme_tls(self) -> bool:
        raw = self.host or ""
        return "://" in raw and self.host_schemes.get(raw.partition("://")[0].lower(), False)
