"""A private `redis-server` for the redis prober's tests: what the shared server cannot show.

It listens on two free loopback ports: a plain one whose default user needs `password`, and a
TLS one with a certificate for 127.0.0.1 and localhost from a CA of our own. Nothing is saved
to disk; the process is terminated when the `with` block ends (tests/support/daemons.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.daemons import _Daemon, free_port, require_binary
from tests.support.probers import server_tls_files

__all__ = ["PrivateRedis"]


class PrivateRedis(_Daemon):
    name = "redis"

    def __init__(self, directory: Path, *, password: str) -> None:
        super().__init__(directory)
        self.password = password
        files = server_tls_files(directory, "127.0.0.1", "localhost")
        self.cert, self.key = files.cert, files.key
        # The CA that signed the server's certificate, and one that did not.
        self.ca_file, self.other_ca_file = files.ca_file, files.other_ca_file
        self.port = self.tls_port = 0
        # host:port of the plain listener (password on the default user) and of the TLS one.
        self.plain = self.tls = ""

    def _pick_ports(self) -> None:
        self.port, self.tls_port = free_port(), free_port()
        self.plain, self.tls = f"127.0.0.1:{self.port}", f"127.0.0.1:{self.tls_port}"

    def _ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def _ready(self) -> bool:
        return True  # both ports accept: redis-server serves from then on

    def _command(self) -> list[str]:
        return [
            require_binary("redis-server", "redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no",
            "--requirepass", self.password,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
