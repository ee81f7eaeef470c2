"""MongoDB probes (`client:` with `driver: mongo`, as EaseProbe's): connect, authenticate,
`ping`, and optionally find a document in collections named by `data`.

    connect -> ping -> data

`connect` lasts until the server answered its `hello` (PyMongo's monitor asks it); `ping` runs
on an application connection, so it also proves the credentials (authentication is part of that
connection's handshake). `data: {"db:collection": '{filter}'}` runs a `find_one` with each filter
(MongoDB Extended JSON, parsed at load): the check is down when no document matches, as in
EaseProbe. A blank filter asks only that the collection hold a document.

Every check uses a client of its own (PyMongo's `AsyncMongoClient`, one connection), closed at
the end, so each check goes through what a new application goes through. PyMongo waits the whole
server-selection timeout when the server cannot be reached, and only then says why; here the
first failed `hello` of a single server ends the check at once with its reason (a heartbeat
listener), so "connection refused" takes milliseconds, not the probe's timeout. With a `dsn`
naming several servers (a replica set) one unreachable member is no failure: the check waits
for the server it needs, within the timeout.

`host: host:port` connects straight to that server (`directConnection`), whatever its role; a
`dsn` (`mongodb://` or `mongodb+srv://`) is handed to PyMongo as written (replica sets, options),
our timeouts and pool size taking precedence. TLS (`ca`, `cert`, `key`, `insecure`): with a
client certificate and no password, authentication is MONGODB-X509, as EaseProbe does whenever
TLS is on; with `username`/`password` it stays SCRAM over TLS (EaseProbe drops the password
then). `database` is the authentication database (default `admin`).

Messages: `connection refused` and the other OS/TLS messages, `authentication failed`,
`mongodb error: ...` (a command's error, with its code name), `timed out waiting for a usable
server: ...`; data mismatches are judged results: `collection "db.coll": no document matches
{"k": "v"}`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from bson import json_util
from bson.errors import BSONError
from pydantic import model_validator
from pymongo import AsyncMongoClient, uri_parser
from pymongo import errors as mongo_errors
from pymongo.monitoring import (
    ServerHeartbeatFailedEvent,
    ServerHeartbeatListener,
    ServerHeartbeatStartedEvent,
    ServerHeartbeatSucceededEvent,
)

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import ClientSpec
from probe.probers._net import describe_os_error, error_text
from probe.probers._values import data_outcome
from probe.probers.base import Prober, SharedResources
from probe.text import printable

__all__ = ["DEFAULT_PORT", "MongoProber", "MongoSpec"]

DEFAULT_PORT = 27017
# Longest filter shown in a mismatch message; the rest is cut with "...".
_SHOWN = 80
# MongoDB's error codes for a refused login (AuthenticationFailed) and a missing right.
_AUTH_FAILED = 18
_UNAUTHORIZED = 13
# "[Errno 111] Connect call failed", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify ...".
_ERRNO = re.compile(r"\[Errno (-?\d+)\] ?([^(]*)")
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\] ([^(]*)")


class MongoSpec(ClientSpec):
    """A `client:` entry with `driver: mongo`.

    `host: host:port` or `dsn: mongodb[+srv]://...`; `username`, `password`, `database` (the
    authentication database), `data: {"db:collection": '{filter}'}` and `ca`/`cert`/`key`/
    `insecure` for TLS.
    """

    kind: ClassVar[str] = "mongo"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("mongodb", "mongodb+srv")

    @model_validator(mode="after")
    def _mongo_keys(self) -> MongoSpec:
        if self.query is not None:
            raise ValueError(
                "the mongo driver runs no query; use data: {\"db:collection\": '{filter}'}"
            )
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.username is not None and self.password is None:
            raise ValueError("username needs a password")
        if self.key is not None and self.cert is None:
            raise ValueError("key needs a cert")
        if self.dsn is not None:
            self._check_dsn(self.dsn.get_secret_value())
        for key, value in self.data.items():
            split_namespace(key)
            parse_filter(key, value)
        return self

    def _check_dsn(self, dsn: str) -> None:
        """A ValueError for a mongodb:// URI PyMongo would refuse; never repeats the URI.
        A mongodb+srv:// URI is looked up in DNS when a check runs, so only its shape is
        checked here (no lookup at load)."""
        if dsn.lower().startswith("mongodb+srv://"):
            return
        try:
            parsed = uri_parser.parse_uri(dsn, validate=True, warn=False)
        except (mongo_errors.PyMongoError, ValueError) as exc:
            # PyMongo's messages name the option at fault, never the credentials.
            raise ValueError(f"dsn: {_without(str(exc), dsn)}") from None
        if parsed.get("username") is not None and self.username is not None:
            raise ValueError("set the credentials in the dsn or in username/password, not both")

    def namespaces(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(database, collection, filter) of each `data` entry, in order."""
        return [(*split_namespace(k), parse_filter(k, v)) for k, v in self.data.items()]


def split_namespace(key: str) -> tuple[str, str]:
    """`db:collection` -> (db, collection); a ValueError saying what is wrong."""
    db, sep, collection = key.partition(":")
    shown = printable(key, 60)
    if not sep or ":" in collection:
        raise ValueError(f'data: "{shown}" is not "database:collection"')
    if not db.strip() or not collection.strip():
        raise ValueError(f'data: "{shown}" needs a database and a collection name')
    if any(c in db for c in '/\\. "$\0'):
        raise ValueError(f'data: "{shown}": a database name cannot hold /\\. "$ or NUL')
    if collection.startswith("system.") or "$" in collection or "\0" in collection:
        raise ValueError(f'data: "{shown}": not a collection name a query can read')
    return db, collection


def parse_filter(key: str, text: str) -> dict[str, Any]:
    """A filter in MongoDB Extended JSON (canonical or relaxed) -> a document; blank: {}."""
    if not text.strip():
        return {}
    try:
        value = json_util.loads(text)
    except (ValueError, TypeError, BSONError) as exc:
        raise ValueError(
            f'data: "{printable(key, 60)}": the filter is not valid (Extended) JSON: '
            f"{printable(str(exc), 100)}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f'data: "{printable(key, 60)}": the filter must be a JSON object')
    return value


def _without(text: str, secret: str) -> str:
    return printable(text.replace(secret, "<dsn>"), 160)


class _Heartbeats(ServerHeartbeatListener):
    """Follows PyMongo's monitor for one check: the phase ends with the first `hello` answered,
    and the first failure of a single server's `hello` fails the check at once."""

    def __init__(self, ctx: CheckContext, failed: asyncio.Future[BaseException] | None) -> None:
        self._ctx = ctx
        self._failed = failed

    def started(self, event: ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, event: ServerHeartbeatSucceededEvent) -> None:
        if self._ctx.phase == "connect":
            self._ctx.phase = "ping"
        reply = event.reply
        self._ctx.details.setdefault("wire_version", reply.max_wire_version)
        if reply.replica_set_name:
            self._ctx.details.setdefault("replica_set", reply.replica_set_name)

    def failed(self, event: ServerHeartbeatFailedEvent) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_result(event.reply)


class _HelloFailed(Exception):
    """The server's `hello` failed before the command ended: `reason` is what PyMongo saw."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(str(reason))
        self.reason = reason


class MongoProber(Prober[MongoSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = MongoSpec

    def __init__(self, spec: MongoSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._namespaces = spec.namespaces()
        # Only a client of one server, connected directly, fails at its first failed hello.
        self._single = spec.dsn is None or _single_seed(spec.dsn.get_secret_value())
        self._client_keys = self._build_client_keys()
        self._cert_file: _CertAndKey | None = None
        self._user = spec.username if spec.dsn is None else _dsn_user(spec.dsn.get_secret_value())

    def _build_client_keys(self) -> dict[str, Any]:
        spec = self.spec
        ms = max(int(spec.timeout * 1000), 1)
        keys: dict[str, Any] = {
            "serverSelectionTimeoutMS": ms,
            "connectTimeoutMS": ms,
            "socketTimeoutMS": ms,
            "maxPoolSize": 1,
            "minPoolSize": 0,
            "retryReads": False,
            "appname": "probe",
        }
        if spec.host is not None:
            host, port = spec.host_port()
            keys.update(host=host, port=port, directConnection=True)
        if spec.username is not None:
            keys["username"] = spec.username
            keys["password"] = spec.password.get_secret_value() if spec.password else ""
        if spec.database is not None:
            keys["authSource"] = spec.database
        if spec.uses_tls:
            keys["tls"] = True
            if spec.ca is not None:
                keys["tlsCAFile"] = str(spec.ca)
            if spec.insecure:
                keys["tlsInsecure"] = True
            if spec.cert is not None and spec.username is None:
                keys["authMechanism"] = "MONGODB-X509"
        return keys

    async def aclose(self) -> None:
        if self._cert_file is not None:
            self._cert_file.close()
            self._cert_file = None

    def _tls_cert_key(self) -> dict[str, Any]:
        """PyMongo reads the client certificate and its key from one PEM file; when they are
        two (as EaseProbe's `cert` and `key`), they are joined in memory (a memfd, never on
        disk) on the first check."""
        spec = self.spec
        if spec.cert is None:
            return {}
        if spec.key is None or spec.key == spec.cert:
            return {"tlsCertificateKeyFile": str(spec.cert)}
        if self._cert_file is None:
            try:
                self._cert_file = _CertAndKey(spec.cert.read_bytes(), spec.key.read_bytes())
            except OSError as exc:
                raise ProbeError(f"TLS: cannot load the certificates: {error_text(exc)}") from None
        return {"tlsCertificateKeyFile": self._cert_file.path}

    async def check(self, ctx: CheckContext) -> Outcome:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[BaseException] | None = (
            loop.create_future() if self._single else None
        )
        keys = {**self._client_keys, **self._tls_cert_key()}
        client: AsyncMongoClient[dict[str, Any]] | None = None
        mismatches: list[str] = []
        try:
            if self.spec.dsn is not None:
                keys["host"] = self.spec.dsn.get_secret_value()
            client = AsyncMongoClient(event_listeners=[_Heartbeats(ctx, failed)], **keys)
            await _unless_failed(client.admin.command("ping"), failed)
            ctx.phase = "data"
            for db, collection, query in self._namespaces:
                found = await _unless_failed(
                    client[db][collection].find_one(query, projection={"_id": 1}), failed
                )
                if found is None:
                    mismatches.append(
                        f'collection "{printable(db, 60)}.{printable(collection, 60)}":'
                        f" no document matches {_shown(query)}"
                    )
        except (mongo_errors.PyMongoError, OSError, _HelloFailed) as exc:
            message = _describe(exc, self._user, self._secrets())
            if message == "name resolution failed" and self.spec.host is not None:
                message += f" for host {self.spec.host_port()[0]}"
            raise ProbeError(message, **ctx.details) from None
        finally:
            if failed is not None and not failed.done():
                failed.cancel()
            if client is not None:
                await client.close()

        checked = len(self._namespaces)
        return data_outcome(ctx.details, checked, mismatches, "mongodb ok", noun="collection")

    def _secrets(self) -> list[str]:
        spec = self.spec
        return [s.get_secret_value() for s in (spec.password, spec.dsn) if s is not None]


async def _unless_failed(work: Any, failed: asyncio.Future[BaseException] | None) -> Any:
    """`await work`, unless the server's hello fails first: then raise that failure."""
    if failed is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, failed}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    if task.done():
        return task.result()
    # Not awaited: PyMongo's server selection may hold on to a cancellation until its own
    # timeout; closing the client (the caller's `finally`) ends it. Its outcome is read so
    # that nothing is logged as "never retrieved".
    task.cancel()
    task.add_done_callback(_consume)
    raise _HelloFailed(failed.result())


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _dsn_user(dsn: str) -> str | None:
    """The user a DSN names (without parsing it as PyMongo does: a mongodb+srv:// one would
    be looked up in DNS)."""
    user = urlsplit(dsn.strip()).username
    return unquote(user) if user else None


def _single_seed(dsn: str) -> bool:
    """Whether a mongodb:// DSN names one server (a mongodb+srv:// one may name many)."""
    if dsn.lower().startswith("mongodb+srv://"):
        return False
    try:
        parsed = uri_parser.parse_uri(dsn, validate=False, warn=False)
    except (mongo_errors.PyMongoError, ValueError):
        return False
    options = parsed.get("options") or {}
    return len(parsed.get("nodelist") or ()) == 1 and not options.get("replicaset")


def _shown(query: dict[str, Any]) -> str:
    text = json_util.dumps(query)
    return printable(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...", _SHOWN)


class _CertAndKey:
    """A client certificate and its key in one in-memory file, for PyMongo's single path."""

    def __init__(self, cert: bytes, key: bytes) -> None:
        if not hasattr(os, "memfd_create"):  # Linux has it; elsewhere keep cert and key in one
            raise ProbeError("TLS: put the certificate and its key in one PEM file (cert:)")
        self._fd = os.memfd_create("probe-mongo-client-cert", os.MFD_CLOEXEC)
        os.write(self._fd, cert.rstrip(b"\n") + b"\n" + key)
        self.path = f"/proc/self/fd/{self._fd}"

    def close(self) -> None:
        os.close(self._fd)


def _describe(exc: BaseException, user: str | None, secrets: list[str]) -> str:
    """The one place PyMongo's and the OS's errors become messages (secrets never shown)."""
    if isinstance(exc, _HelloFailed):
        exc = exc.reason
    if isinstance(exc, mongo_errors.OperationFailure):
        if exc.code == _AUTH_FAILED:
            return f'authentication failed for user "{user}"' if user else "authentication failed"
        if exc.code == _UNAUTHORIZED:
            text = f"not authorized: {_details_text(exc)}"
        else:
            name = (exc.details or {}).get("codeName") if exc.details else None
            text = f"mongodb error: {_details_text(exc)}" + (f" ({name})" if name else "")
        return _hide(text, secrets)
    if isinstance(exc, mongo_errors.ProtocolError):
        return f"not a MongoDB server ({_first_line(exc)})"
    if isinstance(exc, mongo_errors.ConfigurationError):
        return _hide(f"mongodb configuration: {error_text(exc, 160)}", secrets)
    described = describe_os_error(exc) or _described_from_text(str(exc))
    if described is not None:
        return described
    if isinstance(exc, mongo_errors.ServerSelectionTimeoutError):
        reason = str(exc).partition(", Timeout:")[0]
        return _hide(f"timed out waiting for a usable server: {printable(reason, 160)}", secrets)
    if isinstance(exc, mongo_errors.NetworkTimeout):
        return "timed out"
    if isinstance(exc, mongo_errors.AutoReconnect):
        return _hide(f"connection lost: {_first_line(exc)}", secrets)
    return _hide(f"mongodb error: {_first_line(exc)}", secrets)


def _described_from_text(text: str) -> str | None:
    """The OS or TLS reason in a PyMongo message whose cause it dropped (its monitor clears
    the chain of every error it reports), as the other probers word it."""
    found = _ERRNO.search(text)
    if found is not None:
        number = int(found.group(1))
        if number < 0:  # getaddrinfo's codes
            return describe_os_error(socket.gaierror(number, found.group(2)))
        return describe_os_error(OSError(number, os.strerror(number)))
    if "connection closed" in text.lower() or "connection is closed" in text.lower():
        return "the server closed the connection"
    found = _SSL_REASON.search(text)
    if found is not None:
        reason, words = found.group(1), found.group(2).strip()
        if reason == "CERTIFICATE_VERIFY_FAILED" and ":" in words:
            return "TLS: " + words.partition(":")[2].strip()
        return "TLS: " + (words or reason.lower().replace("_", " "))
    return None


def _details_text(exc: mongo_errors.OperationFailure) -> str:
    details = exc.details or {}
    return printable(str(details.get("errmsg") or exc), 160)


def _first_line(exc: BaseException) -> str:
    return printable(error_text(exc, 200).split(" (configured timeouts")[0], 160)


def _hide(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
