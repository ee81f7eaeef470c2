"""A private `memcached` for the memcache prober's tests: Debian's binary on a free loopback
port (TCP only, `-U 0`: no UDP), 16 MB of memory, terminated when the `with` block ends
(tests/support/daemons.py). The machine's own memcached, its config and port 11211, are never
used. `set()` stores a key the way any client would (the text protocol's `set`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.support.daemons import _Daemon, free_port, require_binary

__all__ = ["PrivateMemcached"]


class PrivateMemcached(_Daemon):
    name = "memcached"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = 0
        self.address = ""  # host:port, as a spec's `host` takes it

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def _ports(self) -> list[int]:
        return [self.port]

    def _ready(self) -> bool:
        return self._command_reply(b"version\r\n").startswith(b"VERSION ")

    def _command(self) -> list[str]:
        command = [
            require_binary("memcached", "memcached"),
            "-l", "127.0.0.1",
            "-p", str(self.port),
            "-U", "0",
            "-m", "16",
            "-c", "256",
        ]  # fmt: skip
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # memcached refuses to run as root
        return command

    def set(self, key: str, value: str, flags: int = 0) -> None:
        data = value.encode()
        command = b"set %s %d 0 %d\r\n%s\r\n" % (key.encode(), flags, len(data), data)
        reply = self._command_reply(command)
        assert reply == b"STORED\r\n", reply

    def delete(self, key: str) -> None:
        self._command_reply(f"delete {key}\r\n".encode())

    def _command_reply(self, command: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(command)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply
