"""Private etcd and InfluxDB servers for tests that need what the shared ones do not have:
authentication, TLS, an alarm raised on purpose.

The shared servers (etcd on 127.0.0.1:2379, InfluxDB on 127.0.0.1:8086, started by
scripts/start-etcd-influxdb.sh) run without authentication, so a wrong password cannot fail
there, and they must not be reconfigured or stopped by a test. `PrivateEtcd` and
`PrivateInfluxDB` start the Debian binaries in a directory of the test's own, on free
127.0.0.1 ports, wait (bounded) until they answer, set up users, and terminate them at the end
(`with ... as server:`).

A missing binary skips the test, or fails it when PROBE_TEST_REQUIRE_SERVICES=1 (CI must never
pass by skipping). Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from tests.support.services import services_required

__all__ = ["PrivateEtcd", "PrivateInfluxDB", "TLSFiles", "free_port", "require_binary"]

START_TIMEOUT = 30.0  # seconds for a server to answer after it was started


def require_binary(name: str, package: str) -> str:
    """The path of the executable `name` (Debian's `package`); otherwise skip (or fail in CI)."""
    path = shutil.which(name)
    if path is None and os.access(f"/usr/sbin/{name}", os.X_OK):
        path = f"/usr/sbin/{name}"
    if path is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if services_required():
            pytest.fail(reason + " and PROBE_TEST_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    return path


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    """Terminate a private daemon (if it still runs), killing it after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def free_port() -> int:
    """A 127.0.0.1 port free right now (the server started next binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate and key (PEM files); with `client_ca`, client certificates signed
    by it are required (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class _Daemon:
    """One server process: started in its own session, its output in `log`, stopped (TERM,
    then KILL) when the `with` block ends."""

    name = "daemon"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ports(self) -> list[int]:
        raise NotImplementedError

    def _pick_ports(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once the server answers requests (polled after its ports accept)."""
        raise NotImplementedError

    def _set_up(self) -> None:
        """Users, roles, databases: whatever the test asked for."""

    def start(self) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True)
        failure = ""
        for _attempt in range(3):  # a free port can be taken between our probe and its bind
            self._pick_ports()
            command = self._command()
            with self.log.open("ab") as log:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,
                )
            try:
                failure = self._wait()
                if not failure:
                    self._set_up()
                    return self
            except BaseException:
                self.stop()
                raise
            self.stop()
        pytest.fail(f"{self.name} did not start: {failure}\n{self._log_tail()}", pytrace=False)

    def _wait(self) -> str:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return f"exited with status {self._process.returncode}"
            if all(_answers(port) for port in self._ports()):
                with contextlib.suppress(httpx.HTTPError):
                    if self._ready():
                        return ""
            time.sleep(0.05)
        return f"no answer within {START_TIMEOUT:.0f}s"

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


class PrivateEtcd(_Daemon):
    """A single-member etcd. With `users` (name -> password), a `root` user with the password
    `root_password` is created and authentication is enabled; every other user gets a role of
    its own with read access to the keys listed in `readable` (name -> key prefix), if any.
    With `tls`, clients speak HTTPS (and show a certificate if `tls.client_ca` is set)."""

    name = "etcd"

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        root_password: str = "root-secret",
        readable: dict[str, str] | None = None,
        tls: TLSFiles | None = None,
        client_cert: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(directory)
        self.users = dict(users or {})
        self.root_password = root_password
        self.readable = dict(readable or {})
        self.tls = tls
        # The certificate the set-up requests show when the server requires one.
        self.client_cert = client_cert
        self.client_port = 0
        self.peer_port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def _pick_ports(self) -> None:
        self.client_port, self.peer_port = free_port(), free_port()

    def _ports(self) -> list[int]:
        return [self.client_port]

    def _command(self) -> list[str]:
        etcd = require_binary("etcd", "etcd-server")
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            etcd,
            "--name",
            "probe-test",
            "--data-dir",
            str(self.directory / f"data-{self.client_port}"),
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"probe-test={peer}",
            # The cheapest bcrypt: a test authenticates hundreds of times (default cost 10
            # makes each authentication ~100 ms of server CPU).
            "--bcrypt-cost",
            "4",
        ]
        if self.tls is not None:
            command += ["--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key)]
            if self.tls.client_ca is not None:
                command += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.client_ca)]
        return command

    def client(self, token: str | None = None) -> httpx.Client:
        """A plain client for set-up requests (root's token as the Authorization header)."""
        verify: ssl.SSLContext | bool = True
        if self.tls is not None:
            # Set-up only: the tests check verification through the prober.
            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
            if self.client_cert is not None:
                verify.load_cert_chain(*self.client_cert)
        headers = {"Authorization": token} if token else {}
        return httpx.Client(base_url=self.url, verify=verify, headers=headers, trust_env=False)

    def _ready(self) -> bool:
        with self.client() as client:
            response = client.get("/health", timeout=2)
        return response.status_code == 200 and response.json().get("health") == "true"

    def call(self, path: str, body: dict[str, Any], *, as_root: bool = False) -> dict[str, Any]:
        """POST a JSON-gateway request; raises on an error answer."""
        token = self.root_token() if as_root and self.users else None
        with self.client(token) as client:
            response = client.post(path, json=body, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"etcd {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def root_token(self) -> str:
        with self.client() as client:
            response = client.post(
                "/v3/auth/authenticate",
                json={"name": "root", "password": self.root_password},
                timeout=10,
            )
        response.raise_for_status()
        return str(response.json()["token"])

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)}, as_root=True)

    def member_id(self) -> str:
        return str(self.call("/v3/maintenance/status", {})["header"]["member_id"])

    def alarm(self, action: str, alarm: str = "NOSPACE") -> None:
        """ACTIVATE or DEACTIVATE an alarm on this member (as etcd does when its disk fills)."""
        body = {"action": action, "memberID": self.member_id(), "alarm": alarm}
        self.call("/v3/maintenance/alarm", body, as_root=True)

    def _set_up(self) -> None:
        if not self.users:
            return
        self.call("/v3/auth/user/add", {"name": "root", "password": self.root_password})
        self.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        for user, password in self.users.items():
            self.call("/v3/auth/user/add", {"name": user, "password": password})
            prefix = self.readable.get(user)
            if prefix is not None:
                role = f"{user}-reader"
                self.call("/v3/auth/role/add", {"name": role})
                permission = {"permType": "READ", "key": b64(prefix), "range_end": _end(prefix)}
                self.call("/v3/auth/role/grant", {"name": role, "perm": permission})
                self.call("/v3/auth/user/grant", {"user": user, "role": role})
        self.call("/v3/auth/enable", {})


def _end(prefix: str) -> str:
    """The range end covering every key that starts with `prefix` (etcd's `--prefix`)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


class PrivateInfluxDB(_Daemon):
    """An InfluxDB 1.x with `[http] auth-enabled = true`: the admin user is created first (the
    only statement 1.x allows before any user exists), then `databases` and, for each entry
    of `users`, a user with READ on every database."""

    name = "influxd"

    def __init__(
        self,
        directory: Path,
        *,
        admin: tuple[str, str] = ("admin", "admin-secret"),
        users: dict[str, str] | None = None,
        databases: tuple[str, ...] = (),
    ) -> None:
        super().__init__(directory)
        self.admin = admin
        self.users = dict(users or {})
        self.databases = databases
        self.http_port = 0
        self.rpc_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _pick_ports(self) -> None:
        self.http_port, self.rpc_port = free_port(), free_port()

    def _ports(self) -> list[int]:
        return [self.http_port]

    def _command(self) -> list[str]:
        influxd = require_binary("influxd", "influxdb")
        state = self.directory / f"state-{self.http_port}"
        config = self.directory / f"influxdb-{self.http_port}.conf"
        # Every listener on a port of its own: the shared instance holds the defaults.
        config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{state}/meta"\n'
            "[data]\n"
            f'  dir = "{state}/data"\n'
            f'  wal-dir = "{state}/wal"\n'
            "[http]\n"
            f'  bind-address = "127.0.0.1:{self.http_port}"\n'
            "  auth-enabled = true\n"
            "  log-enabled = false\n"
        )
        return [influxd, "-config", str(config)]

    def _ready(self) -> bool:
        with httpx.Client(trust_env=False) as client:
            return client.get(f"{self.url}/ping", timeout=2).status_code == 204

    def query(self, statement: str, *, auth: bool = True) -> dict[str, Any]:
        """Run an InfluxQL statement as the admin; raises on an error answer."""
        with httpx.Client(trust_env=False, auth=self.admin if auth else None) as client:
            response = client.post(f"{self.url}/query", data={"q": statement}, timeout=10)
        body: dict[str, Any] = response.json()
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        if response.status_code != 200 or "error" in body or errors:
            raise RuntimeError(f"influxd {statement!r}: {response.status_code} {body}")
        return body

    def write(self, database: str, lines: str) -> None:
        """Write points (line protocol) as the admin."""
        with httpx.Client(trust_env=False) as client:
            response = client.post(
                f"{self.url}/write",
                params={"db": database},
                content=lines.encode(),
                auth=self.admin,
                timeout=10,
            )
        if response.status_code != 204:
            raise RuntimeError(f"influxd write: {response.status_code} {response.text}")

    def _set_up(self) -> None:
        user, password = self.admin
        self.query(
            f"CREATE USER {_ident(user)} WITH PASSWORD {_string(password)} WITH ALL PRIVILEGES",
            auth=False,
        )
        for database in self.databases:
            self.query(f"CREATE DATABASE {_ident(database)}")
        for name, secret in self.users.items():
            self.query(f"CREATE USER {_ident(name)} WITH PASSWORD {_string(secret)}")
            for database in self.databases:
                self.query(f"GRANT READ ON {_ident(database)} TO {_ident(name)}")


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
