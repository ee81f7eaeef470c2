"""What the ssh and host probers share: EaseProbe's SSH endpoint keys, the `bastion:` map, and
one SSH login (direct or through a bastion) that runs one command, on asyncssh.

An endpoint is `host` (`host`, `host:port` or `user@host:port`; port 22 by default),
`username`, and `password` and/or `key` (a private key file, `passphrase` if it is encrypted).
EaseProbe accepts any host key; we check it against `known_hosts` (default
~/.ssh/known_hosts), as OpenSSH does, unless `insecure: true` says not to. A bastion is an
endpoint of the section's `bastion:` map, named by a server's `bastion:`; the server is then
reached through a TCP channel the bastion opens (OpenSSH's ProxyJump).

The command's stdout is kept up to MAX_OUTPUT bytes (the rest is read and dropped) and its
stderr up to MAX_STDERR; nothing it sends can fill our memory. Passwords, passphrases and keys
are SecretStr or files: no message, detail or log shows them. All asyncssh and OS errors become
messages in `describe()`, the one place.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import asyncssh
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from probe.config.models import ConfigPath, StrictModel
from probe.core.check import CheckContext
from probe.errors import ProbeError
from probe.probers._connect import connect_tcp
from probe.probers._net import describe_os_error, format_address, plain_error, split_host_port
from probe.text import printable, quoted

__all__ = [
    "MAX_OUTPUT",
    "MAX_STDERR",
    "Bastion",
    "CommandRun",
    "SSHEndpoint",
    "describe",
    "run_command",
]

# asyncssh logs every connection opened and closed at INFO: one check, several lines, in
# the program's log. Its warnings and errors still show.
asyncssh.set_log_level(logging.WARNING)

MAX_OUTPUT = 1024 * 1024
"""Bytes of stdout kept for the checks; the rest is read and dropped."""
MAX_STDERR = 64 * 1024
DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class SSHEndpoint(StrictModel):
    """EaseProbe's SSH login keys (a server's, or one entry of a `bastion:` map)."""

    host: str = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    key: ConfigPath | None = None
    passphrase: SecretStr | None = None
    # Host key checking: ours, not EaseProbe's (which accepts any host key).
    known_hosts: ConfigPath | None = None
    insecure: bool = False

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        _parse_host(value)
        return value.strip()

    @model_validator(mode="after")
    def _credentials(self) -> SSHEndpoint:
        if self.password is None and self.key is None:
            raise ValueError("password or key is required (as in EaseProbe)")
        if self.login()[0] == "":
            raise ValueError('a username is required: `username:` or "user@host"')
        return self

    def login(self) -> tuple[str, str, int]:
        """(user, host, port): `user@` in `host` wins over `username`, as in EaseProbe."""
        user, host, port = _parse_host(self.host)
        return (user if user is not None else (self.username or "")), host, port

    def address(self) -> str:
        _user, host, port = self.login()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def shown(self) -> str:
        """`user@host:port`, for endpoints and messages (no secret in it)."""
        user, _host, _port = self.login()
        return f"{user}@{self.address()}"


def _parse_host(text: str) -> tuple[str | None, str, int]:
    """EaseProbe's forms: `host`, `host:port`, `user@host:port`, `[v6]:port`."""
    raw = text.strip()
    user: str | None = None
    if "@" in raw:
        user, _, raw = raw.rpartition("@")
        if not user:
            raise ValueError(f'invalid host "{text}": nothing before "@"')
    if (raw.startswith("[") and raw.endswith("]")) or ":" not in raw:
        raw = f"{raw}:{DEFAULT_PORT}"
    elif raw.count(":") > 1 and not raw.startswith("["):
        raise ValueError(f'invalid host "{text}": an IPv6 address needs brackets, as in "[::1]:22"')
    host, port = split_host_port(raw)
    return user, host, port


def _lookup_bastion(value: Any, info: ValidationInfo) -> Any:
    """A server's `bastion:` names an entry of the section's `bastion:` map (EaseProbe's
    form); the loader hands the validated map over in the validation context."""
    if value is None or isinstance(value, SSHEndpoint):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected the name of an entry of the section's bastion map")
    named: Mapping[str, Any] = ((info.context or {}).get("named") or {}).get("bastion") or {}
    found = named.get(value.strip())
    if found is None:
        known = ", ".join(sorted(named)) or "the section has no `bastion:` map"
        raise ValueError(f"unknown bastion {quoted(value)} (known: {known})")
    return found


Bastion = Annotated[
    SSHEndpoint | None,
    BeforeValidator(_lookup_bastion),
    WithJsonSchema({"type": "string", "description": "a name in the section's bastion map"}),
]


class SSHServerKeys(SSHEndpoint):
    """The keys of one entry of `servers:` (ssh and host), mixed in ahead of ProbeSpec."""

    # The section's `bastion:` map: its entries are SSHEndpoints, by name.
    section_entries: ClassVar[Mapping[str, type[BaseModel]]] = {"bastion": SSHEndpoint}

    bastion: Bastion = None


# --- one login, one command ---------------------------------------------------------------


@dataclass
class CommandRun:
    """What a command sent back: its exit status (None: the server sent none; negative: killed
    by that signal), the first MAX_OUTPUT bytes of stdout, the first MAX_STDERR of stderr."""

    status: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    total: int = 0


class _Session(asyncssh.SSHClientSession[bytes]):
    """Collects the output without buffering more than the limits."""

    def __init__(self, run: CommandRun, done: asyncio.Future[None]) -> None:
        self._run = run
        self._done = done

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            room = MAX_STDERR - len(self._run.stderr)
            if room > 0:
                self._run.stderr += data[:room]
            return
        self._run.total += len(data)
        room = MAX_OUTPUT - len(self._run.stdout)
        if room > 0:
            self._run.stdout += data[:room]

    def exit_status_received(self, status: int) -> None:
        self._run.status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._run.status = -_SIGNALS.get(signal, 0) or None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(exc)


_SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "SEGV": 11, "PIPE": 13, "TERM": 15}


class _Client(asyncssh.SSHClient):
    """Reports the authentication phase on the check's context."""

    def __init__(self, ctx: CheckContext, phase: str, made: list[bool]) -> None:
        self._ctx = ctx
        self._phase = phase
        made.append(True)  # asyncssh makes the client once a transport holds the socket

    def begin_auth(self, username: str) -> None:
        self._ctx.phase = self._phase


class _Leg(Exception):
    """An error on one leg of the way (the bastion, or the server), for `describe()`."""

    def __init__(self, where: SSHEndpoint, error: BaseException, *, bastion: bool) -> None:
        super().__init__(str(error))
        self.where = where
        self.error = error
        self.bastion = bastion


async def _options(
    endpoint: SSHEndpoint, ctx: CheckContext, phase: str, made: list[bool]
) -> dict[str, Any]:
    user, _host, _port = endpoint.login()
    options: dict[str, Any] = {
        "username": user,
        "client_factory": lambda: _Client(ctx, phase, made),
        # Never ~/.ssh/config, the agent or the default key files: only what the config says.
        "config": None,
        "agent_path": None,
        "client_keys": None,
        "password": None,
        "preferred_auth": [],
        "known_hosts": None,
        # Our scheduler bounds the whole check; asyncssh's own two-minute login timer must not
        # linger (it is a task of its own) once a check is done.
        "login_timeout": 0,
        "keepalive_interval": 0,
    }
    methods = []
    if endpoint.key is not None:
        options["client_keys"] = [await _key(endpoint)]
        methods.append("publickey")
    if endpoint.password is not None:
        options["password"] = endpoint.password.get_secret_value()
        methods += ["keyboard-interactive", "password"]
    options["preferred_auth"] = methods
    if not endpoint.insecure:
        options["known_hosts"] = await _known_hosts(endpoint)
    return options


# Keys and known_hosts files, parsed once per version of the file (path, mtime, size): an
# encrypted key costs ~0.4 s of bcrypt to open, far too much for every check, and is opened
# in a thread so the event loop never waits on it. A key's passphrase is part of its entry.
_FileKey = tuple[str, int, int, str]
_keys: dict[_FileKey, asyncssh.SSHKey] = {}
_known: dict[_FileKey, asyncssh.SSHKnownHosts] = {}
_CACHED = 256  # entries kept per cache: beyond that, the oldest go


def _file_key(path: Path, extra: str = "") -> _FileKey:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size, extra)


def _remember(cache: dict[_FileKey, Any], key: _FileKey, value: Any) -> None:
    if len(cache) >= _CACHED:
        del cache[next(iter(cache))]
    cache[key] = value


async def _key(endpoint: SSHEndpoint) -> asyncssh.SSHKey:
    assert endpoint.key is not None
    passphrase = endpoint.passphrase.get_secret_value() if endpoint.passphrase else None
    try:
        entry = _file_key(endpoint.key, passphrase or "")
        found = _keys.get(entry)
        if found is None:
            found = await asyncio.to_thread(
                asyncssh.read_private_key, str(endpoint.key), passphrase
            )
            _remember(_keys, entry, found)
        return found
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError, ValueError) as exc:
        raise ProbeError(_key_error(endpoint.key, exc, passphrase is not None)) from None


def _key_error(path: Path, exc: BaseException, has_passphrase: bool) -> str:
    shown = printable(str(path), 200)
    if isinstance(exc, OSError):
        return f"cannot read the private key {shown}: {describe_os_error(exc) or exc.strerror}"
    if isinstance(exc, asyncssh.KeyEncryptionError):
        return f"cannot decrypt the private key {shown}: wrong passphrase"
    text = str(exc).lower()
    if "passphrase must be specified" in text:
        return f"the private key {shown} is encrypted: `passphrase` is required"
    if has_passphrase and ("incorrect" in text or "passphrase" in text):
        return f"cannot decrypt the private key {shown}: wrong passphrase"
    return f"cannot load the private key {shown}: {plain_error(exc)}"


async def _known_hosts(endpoint: SSHEndpoint) -> asyncssh.SSHKnownHosts:
    path = endpoint.known_hosts or Path(DEFAULT_KNOWN_HOSTS).expanduser()
    shown = printable(str(path), 200)
    try:
        entry = _file_key(path)
        found = _known.get(entry)
        if found is None:
            found = await asyncio.to_thread(asyncssh.read_known_hosts, str(path))
            _remember(_known, entry, found)
        return found
    except FileNotFoundError:
        # No file: no host is known, so every host key is refused (as OpenSSH's
        # StrictHostKeyChecking does), with a message that says which file.
        return asyncssh.import_known_hosts("")
    except OSError as exc:
        reason = describe_os_error(exc) or exc.strerror
        raise ProbeError(f"cannot read known_hosts {shown}: {reason}") from None
    except ValueError as exc:
        raise ProbeError(f"cannot read known_hosts {shown}: {exc}") from None


async def _login(
    endpoint: SSHEndpoint, ctx: CheckContext, *, bastion: bool
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to a bastion, or to a server without one."""
    prefix = "bastion " if bastion else ""
    _user, host, port = endpoint.login()
    made: list[bool] = []
    options = await _options(endpoint, ctx, f"{prefix}authentication", made)
    ctx.phase = f"{prefix}connect"
    try:
        sock = await _connect(host, port, ctx, bastion=bastion)
    except OSError as exc:
        raise _Leg(endpoint, exc, bastion=bastion) from None
    ctx.phase = f"{prefix}handshake"
    try:
        return await asyncssh.connect(sock=sock, host=host, port=port, **options)
    except BaseException as exc:
        # Once asyncssh made its client, a transport owns the socket and asyncssh closes it.
        # Before (a cancellation while asyncssh prepares its options in a thread), nobody
        # does: the socket is ours to close (a transport not yet started has let go of it).
        if not made:
            sock.close()
        if isinstance(exc, Exception) and not isinstance(exc, ProbeError):
            raise _Leg(endpoint, exc, bastion=bastion) from None
        raise


async def _connect(host: str, port: int, ctx: CheckContext, *, bastion: bool) -> socket.socket:
    if not bastion:
        return await connect_tcp(host, port, ctx)
    # The phases of the bastion leg carry its name; the peer goes under its own key.
    inner = CheckContext()
    try:
        sock = await connect_tcp(host, port, inner)
    finally:
        if "peer" in inner.details:
            ctx.details["bastion_peer"] = inner.details["peer"]
    return sock


async def _via(
    bastion: asyncssh.SSHClientConnection, endpoint: SSHEndpoint, ctx: CheckContext
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to `endpoint` through a TCP channel of `bastion`."""
    _user, host, port = endpoint.login()
    ctx.phase = "connect through the bastion"
    ctx.details["peer"] = endpoint.address()
    options = await _options(endpoint, ctx, "authentication", [])
    try:
        # asyncssh opens the channel with the bastion (tunnel=) and speaks SSH over it.
        return await asyncssh.connect(host, port, tunnel=bastion, **options)
    except ProbeError:
        raise
    except Exception as exc:
        raise _Leg(endpoint, exc, bastion=False) from None


async def run_command(
    endpoint: SSHEndpoint,
    bastion: SSHEndpoint | None,
    command: str,
    ctx: CheckContext,
) -> CommandRun:
    """Log in (through `bastion` if any), run `command`, return what it sent back. Raises
    ProbeError with the message `describe()` gives; every connection is closed on the way
    out, also when the check is cancelled."""
    connections: list[asyncssh.SSHClientConnection] = []
    try:
        if bastion is not None:
            connections.append(await _login(bastion, ctx, bastion=True))
            connections.append(await _via(connections[0], endpoint, ctx))
        else:
            connections.append(await _login(endpoint, ctx, bastion=False))
        ctx.phase = "running the command"
        return await _run(connections[-1], endpoint, command)
    except _Leg as leg:
        raise ProbeError(
            describe(leg.error, leg.where, bastion=leg.bastion), **ctx.details
        ) from None
    finally:
        for conn in reversed(connections):
            conn.abort()  # at once: a polite close would wait for the server


async def _run(
    conn: asyncssh.SSHClientConnection, endpoint: SSHEndpoint, command: str
) -> CommandRun:
    loop = asyncio.get_running_loop()
    run = CommandRun()
    done: asyncio.Future[None] = loop.create_future()
    try:
        channel, _session = await conn.create_session(
            lambda: _Session(run, done), command, encoding=None
        )
        channel.write_eof()
        await done
    except Exception as exc:
        raise _Leg(endpoint, exc, bastion=False) from None
    return run


# --- the one place errors become messages -------------------------------------------------


def describe(exc: BaseException, where: SSHEndpoint, *, bastion: bool) -> str:
    """A short message for what went wrong on the way to (or at) `where`."""
    user, host, port = where.login()
    prefix = "bastion: " if bastion else ""
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"{prefix}authentication failed for user {quoted(user)}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if where.known_hosts is not None:
            source = printable(str(where.known_hosts), 200)
        else:
            source = DEFAULT_KNOWN_HOSTS
        return (
            f"{prefix}the host key of {where.address()} is not in {source} "
            "(add it, or set insecure: true)"
        )
    if isinstance(exc, asyncssh.ChannelOpenError):
        if bastion:
            return f"bastion: {printable(exc.reason, 200) or 'channel refused'}"
        reason = printable(exc.reason, 200) or "refused"
        return f"the bastion could not connect to {where.address()}: {_lower(reason)}"
    if isinstance(exc, asyncssh.ConnectionLost):
        return f"{prefix}connection closed by {where.address()}"
    if isinstance(exc, asyncssh.DisconnectError):
        reason = printable(exc.reason, 200) or "disconnected"
        return f"{prefix}ssh: {reason}"
    if isinstance(exc, asyncssh.Error):
        return f"{prefix}ssh: {printable(exc.reason, 200)}"
    known = describe_os_error(exc)
    if known is not None:
        return prefix + known
    if isinstance(exc, (asyncio.IncompleteReadError, EOFError, ConnectionError)):
        return f"{prefix}connection closed by {format_address((host, port))}"
    return prefix + plain_error(exc)


def _lower(text: str) -> str:
    """ "Connection refused" -> "connection refused", as our other messages read."""
    return text[:1].lower() + text[1:]
