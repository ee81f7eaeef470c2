"""A private OpenSSH server for the ssh and host probers' tests.

`PrivateSSHD` starts Debian's /usr/sbin/sshd (`-D -e -f <config>`) in a directory of the
test's own, with its own host key, on a free 127.0.0.1 port, and terminates it at the end. It
never reads the machine's sshd_config and never listens beyond loopback. Logins: the user
`probe-ssh` (made by scripts/services.sh, with the password below) by password or by a key
listed in an authorized_keys file in the test's directory.

A missing sshd, or a missing `probe-ssh` user, skips the test (fails it when
PROBE_TEST_REQUIRE_SERVICES=1: CI must never pass by skipping). sshd needs root (privilege
separation); so does this helper.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import asyncssh
import pytest

from tests.support.daemons import free_port, require_binary, stop_process
from tests.support.services import services_required

__all__ = ["SSH_PASSWORD", "SSH_USER", "PrivateSSHD", "make_key"]

SSH_USER = "probe-ssh"
SSH_PASSWORD = "probe-ssh-test-password"  # set by scripts/services.sh


def _skip(reason: str) -> None:
    if services_required():
        pytest.fail(reason + " and PROBE_TEST_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def make_key(path: Path, passphrase: str | None = None) -> asyncssh.SSHKey:
    """A new ed25519 key written to `path` (OpenSSH format; encrypted with `passphrase`)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    # Fewer bcrypt rounds than the default 128 (bcrypt warns below 50): quicker to open.
    key.write_private_key(str(path), passphrase=passphrase, rounds=50)
    path.chmod(0o600)
    return key


class PrivateSSHD:
    """One sshd on 127.0.0.1:`port`, host key `host_key`; `authorized` keys may log in as
    SSH_USER, as may SSH_PASSWORD."""

    def __init__(self, directory: Path, *, authorized: list[asyncssh.SSHKey]) -> None:
        self.directory = directory
        self.authorized = authorized
        self.port = 0
        self.host_key: asyncssh.SSHKey | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._keys_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def known_hosts_line(self, host: str | None = None) -> str:
        """A known_hosts line for this server's host key, under `host` (default: as OpenSSH
        writes a non-22 port, `[127.0.0.1]:PORT`)."""
        assert self.host_key is not None
        name = host or f"[127.0.0.1]:{self.port}"
        return f"{name} {self.host_key.export_public_key().decode().strip()}\n"

    def start(self, *, timeout: float = 10.0) -> PrivateSSHD:
        sshd = require_binary("sshd", "openssh-server")
        if os.geteuid() != 0:
            _skip("a private sshd needs root (privilege separation)")
        try:
            pwd.getpwnam(SSH_USER)
        except KeyError:
            _skip(f"the user {SSH_USER} is missing (run scripts/services.sh as root)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        host_key_path = self.directory / "host_key"
        if self.host_key is None:
            self.host_key = make_key(host_key_path)
        # sshd reads authorized_keys as the user, who cannot enter pytest's 0700 tmp dirs:
        # the file goes to a directory of its own under /tmp, readable by all, removed at stop.
        self._keys_dir = Path(tempfile.mkdtemp(prefix="probe-sshd-"))
        self._keys_dir.chmod(0o755)
        authorized = self._keys_dir / "authorized_keys"
        authorized.write_text("".join(k.export_public_key().decode() for k in self.authorized))
        authorized.chmod(0o644)
        for _attempt in range(3):  # the free port can be taken before sshd binds it
            self.port = free_port()
            config = self.directory / "sshd_config"
            config.write_text(
                f"Port {self.port}\n"
                "ListenAddress 127.0.0.1\n"
                f"HostKey {host_key_path}\n"
                f"PidFile {self.directory / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {authorized}\n"
                # The key file lives under /tmp (world-writable): StrictModes would refuse it.
                "StrictModes no\n"
                "UsePAM no\n"
                "PasswordAuthentication yes\n"
                "KbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\n"
                "PermitRootLogin no\n"
                f"AllowUsers {SSH_USER}\n"
                # The bastion tests forward through this server to itself.
                "AllowTcpForwarding yes\n"
                "MaxStartups 100:30:200\n"
                "MaxSessions 50\n"
                "LogLevel VERBOSE\n"
            )
            with self.log.open("ab") as log:
                self._process = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait(timeout):
                return self
            self._stop_process()
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        pytest.fail(f"sshd did not start:\n{tail}", pytrace=False)

    def _wait(self, timeout: float) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if _listening(self.port):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop_process()
        if self._keys_dir is not None:
            shutil.rmtree(self._keys_dir, ignore_errors=True)
            self._keys_dir = None

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def __enter__(self) -> PrivateSSHD:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _listening(port: int) -> bool:
    """True once 127.0.0.1:`port` is in LISTEN (read from /proc: a connect would count as a
    client in sshd's log and its MaxStartups)."""
    wanted = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)
