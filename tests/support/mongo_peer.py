"""A MongoDB wire-protocol peer for the mongo prober's tests: MongoDB's own MockupDB (the test
server the PyMongo project wrote for its driver's tests) answering as a mongod would.

No MongoDB server can be installed here (Debian has no package; nothing may download one), so
this is what the tests talk to, and what it is must be said plainly: a real TCP server speaking
the real OP_MSG wire protocol to the real PyMongo, with replies we script. On top of MockupDB's
`hello` it answers:

- `ping`;
- SCRAM-SHA-256 authentication (`saslStart`/`saslContinue`), verified here as a server does:
  the client's proof is checked against the password (RFC 5802/7677), the server's signature
  sent back, and a wrong password refused with MongoDB's AuthenticationFailed (code 18);
- MONGODB-X509 `authenticate` (TLS with client certificates: the TLS layer checks them);
- `find` with a filter of plain equalities over the documents given, and an error reply for
  a collection set to fail (as a user without the read right gets, Unauthorized, code 13).

What it does not do: query operators, indexes, storage, replication. A filter the prober sends
is matched by equality of each field, enough to test that the filter goes out as written and
that "found" and "not found" are told apart.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import os
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import mockupdb
from bson import Binary

_ITERATIONS = 4096


class MongoPeer:
    """`with MongoPeer(users=..., documents=...) as peer:` -> `peer.address` (host:port)."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        documents: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        forbidden: Sequence[str] = (),
        tls: ssl.SSLContext | None = None,
        max_wire_version: int = 21,
    ) -> None:
        self.users = dict(users or {})
        self.documents = {k: [dict(d) for d in v] for k, v in (documents or {}).items()}
        self.forbidden = set(forbidden)
        self.commands: list[str] = []
        self.filters: list[dict[str, Any]] = []
        self.x509_logins = 0
        self._lock = threading.Lock()
        self._conversations: dict[int, _Scram] = {}
        self._tls = tls
        hello: dict[str, Any] = {"maxWireVersion": max_wire_version, "minWireVersion": 0}
        if self.users:
            hello["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        self._server = mockupdb.MockupDB(auto_ismaster=hello)
        self._server.autoresponds(self._respond)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    def __enter__(self) -> MongoPeer:
        if self._tls is None:
            self._server.run()
        else:
            self._run_with_tls(self._tls)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def _run_with_tls(self, context: ssl.SSLContext) -> None:
        # MockupDB's own ssl=True uses its bundled certificate; ours comes from the test CA.
        real_bind = mockupdb.bind_tcp_socket

        def bind(address: Any) -> tuple[Any, Any]:
            sock, bound = real_bind(address)
            return _TLSListener(sock, context), bound

        mockupdb.bind_tcp_socket = bind
        try:
            self._server.run()
        finally:
            mockupdb.bind_tcp_socket = real_bind

    # --- the commands --------------------------------------------------------------------

    def _respond(self, request: Any) -> bool:
        name = request.command_name
        with self._lock:
            self.commands.append(name)
        handler = {
            "ping": self._ping,
            "saslStart": self._sasl_start,
            "saslContinue": self._sasl_continue,
            "authenticate": self._authenticate,
            "find": self._find,
            "endSessions": self._ping,
        }.get(name)
        if handler is None:
            return False  # MockupDB answers hello/ismaster itself
        handler(request)
        return True

    def _ping(self, request: Any) -> None:
        request.ok()

    def _authenticate(self, request: Any) -> None:
        if request.doc.get("mechanism") != "MONGODB-X509":
            request.command_err(code=18, errmsg="Authentication failed.")
            return
        with self._lock:
            self.x509_logins += 1
        request.ok(user="CN=client", dbname="$external")

    def _sasl_start(self, request: Any) -> None:
        if request.doc.get("mechanism") != "SCRAM-SHA-256":
            request.command_err(code=2, errmsg="unsupported mechanism")
            return
        scram = _Scram(self.users)
        reply = scram.first(bytes(request.doc["payload"]))
        if reply is None:
            request.command_err(code=18, errmsg="Authentication failed.")
            return
        with self._lock:
            conversation = len(self._conversations) + 1
            self._conversations[conversation] = scram
        request.ok(conversationId=conversation, done=False, payload=Binary(reply))

    def _sasl_continue(self, request: Any) -> None:
        with self._lock:
            scram = self._conversations.get(request.doc.get("conversationId"))
        if scram is None:
            request.command_err(code=18, errmsg="Authentication failed.")
            return
        reply = scram.final(bytes(request.doc["payload"]))
        if reply is None:
            request.command_err(
                code=18, errmsg="Authentication failed.", codeName="AuthenticationFailed"
            )
            return
        request.ok(conversationId=request.doc["conversationId"], done=True, payload=Binary(reply))

    def _find(self, request: Any) -> None:
        namespace = f"{request.doc['$db']}:{request.doc['find']}"
        wanted = dict(request.doc.get("filter") or {})
        with self._lock:
            self.filters.append(wanted)
        if namespace in self.forbidden:
            request.command_err(
                code=13,
                errmsg=f"not authorized on {request.doc['$db']} to execute command",
                codeName="Unauthorized",
            )
            return
        found = [
            {"_id": doc.get("_id")}
            for doc in self.documents.get(namespace, [])
            if all(doc.get(k) == v for k, v in wanted.items())
        ][:1]
        ns = f"{request.doc['$db']}.{request.doc['find']}"
        request.ok(cursor={"id": 0, "ns": ns, "firstBatch": found})


class _TLSListener:
    """A listening socket whose accept() hands MockupDB a TLS connection. A client that fails
    the handshake (an untrusted certificate, say) is dropped as a spurious wake-up (EAGAIN),
    which MockupDB's accept loop passes over, instead of ending that loop."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._sock = sock
        self._context = context

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()

    def accept(self) -> tuple[ssl.SSLSocket, Any]:
        client, address = self._sock.accept()
        client.settimeout(5)
        try:
            tls = self._context.wrap_socket(client, server_side=True)
        except OSError:
            client.close()
            raise OSError(errno.EAGAIN, "TLS handshake failed") from None
        tls.settimeout(None)
        return tls, address


class _Scram:
    """The server's side of one SCRAM-SHA-256 conversation (RFC 5802, RFC 7677)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self._salt = os.urandom(16)
        self._password: str | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def first(self, payload: bytes) -> bytes | None:
        text = payload.decode()
        if not text.startswith("n,,"):
            return None
        self._client_first_bare = text[3:]
        fields = dict(part.split("=", 1) for part in self._client_first_bare.split(","))
        user = fields.get("n", "").replace("=2C", ",").replace("=3D", "=")
        self._password = self._users.get(user)
        self._nonce = fields.get("r", "") + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self._salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={_ITERATIONS}"
        return self._server_first.encode()

    def final(self, payload: bytes) -> bytes | None:
        text = payload.decode()
        without_proof, _, proof = text.rpartition(",p=")
        fields = dict(part.split("=", 1) for part in without_proof.split(","))
        if self._password is None or fields.get("r") != self._nonce:
            return None
        salted = hashlib.pbkdf2_hmac("sha256", self._password.encode(), self._salt, _ITERATIONS)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message)
        sent = base64.b64decode(proof)
        recovered = bytes(a ^ b for a, b in zip(sent, signature, strict=False))
        if len(sent) != len(signature) or hashlib.sha256(recovered).digest() != stored_key:
            return None
        server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return b"v=" + base64.b64encode(server_signature)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()
