"""The `client:` section: one spec shape for every native-client driver.

EaseProbe's keys (`driver`, `host`, `username`, `password`, `data`, `ca`/`cert`/`key`/`insecure`)
plus ours: `dsn` (a connection URI instead of host/username/password), `database`, `query` with
`expect`. Each driver module subclasses `ClientSpec`, sets `kind` to its driver name, and
validates what its driver needs (which `data` form it takes, the DSN scheme, ...).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import ClassVar

import certifi
from pydantic import Field, SecretStr, field_validator, model_validator

from probe.config.models import ConfigPath, ProbeSpec
from probe.probers._net import redact_url, split_host_port

__all__ = ["ClientSpec", "client_ssl_context"]


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

    @field_validator("ca", "cert", "key")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

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
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: set both or neither")
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
    if spec.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(spec.ca) if spec.ca else certifi.where())
    if spec.cert is not None:
        context.load_cert_chain(spec.cert, spec.key)
    return context
