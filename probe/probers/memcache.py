"""Memcached probes (`client:` with `driver: memcache`, as EaseProbe's): connect, ask the
version, and optionally compare keys with the values they should hold.

    resolve -> connect -> version -> data

`version` proves the server speaks memcached (its answer goes to the details and to
`[VERSION]`); `data: {key: expected}` reads every key with one `get` and compares each value as
text. As in EaseProbe, an empty (or blank) expected value only asks that the key exist.
Conditions read `[VERSION]` and `[VALUE].key` (only keys of `data`, checked at load).

The text protocol is spoken here, on a socket from `_connect` (our resolver, Happy Eyeballs,
the phases): it is two commands. aiomcache, the asyncio client one would reach for, owns its
connections (no way to hand it ours) and its `version()` loops without end, never yielding,
when the server closes the connection in the middle of a line (`readline()` at EOF returns
b"" at once and it waits for "\\r\\n"): one such server would freeze the event loop and every
other probe with it. Here every read is bounded: a line by the stream's limit, a value by the
length the server announced, and EOF ends the check.

No TLS, no authentication: EaseProbe's memcache driver has neither, memcached's SASL exists
only in its binary protocol, and its TLS must be compiled in; `username`, `password` and the
TLS keys are refused at load rather than ignored.

Messages: `connection refused`, `the server closed the connection`, `not a memcached server
(...)`, `memcached error: ...`; data mismatches are judged results: `key "k": expected "v",
got "w"`, `key "k": expected "v", got nothing`, `key "k": expected to exist, got nothing`.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import model_validator

from probe.config.models import ProbeSpec
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._client import ClientSpec
from probe.probers._connect import NODELAY, connect_tcp
from probe.probers._net import describe_os_error
from probe.probers._values import VALUE, data_outcome, value_key_problems
from probe.probers.base import Prober, SharedResources
from probe.text import printable

__all__ = ["MemcacheProber", "MemcacheSpec"]

# memcached's own limit on a key's length, in bytes.
_KEY_BYTES = 250
# The longest value read: memcached's default item size limit (-I 1m); a longer announced
# value is not read (the server is not behaving as memcached).
_MAX_VALUE = 1024 * 1024
# Longest value shown in a mismatch message; the rest is cut with "...".
_SHOWN = 80
# A reply line longer than this is not memcached speaking.
_LINE_LIMIT = 4096


class MemcacheSpec(ClientSpec):
    """A `client:` entry with `driver: memcache`: `host` (host:port) and `data`
    (`{key: expected}`; an empty expected value: the key must exist)."""

    kind: ClassVar[str] = "memcache"
    # [VALUE].key: what a key of `data` held; [VERSION]: the server's version.
    condition_placeholders: ClassVar[frozenset[str]] = VALUE | {"VERSION"}

    @model_validator(mode="after")
    def _memcache_keys(self) -> MemcacheSpec:
        if self.query is not None:
            raise ValueError("the memcache driver runs no query; use data: {key: expected}")
        if self.database is not None:
            raise ValueError("the memcache driver has no databases")
        if self.username is not None or self.password is not None:
            raise ValueError(
                "the memcache driver has no authentication (EaseProbe's neither):"
                " memcached's SASL needs its binary protocol"
            )
        if self.uses_tls:
            raise ValueError("the memcache driver has no TLS (EaseProbe's neither)")
        for key in self.data:
            problem = _key_problem(key)
            if problem is not None:
                raise ValueError(f'data: key "{printable(key, 60)}" {problem}')
        return self

    def condition_problems(self) -> list[tuple[int, str]]:
        """The common problems, and each `[VALUE].key` whose key is not in `data`."""
        return value_key_problems(self.parsed_conditions(), self.data, super().condition_problems())


def _key_problem(key: str) -> str | None:
    """Why memcached would refuse `key`, or None (1-250 bytes, no whitespace or control)."""
    size = len(key.encode())
    if size == 0:
        return "is empty"
    if size > _KEY_BYTES:
        return f"is longer than memcached's {_KEY_BYTES} bytes"
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key):
        return "has whitespace or control characters, which memcached keys cannot hold"
    return None


class _Reply(Exception):
    """The server answered something a memcached server does not (carries our message)."""


class MemcacheProber(Prober[MemcacheSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = MemcacheSpec

    def __init__(self, spec: MemcacheSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._host, self._port = spec.host_port()
        keys = list(spec.data)
        self._get = f"get {' '.join(keys)}\r\n".encode() if keys else b""

    async def check(self, ctx: CheckContext) -> Outcome:
        writer: asyncio.StreamWriter | None = None
        try:
            sock = await connect_tcp(self._host, self._port, ctx, options=(NODELAY,))
            try:
                reader, writer = await asyncio.open_connection(sock=sock, limit=_LINE_LIMIT)
            except BaseException:
                sock.close()
                raise
            ctx.phase = "version"
            version = await _version(reader, writer)
            ctx.details["version"] = version
            ctx.facts["VERSION"] = version
            mismatches: list[str] = []
            if self._get:
                ctx.phase = "data"
                # [VALUE] for the conditions: what the keys held (a missing key is absent).
                values: dict[str, str] = {}
                ctx.facts["VALUE"] = values
                values.update(await _get(reader, writer, self._get, set(self.spec.data)))
                for key, expected in self.spec.data.items():
                    problem = _compare(key, expected, values.get(key))
                    if problem is not None:
                        mismatches.append(problem)
        except (OSError, EOFError, _Reply, asyncio.LimitOverrunError, ValueError) as exc:
            raise ProbeError(_describe(exc), **ctx.details) from None
        finally:
            if writer is not None:
                writer.transport.abort()  # at once, on every path: nothing left to await

        return data_outcome(ctx.details, len(self.spec.data), mismatches, f"memcached {version}")


async def _line(reader: asyncio.StreamReader) -> bytes:
    """One reply line without its CRLF; EOF before the end of it raises IncompleteReadError."""
    line = await reader.readuntil(b"\r\n")
    return line[:-2]


def _server_error(line: bytes) -> _Reply | None:
    """The error a reply line reports (ERROR, CLIENT_ERROR x, SERVER_ERROR x), or None."""
    word, _, rest = line.partition(b" ")
    if word == b"ERROR":
        return _Reply("not a memcached server (it answered ERROR)")
    if word in (b"CLIENT_ERROR", b"SERVER_ERROR"):
        text = printable(rest.decode("utf-8", "replace"), 120)
        return _Reply(f"memcached error: {text}" if text else "memcached error")
    return None


async def _version(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    writer.write(b"version\r\n")
    line = await _line(reader)
    if line.startswith(b"VERSION "):
        return printable(line[8:].decode("utf-8", "replace").strip(), 60)
    raise _server_error(line) or _Reply("not a memcached server (unexpected reply to version)")


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: bytes, keys: set[str]
) -> dict[str, str]:
    """The values of the keys `command` (one `get`) asked for, as text; missing keys absent."""
    writer.write(command)
    values: dict[str, str] = {}
    while True:
        line = await _line(reader)
        if line == b"END":
            return values
        parts = line.split(b" ")
        if parts[0] != b"VALUE" or len(parts) not in (4, 5):
            raise _server_error(line) or _Reply("not a memcached server (unexpected reply to get)")
        key = parts[1].decode("utf-8", "replace")
        size = int(parts[3])  # a ValueError when not a number: not memcached either
        if key not in keys or not 0 <= size <= _MAX_VALUE:
            raise _Reply("not a memcached server (unexpected reply to get)")
        data = await reader.readexactly(size + 2)
        if data[-2:] != b"\r\n":
            raise _Reply("not a memcached server (a value without its end)")
        values[key] = data[:-2].decode("utf-8", "replace")


def _compare(key: str, expected: str, value: str | None) -> str | None:
    """None when `key` holds what is expected, else what is wrong (a judged result)."""
    shown_key = printable(key, 80)
    if not expected.strip():  # EaseProbe: a blank expected value only asks that the key exist
        return None if value is not None else f'key "{shown_key}": expected to exist, got nothing'
    if value is None:
        return f'key "{shown_key}": expected "{_shown(expected)}", got nothing'
    if value == expected:
        return None
    return f'key "{shown_key}": expected "{_shown(expected)}", got "{_shown(value)}"'


def _shown(text: str) -> str:
    return printable(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...", _SHOWN)


def _describe(exc: BaseException) -> str:
    """The one place connection and protocol errors become messages."""
    if isinstance(exc, _Reply):
        return str(exc)
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return "the server closed the connection"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "not a memcached server (a reply line too long)"
    if isinstance(exc, ValueError):
        return "not a memcached server (unexpected reply to get)"
    return describe_os_error(exc) or f"connect failed: {exc}"
