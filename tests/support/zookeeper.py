"""A private ZooKeeper (Debian's `zookeeper` package, a Java server) for the zookeeper
prober's tests, and a small blocking client to create the znodes they read.

The server runs standalone from a zoo.cfg of the test's own: its client port on a free
127.0.0.1 port, its data in the test's directory, the admin server off, a short tick (so
sessions are cheap). It answers about half a second after start; the process is terminated
when the `with` block ends (tests/support/daemons.py). Never the machine's own config or port.

`create()` speaks ZooKeeper's client protocol with a plain socket (connect, addauth, create,
closeSession): set-up needs no client library, and is independent of the prober's code.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.daemons import _Daemon, free_port, require_binary
from tests.support.probers import server_tls_files
from tests.support.services import services_required

__all__ = ["PrivateZooKeeper"]

JAR = Path("/usr/share/java/zookeeper.jar")

_CREATE, _CLOSE, _AUTH = 1, -11, 100
_ALL_PERMS = 31  # read, write, create, delete, admin


class PrivateZooKeeper(_Daemon):
    name = "zookeeper"

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        super().__init__(directory)
        self.port = self.tls_port = 0
        self.tls = tls
        # The CA that signed the TLS port's certificate (PEM), and one that did not.
        self.ca_file = self.other_ca_file = directory / "ca.pem"
        if tls:
            files = server_tls_files(directory, "127.0.0.1", "localhost")
            self.ca_file, self.other_ca_file = files.ca_file, files.other_ca_file
            # ZooKeeper's PEM key store wants the key as PKCS#8, then the certificate.
            key = serialization.load_pem_private_key(files.key.read_bytes(), None)
            pkcs8 = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.key_store = directory / "server.pem"
            self.key_store.write_bytes(pkcs8 + files.cert.read_bytes())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_address(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.tls_port = free_port() if self.tls else 0

    def _ports(self) -> list[int]:
        return [self.port, self.tls_port] if self.tls else [self.port]

    def _command(self) -> list[str]:
        java = require_binary("java", "zookeeper")
        if not JAR.exists():
            reason = f"{JAR} is missing (apt-get install zookeeper)"
            if services_required():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        config = self.directory / f"zoo-{self.port}.cfg"
        config.write_text(
            "tickTime=200\n"
            f"dataDir={self.directory / f'data-{self.port}'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "maxClientCnxns=0\n"
            # No fsync per transaction: every session is one, and the tests open a thousand.
            "forceSync=no\n"
        )
        classpath = f"/etc/zookeeper/conf:{JAR}"
        if self.tls:
            with config.open("a") as out:
                out.write(
                    f"secureClientPort={self.tls_port}\n"
                    "secureClientPortAddress=127.0.0.1\n"
                    "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
                    f"ssl.keyStore.location={self.key_store}\n"
                    "ssl.keyStore.type=PEM\n"
                    f"ssl.trustStore.location={self.ca_file}\n"
                    "ssl.trustStore.type=PEM\n"
                    "ssl.clientAuth=none\n"
                )
            # Debian's zookeeper.jar lists the Netty jars it needs but netty-codec.
            classpath += ":/usr/share/java/netty-codec.jar"
        main = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        return [java, "-Xmx256m", "-cp", classpath, main, str(config)]

    def _ready(self) -> bool:
        try:
            self.create("/zookeeper-ready-check", "", ephemeral=True)
        except OSError:
            return False
        return True

    def create(
        self,
        path: str,
        data: str,
        *,
        digest: tuple[str, str] | None = None,
        ephemeral: bool = False,
    ) -> None:
        """Create znode `path` holding `data` (open to all, or with `digest`=(user, pw), only
        to that user). An existing znode is left as it is."""
        if digest is None:
            acl = struct.pack(">i", _ALL_PERMS) + _string("world") + _string("anyone")
        else:
            user, password = digest
            hashed = base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest())
            acl = (
                struct.pack(">i", _ALL_PERMS)
                + _string("digest")
                + _string(f"{user}:{hashed.decode()}")
            )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            _send(sock, struct.pack(">iqiqi16s?", 0, 0, 4000, 0, 16, b"", False))
            _receive(sock)
            if digest is not None:
                identity = _string(f"{digest[0]}:{digest[1]}")
                _call(sock, -4, _AUTH, struct.pack(">i", 0) + _string("digest") + identity)
            flags = 1 if ephemeral else 0
            body = _string(path) + _string(data) + struct.pack(">i", 1) + acl
            err = _call(sock, 1, _CREATE, body + struct.pack(">i", flags))
            if err not in (0, -110):  # -110: the znode exists already
                raise RuntimeError(f"zookeeper create {path}: error {err}")
            _call(sock, 2, _CLOSE, b"")


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">i", len(payload)) + payload)


def _receive(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("zookeeper closed the connection")
            data += chunk
        return data

    (length,) = struct.unpack(">i", exactly(4))
    return exactly(length)


def _call(sock: socket.socket, xid: int, op: int, body: bytes) -> int:
    """Send one request; the error code of its reply."""
    _send(sock, struct.pack(">ii", xid, op) + body)
    while True:
        reply = _receive(sock)
        got, _zxid, err = struct.unpack_from(">iqi", reply)
        if got == xid:
            return int(err)
