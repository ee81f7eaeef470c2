"""A private Mosquitto broker for tests that need what the shared one does not have: users
with passwords, an ACL, a TLS listener.

The shared broker (127.0.0.1:1883) allows anonymous clients, so a wrong password cannot fail
there and it must not be reconfigured. `PrivateMosquitto` starts `mosquitto -c <conf>` in a
directory of the test's own, on a free 127.0.0.1 port, waits (bounded) until the port answers
and terminates the broker at the end. A missing binary skips the test, or fails it when
PROBE_TEST_REQUIRE_SERVICES=1 (CI must never pass by skipping).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.daemons import free_port, require_binary

__all__ = ["PrivateMosquitto"]


class PrivateMosquitto:
    """One broker: `users` (name -> password) with `allow_anonymous false`, an optional ACL
    (Mosquitto's acl_file syntax) and an optional TLS listener (certificate and key files)."""

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str],
        acl: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.users = dict(users)
        self.acl = acl
        self.tls = tls
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> PrivateMosquitto:
        mosquitto = require_binary("mosquitto", "mosquitto")
        passwd = require_binary("mosquitto_passwd", "mosquitto")
        self.directory.mkdir(parents=True, exist_ok=True)
        password_file = self.directory / "passwd"
        password_file.unlink(missing_ok=True)
        for index, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if index == 0 else []
            subprocess.run(
                [passwd, "-b", *create, str(password_file), user, password],
                check=True,
                capture_output=True,
                timeout=10,
            )
        # Several tries: the free port is found by binding and releasing it, so another
        # process may take it before the broker does.
        last_log = ""
        for _attempt in range(3):
            self.port = free_port()
            conf = self._write_conf(password_file)
            log_path = self.directory / "mosquitto.log"
            with log_path.open("wb") as log:
                self._process = subprocess.Popen(
                    [mosquitto, "-c", str(conf)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_for_port(timeout):
                return self
            last_log = log_path.read_text(errors="replace")[-2000:]
            self.stop()
        raise RuntimeError(f"private mosquitto did not start:\n{last_log}")

    def _write_conf(self, password_file: Path) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {password_file}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to the `mosquitto` user, which cannot read a test's
            # private temporary directory.
            lines.append("user root")
        if self.acl is not None:
            acl_file = self.directory / "acl"
            acl_file.write_text(self.acl)
            lines.append(f"acl_file {acl_file}")
        if self.tls is not None:
            cert, key = self.tls
            lines += [f"certfile {cert}", f"keyfile {key}"]
        conf = self.directory / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _wait_for_port(self, timeout: float) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
