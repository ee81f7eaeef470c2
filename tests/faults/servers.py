"""Servers on 127.0.0.1 that misbehave on purpose, and the timing of checks against them.

A `FaultServer` runs one behaviour per connection (the functions below: a peer that accepts and
never answers, one that answers a byte at a time, one that resets in the middle of the head,
...). They speak raw HTTP/1.1 on asyncio streams, so every byte and every close is what the
fault needs, with no framework smoothing it over. `timed_check` runs a prober through the
scheduler's own `run_check` and measures how far past its timeout it ended (the "overrun" the
fault suite reports).

Nothing here listens anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from probe.core.check import Checkable
from probe.core.result import Result
from probe.core.scheduler import run_check

__all__ = [
    "HEALTHY_BODY",
    "Behaviour",
    "FaultServer",
    "Overruns",
    "Timed",
    "endless_chunked",
    "healthy",
    "overrun_report",
    "read_head",
    "redirect_loop",
    "reset",
    "reset_mid_headers",
    "short_body",
    "silent",
    "slowloris",
    "timed_check",
]

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

HEALTHY_BODY = b"ok"


# --- behaviours ---------------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (the probers send no body with GET)."""
    return await reader.readuntil(b"\r\n\r\n")


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read whatever comes, never answer: returns when the client hangs up."""
    while await reader.read(65536):
        pass


async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n" + HEALTHY_BODY
    )
    await writer.drain()


def slowloris(pace: float = 1.0) -> Behaviour:
    """A valid answer, one byte every `pace` seconds (a per-read timeout never fires)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for byte in answer:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pace)

    return drip


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the client sees a reset, not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def reset_mid_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half a response head, then a reset."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
    await writer.drain()
    await asyncio.sleep(0.02)  # the half head reaches the client before the reset does
    reset(writer)


async def short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Content-Length promises 1000 bytes; 10 come, then an orderly close."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
    await writer.drain()


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked body that never ends, written as fast as the client reads it."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (16384, b"a" * 16384)
    while True:
        writer.write(chunk)
        await writer.drain()


async def redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request is sent back where it came from."""
    head = await read_head(reader)
    path = head.split(b" ", 2)[1]
    writer.write(
        b"HTTP/1.1 302 Found\r\nLocation: " + path + b"\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()


# --- the server ---------------------------------------------------------------------------


class FaultServer:
    """A TCP server on 127.0.0.1 running `behaviour` on every connection (over TLS with
    `ssl_context`). `stop()` cancels the handlers still running and closes their sockets."""

    def __init__(self, behaviour: Behaviour, ssl_context: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.connections = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/", scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self._ssl is not None else "http")
        return f"{scheme}://{self.address}{path}"

    async def start(self) -> FaultServer:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._ssl, backlog=512
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> FaultServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.behaviour(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or cut us off: what these servers provoke
        except asyncio.CancelledError:
            # stop(): ended here, not raised, or asyncio's stream callback logs the
            # cancellation as an error (it asks a cancelled task for its exception).
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()  # never wait for a peer that may not read

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()


@contextlib.asynccontextmanager
async def serving(*behaviours: Behaviour) -> Any:
    """Several FaultServers at once, stopped at the end."""
    servers = [FaultServer(b) for b in behaviours]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            await server.stop()


# --- timing checks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timed:
    """A check run by `run_check`: its result, how long it took, and how far past the
    probe's timeout it ended (0 when it ended before)."""

    result: Result
    elapsed: float
    timeout: float
    straggler: bool

    @property
    def overrun(self) -> float:
        return max(0.0, self.elapsed - self.timeout)

    def line(self, label: str) -> str:
        """One line of figures: what happened and how long it took."""
        return (
            f"{label}: {self.result.status.value} in {self.elapsed * 1000:.0f} ms "
            f"(timeout {self.timeout * 1000:.0f} ms, overrun {self.overrun * 1000:.1f} ms): "
            f"{self.result.message}"
        )


class Overruns:
    """The longest overrun seen and the number of checks timed, per group of tests (the
    module running) and for the whole session ("*")."""

    def __init__(self) -> None:
        self.group = ""
        self.longest: dict[str, tuple[float, str]] = {}
        self.checks: dict[str, int] = {}

    def note(self, label: str, overrun: float) -> None:
        """A check that ended `overrun` seconds past its timeout (0 if within it)."""
        for key in (self.group, "*"):
            self.checks[key] = self.checks.get(key, 0) + 1
            if overrun >= self.longest.get(key, (0.0, ""))[0]:
                self.longest[key] = (overrun, label)


OVERRUNS = Overruns()


async def timed_check(
    prober: Checkable, label: str = "", *, cancel_grace: float | None = None
) -> Timed:
    """One check through the scheduler's `run_check` (the hard timeout included), timed on
    the monotonic clock. A check that ignored cancellation is cancelled again here."""
    started = time.monotonic()
    if cancel_grace is None:
        run = await run_check(prober)
    else:
        run = await run_check(prober, cancel_grace=cancel_grace)
    elapsed = time.monotonic() - started
    if run.straggler is not None:
        run.straggler.cancel()
    timed = Timed(run.result, elapsed, prober.timeout, run.straggler is not None)
    OVERRUNS.note(label or prober.name, timed.overrun)
    return timed


def overrun_report(group: str) -> Any:
    """A module-scoped autouse fixture for a test module: at its end, the longest overrun
    past a timeout among the checks its tests timed, and the session's longest so far, go to
    the suite's figures (the last such line holds the suite's "longest check overrun past
    its timeout")."""
    from tests.faults.conftest import FaultFigures  # the figures' one list

    @pytest.fixture(scope="module", autouse=True, name=f"_overruns_{group.replace(' ', '_')}")
    def report() -> Iterator[None]:
        OVERRUNS.group = group
        yield
        OVERRUNS.group = ""
        if group in OVERRUNS.checks:
            longest, label = OVERRUNS.longest[group]
            overall, where = OVERRUNS.longest["*"]
            FaultFigures().add(
                f"{group}: longest check overrun past its timeout {longest * 1000:.1f} ms "
                f"({label}; {OVERRUNS.checks[group]} checks); whole suite so far "
                f"{overall * 1000:.1f} ms ({where})"
            )

    return report
