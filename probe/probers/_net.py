"""Network helpers the socket-level probers share: host:port parsing, name resolution,
URL redaction and the mapping of OS and TLS errors to short human messages.

Every prober module still has its own `_describe()` boundary for its driver's exceptions; it
calls `describe_os_error()` for the part that is the same everywhere (errno, TLS verification).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import math
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from probe.errors import ProbeError
from probe.text import printable

__all__ = [
    "Address",
    "describe_os_error",
    "error_text",
    "first_error",
    "format_address",
    "iter_causes",
    "plain_error",
    "redact_url",
    "resolve",
    "split_host_port",
    "with_excerpt",
]

# (family, sockaddr) as getaddrinfo returns them, ready for socket.connect().
Address = tuple[socket.AddressFamily, tuple[Any, ...]]

# Ports assumed for a URL given where a host:port is expected (`tcp: host: https://db.lan`).
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Query keys whose values are secrets often enough that we never show them.
_SECRET_KEY = re.compile(
    r"token|key|pass|pwd|secret|sig|auth|credential|session|code", re.IGNORECASE
)


def split_host_port(text: str) -> tuple[str, int]:
    """`host:port`, `[v6addr]:port` or a URL with a port -> (host, port).

    Raises ValueError with a message fit for a config error.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty host; expected host:port")
    if "://" in raw:
        return _split_url(raw)
    if raw.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", raw)
        if match is None:
            raise ValueError(f'invalid host "{raw}": expected "[v6addr]:port"')
        host, port_text = match.group(1), match.group(2)
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f'invalid host "{raw}": "{host}" is not an IPv6 address') from None
        if port_text is None:
            raise ValueError(f'invalid host "{raw}": missing port; write "[{host}]:PORT"')
        return host, _parse_port(port_text, raw)
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        raise ValueError(f'invalid host "{raw}": missing port; write "{raw}:PORT"')
    if ":" in host:
        raise ValueError(f'invalid host "{raw}": an IPv6 address needs brackets, as in "[::1]:80"')
    _check_hostname(host, raw)
    return host, _parse_port(port_text, raw)


def _split_url(raw: str) -> tuple[str, int]:
    parts = urlsplit(raw)
    host = parts.hostname
    if not host:
        raise ValueError(f'invalid host "{raw}": the URL has no host')
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f'invalid host "{raw}": invalid port') from None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
        if port is None:
            raise ValueError(f'invalid host "{raw}": the URL has no port')
    if not 1 <= port <= 65535:
        raise ValueError(f'invalid host "{raw}": port must be 1-65535')
    return host, port


def _check_hostname(host: str, raw: str) -> None:
    if not host:
        raise ValueError(f'invalid host "{raw}": missing host name before ":"')
    if re.search(r"[\s/@?#\[\]]", host):
        raise ValueError(f'invalid host "{raw}": "{host}" is not a host name')


def _parse_port(text: str, raw: str) -> int:
    if not text.isdigit():
        raise ValueError(f'invalid host "{raw}": port "{text}" is not a number')
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f'invalid host "{raw}": port {port} is not in 1-65535')
    return port


# Characters of a body or a command's output that `with_output` adds to a message.
EXCERPT = 500


def with_excerpt(message: str, output: str) -> str:
    """`message` followed by the start of `output` (`with_output`): one line of printable
    text, at most EXCERPT characters, so notifications show what the service said."""
    excerpt = printable(" ".join(output.split()), EXCERPT)
    return f"{message}; output: {excerpt}" if excerpt else f"{message}; no output"


def format_address(sockaddr: tuple[Any, ...]) -> str:
    """`1.2.3.4:80` or `[::1]:80` for a sockaddr tuple."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


async def resolve(host: str, port: int) -> list[Address]:
    """The addresses of `host`, in the order the system resolver prefers.

    IP literals are returned without a lookup, and so are names in /etc/hosts (see
    `_HostsFile`). Other names go through `loop.getaddrinfo` (a thread of the default
    executor), one lookup per name at a time however many checks ask (`_shared_lookup`); this
    is the one place to swap in another resolver. A failure is raised as
    ProbeError("name resolution failed for host X").
    """
    literal = _ip_literal(host, port)
    if literal is not None:
        return [literal]
    known = _HOSTS.addresses(host, port)
    if known:
        return known
    try:
        infos = await _shared_lookup(host, port)
    except socket.gaierror as exc:
        raise ProbeError(
            f"name resolution failed for host {host}", reason=exc.strerror or str(exc)
        ) from None
    seen: set[tuple[Any, ...]] = set()
    addresses: list[Address] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if sockaddr not in seen:
            seen.add(sockaddr)
            addresses.append((family, sockaddr))
    if not addresses:
        raise ProbeError(f"name resolution failed for host {host}", reason="no addresses")
    return addresses


# getaddrinfo's answers: (family, type, proto, canonname, sockaddr).
_AddrInfo = list[tuple[Any, ...]]
# Lookups under way, per event loop and (host, port).
_LOOKUPS: dict[tuple[int, str, int], asyncio.Future[_AddrInfo]] = {}


async def _shared_lookup(host: str, port: int) -> _AddrInfo:
    """getaddrinfo of (host, port), shared by every check that asks while it runs.

    A resolver that never answers holds an executor thread for its whole timeout (glibc:
    5 s x 2 attempts), long after the checks gave up: 80 checks of one such name took all
    64 threads, and every other lookup (even of localhost) then waited for a thread (the fault
    suite's "silent resolver"). Shared, they hold one. A caller that is cancelled (its check
    timed out) stops waiting; the lookup goes on for the others and ends on its own.
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), host, port)
    lookup = _LOOKUPS.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        _LOOKUPS[key] = lookup

        def forget(done: asyncio.Future[_AddrInfo]) -> None:
            if _LOOKUPS.get(key) is done:
                del _LOOKUPS[key]
            if not done.cancelled():
                done.exception()  # retrieved: a failure nobody awaited is not logged as lost

        lookup.add_done_callback(forget)
    return list(await asyncio.shield(lookup))


# The most of /etc/hosts read, in bytes.
_HOSTS_FILE_LIMIT = 1 << 20


class _HostsFile:
    """Names in /etc/hosts, answered without the resolver's threads.

    Every system's resolver reads the hosts file before DNS (nsswitch's `hosts: files ...`),
    so the answer is the same; it just needs no thread, and so no stalled DNS server can make
    a check of `localhost` wait. Read again when the file changes (its modification time, size
    or inode), looked at once a second at most.
    """

    def __init__(self, path: str = "/etc/hosts") -> None:
        self.path = path
        self._names: dict[str, list[str]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._looked = -math.inf

    def addresses(self, host: str, port: int) -> list[Address]:
        self._refresh()
        found: list[Address] = []
        for ip in self._names.get(host.lower().rstrip("."), ()):
            literal = _ip_literal(ip, port)
            if literal is not None and literal not in found:
                found.append(literal)
        return found

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._looked < 1.0:
            return
        self._looked = now
        try:
            info = os.stat(self.path)
            # The inode and size too: a file put in place by a rename can keep an old mtime.
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == self._stamp:
                return
            with open(self.path, "rb") as fh:
                data = fh.read(_HOSTS_FILE_LIMIT + 1)
        except OSError:
            self._names, self._stamp = {}, None
            return
        if len(data) > _HOSTS_FILE_LIMIT:
            # Ad-blocking hosts files run to megabytes: names past the limit are left to the
            # resolver, and the line the limit cuts is dropped rather than read as a shorter
            # name ("10.0.0.5 db-replica" cut to "10.0.0.5 db").
            data = data[:_HOSTS_FILE_LIMIT].rpartition(b"\n")[0]
        names: dict[str, list[str]] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            fields = line.partition("#")[0].split()
            # An address with a zone (fe80::1%eth0) is left to the resolver.
            if len(fields) < 2 or "%" in fields[0] or _ip_family(fields[0]) is None:
                continue
            for name in fields[1:]:
                names.setdefault(name.lower().rstrip("."), []).append(fields[0])
        self._names, self._stamp = names, stamp


_HOSTS = _HostsFile()


def _ip_literal(host: str, port: int) -> Address | None:
    family = _ip_family(host)
    if family is None:
        return None  # a name, or a scoped IPv6 address the resolver must parse
    if family == socket.AF_INET6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)


# Cached: every check of a probe asks about the same host (parsing it is ~15 us each time).
@functools.lru_cache(maxsize=65536)
def _ip_family(host: str) -> socket.AddressFamily | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


@functools.lru_cache(maxsize=65536)  # each check shows its probe's URL (and redirects')
def redact_url(url: str) -> str:
    """A URL fit to show: no userinfo, no fragment, secret-looking query values as `***`.

    `https://user:pw@host/p?token=abc&x=1#f` -> `https://host/p?token=***&x=1`.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _redact_pair(pair: str) -> str:
    key, sep, _value = pair.partition("=")
    if sep and _SECRET_KEY.search(unquote(key)):
        return f"{key}=***"
    return pair


def iter_causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes, contexts, exception arguments and the members of exception
    groups, breadth-first.

    Drivers wrap the OS error that tells what happened in one or more layers of their own
    (httpx -> httpcore -> anyio -> OSError), sometimes inside an ExceptionGroup.
    """
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            queue.extend(current.exceptions)
        # httpcore wraps as `ConnectError(original)` and its pool re-raises `from None`,
        # which erases __cause__: the original survives only as an argument.
        queue.extend(arg for arg in current.args if isinstance(arg, BaseException))
        if current.__cause__ is not None:
            queue.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            queue.append(current.__context__)


def first_error(exc: BaseException) -> BaseException:
    """The first real error in `exc`: a group's first member that is not a cancellation,
    depth-first, else `exc` itself.

    anyio and asyncio.TaskGroup raise "unhandled errors in a TaskGroup" around the error
    that tells what happened; that wrapper means nothing to someone reading a check.
    """
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        members = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (members or list(exc.exceptions))[0]
    return exc


def error_text(exc: BaseException, limit: int = 120) -> str:
    """An error's own text (its class name when it has none), cut to `limit` characters:
    for messages that add it after the drivers' words ("redis error: ...")."""
    return (str(exc) or type(exc).__name__)[:limit]


_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def plain_error(exc: BaseException, limit: int = 120) -> str:
    """An error nobody mapped, said without Python's class names: its own text, else its
    class name as words (`ReadError` -> "read error"). Printable and bounded."""
    exc = first_error(exc)
    text = str(exc).strip()
    if not text:
        name = type(exc).__name__.removesuffix("Error").removesuffix("Exception")
        text = (_WORD.sub(" ", name).lower() or "unknown") + " error"
    return printable(text, limit)


_ERRNO_MESSAGES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.EPIPE: "connection closed by peer (broken pipe)",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EHOSTDOWN: "host is down",
    errno.ENETUNREACH: "network unreachable",
    errno.ENETDOWN: "network is down",
    errno.ETIMEDOUT: "connection timed out",
    errno.EADDRNOTAVAIL: "cannot assign the local address",
    errno.EACCES: "connection not permitted",
    errno.EPERM: "connection not permitted",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
}

# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code).
_VERIFY_MESSAGES = {
    2: "TLS: certificate signed by an unknown authority",
    9: "TLS: certificate is not yet valid",
    10: "TLS: certificate has expired",
    18: "TLS: self-signed certificate",
    19: "TLS: self-signed certificate in the chain",
    20: "TLS: certificate signed by an unknown authority",
    21: "TLS: certificate signed by an unknown authority",
    23: "TLS: certificate has been revoked",
    62: "TLS: hostname mismatch",
    64: "TLS: hostname mismatch",
}

# OpenSSL reason codes of handshake failures that are not verification errors.
_SSL_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "TLS: the server requires a client certificate",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "TLS: handshake failure",
    "TLSV1_ALERT_UNKNOWN_CA": "TLS: the server rejected the client certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "TLS: the server rejected the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "TLS: the server rejected the client certificate (expired)",
    "TLSV1_ALERT_PROTOCOL_VERSION": "TLS: no protocol version in common with the server",
    "WRONG_VERSION_NUMBER": "TLS: the server did not answer with TLS (plain HTTP?)",
    "UNSUPPORTED_PROTOCOL": "TLS: no protocol version in common with the server",
    "UNEXPECTED_EOF_WHILE_READING": "TLS: the server closed the connection",
}


def describe_os_error(exc: BaseException) -> str | None:
    """A short message for the TLS or OS error somewhere in `exc`'s chain, or None.

    TLS errors come first: they are the most specific and often wrap an OSError themselves.
    """
    chain = list(iter_causes(exc))
    # Wrappers that subclass the ssl exceptions without their attributes (aiohttp's
    # ClientConnectorCertificateError, ClientConnectorSSLError) are passed over: the ssl
    # module's own exception is further down the chain.
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError) and hasattr(item, "verify_code"):
            known = _VERIFY_MESSAGES.get(item.verify_code)
            return known or f"TLS: {item.verify_message or 'certificate verification failed'}"
    ssl_errors = [item for item in chain if isinstance(item, ssl.SSLError)]
    ssl_errors.sort(key=lambda item: not hasattr(item, "reason"))  # stable: the ssl module's first
    for item in ssl_errors:
        reason = getattr(item, "reason", None) or ""
        known = _SSL_REASONS.get(reason)
        if known is not None:
            return known
        if isinstance(item, ssl.SSLEOFError):
            return "TLS: the server closed the connection"
        if reason:
            return "TLS: " + reason.lower().replace("_", " ")
        return "TLS: " + (item.strerror or str(item))
    for item in chain:
        if isinstance(item, socket.gaierror):
            return "name resolution failed"
        if isinstance(item, OSError) and item.errno is not None:
            known = _ERRNO_MESSAGES.get(item.errno)
            if known is not None:
                return known
            if item.strerror:
                return item.strerror[:1].lower() + item.strerror[1:]
    return None
