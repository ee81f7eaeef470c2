"""Opening a TCP connection the way a client does: resolve, then Happy Eyeballs.

Every prober that opens TCP itself (tcp, tls, redis, and the HTTP transport under the http and
etcd probers) goes through here, so they all resolve with `_net.resolve` (the one bounded
resolver) and race the addresses as RFC 8305 says: address families interleaved, a new
attempt started every ATTEMPT_DELAY (or at once when the previous one fails), the first to
connect wins and the others are cancelled and closed.

`aiohappyeyeballs` (installed with aiohttp) implements the same race, but when every address
fails it folds the errors into one `OSError("Multiple exceptions: ...")` without an errno
when they differ, which loses the error a check should report. `happy_eyeballs()` keeps each
attempt's error and reports the most useful one; it also races any connect coroutine (the
HTTP transport races httpcore's streams, not sockets).
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import itertools
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from probe.core.check import CheckContext
from probe.probers._net import Address, format_address, iter_causes, resolve

__all__ = [
    "ATTEMPT_DELAY",
    "NODELAY",
    "NOLINGER",
    "SocketOption",
    "connect_tcp",
    "happy_eyeballs",
    "interleave_families",
    "open_socket",
]

T = TypeVar("T")

# RFC 8305 section 5's recommended "Connection Attempt Delay": how long an attempt has on its
# own before the next address is tried alongside it.
ATTEMPT_DELAY = 0.25

# (level, option, value) for socket.setsockopt(), as httpcore's SOCKET_OPTION.
SocketOption = tuple[int, int, int] | tuple[int, int, bytes]

# SO_LINGER on, 0 seconds: close() then sends a RST instead of a FIN and the socket never sits
# in TIME_WAIT (EaseProbe's `nolinger`, for probes run very often). Set before connecting.
NOLINGER: tuple[int, int, bytes] = (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
# No Nagle delay on small writes (asyncio sets it too; redis-py asks for it explicitly).
NODELAY: tuple[int, int, int] = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

# Errors that say only that this machine cannot use an address (no route for its family, no
# such family here): any other address's error tells more about the service.
_LOCAL_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
)

# Connections that won a race too late, being closed (a task must be referenced until done).
_closing: set[asyncio.Task[Any]] = set()


async def connect_tcp(
    host: str,
    port: int,
    ctx: CheckContext,
    *,
    options: Iterable[SocketOption] = (),
    delay: float = ATTEMPT_DELAY,
) -> socket.socket:
    """A connected, non-blocking socket to `host:port`, with the phases "resolve" and
    "connect" reported on `ctx` and `ctx.details["peer"]` the address connected to (or the
    one whose error is raised). Raises the resolver's ProbeError or the connect's OSError."""
    ctx.phase = "resolve"
    addresses = await resolve(host, port)
    ctx.phase = "connect"
    chosen = tuple(options)
    sock, _address = await happy_eyeballs(
        addresses,
        lambda address: open_socket(address, chosen),
        discard=_close,
        ctx=ctx,
        delay=delay,
    )
    return sock


async def open_socket(address: Address, options: Iterable[SocketOption] = ()) -> socket.socket:
    """One connection attempt: a socket with `options` set, connected to `address`; closed
    on every other path (cancellation included: the scheduler's hard timeout)."""
    family, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for level, name, value in options:
            sock.setsockopt(level, name, value)
        sock.setblocking(False)
        if not _connected_at_once(sock, sockaddr):
            await asyncio.get_running_loop().sock_connect(sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _connected_at_once(sock: socket.socket, sockaddr: tuple[Any, ...]) -> bool:
    """Start connecting; True when the connection is made by the time the call returns, as
    it is to a local server (the kernel runs the whole handshake inside connect()). Asking
    again costs one system call, where waiting for the event loop to say the socket is
    writable costs a selector registration, a future and a turn of the loop. A refusal
    seen here is raised as the OSError it is; otherwise the loop waits as usual."""
    try:
        sock.connect(sockaddr)
        return True
    except BlockingIOError:
        pass
    code = sock.connect_ex(sockaddr)
    if code in (0, errno.EISCONN):
        return True
    if code in (errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN):
        return False
    raise OSError(code, os.strerror(code))


def _note_peer(ctx: CheckContext, address: Address) -> None:
    """The address being tried, then the one connected to: `details["peer"]` for people,
    the `IP` fact for conditions (`[IP]`)."""
    ctx.details["peer"] = format_address(address[1])
    ctx.facts["IP"] = str(address[1][0])


def _close(sock: socket.socket) -> None:
    sock.close()


async def happy_eyeballs(
    addresses: Sequence[Address],
    attempt: Callable[[Address], Coroutine[Any, Any, T]],
    *,
    discard: Callable[[T], object],
    ctx: CheckContext | None = None,
    delay: float = ATTEMPT_DELAY,
) -> tuple[T, Address]:
    """Race `attempt` over `addresses` (RFC 8305): the first to succeed and its address.

    `discard` closes a connection that is not used (it may return an awaitable); `attempt`
    must close its own on failure and cancellation. When every attempt fails, the most
    useful error is raised (see `_most_useful`). `ctx.details["peer"]` follows the attempts.
    """
    if len(addresses) == 1:
        # Nothing to race: awaited directly, the connection reaches the caller without the
        # loop turns a task adds (a reset that follows the accept then meets the first write,
        # as it does for any client, instead of being read before it).
        address = addresses[0]
        if ctx is not None:
            _note_peer(ctx, address)
        return await attempt(address), address
    queue = deque(interleave_families(addresses))
    running: dict[asyncio.Task[T], Address] = {}
    winner: tuple[T, Address] | None = None
    try:
        winner = await _race(queue, running, attempt, ctx, delay)
    finally:
        try:
            await _abandon(running, discard)
        except BaseException:
            if winner is not None:  # cancelled while the losers were closing
                _discard(discard, winner[0])
            raise
    return winner


async def _race(
    queue: deque[Address],
    running: dict[asyncio.Task[T], Address],
    attempt: Callable[[Address], Coroutine[Any, Any, T]],
    ctx: CheckContext | None,
    delay: float,
) -> tuple[T, Address]:
    failures: list[tuple[Address, BaseException]] = []
    while queue or running:
        if queue:
            address = queue.popleft()
            if ctx is not None:
                _note_peer(ctx, address)
            running[asyncio.create_task(attempt(address))] = address
        # Until an attempt ends, or for the delay while addresses are left; a failure starts
        # the next attempt at once.
        done, _pending = await asyncio.wait(
            running, timeout=delay if queue else None, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            address = running.pop(task)
            error = task.exception()
            if error is None:
                if ctx is not None:
                    _note_peer(ctx, address)
                return task.result(), address
            failures.append((address, error))
    address, error = _most_useful(failures)  # resolve() never returns an empty list
    if ctx is not None:
        _note_peer(ctx, address)
    raise error


async def _abandon(running: dict[asyncio.Task[T], Address], discard: Callable[[T], object]) -> None:
    """Cancel the attempts still running and wait until each has closed its socket; one
    that connected before its cancellation arrived is discarded."""
    for task in running:
        task.cancel()
        task.add_done_callback(lambda done: _settle(done, discard))
    if running:
        await asyncio.wait(running)


def _settle(task: asyncio.Task[T], discard: Callable[[T], object]) -> None:
    if task.cancelled() or task.exception() is not None:  # retrieved: no "never retrieved" log
        return
    _discard(discard, task.result())


def _discard(discard: Callable[[T], object], value: T) -> None:
    closing = discard(value)
    if inspect.isawaitable(closing):
        task = asyncio.ensure_future(closing)
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def interleave_families(addresses: Iterable[Address]) -> list[Address]:
    """The addresses with their families alternating, the first address's family first
    (RFC 8305 section 4); within a family the resolver's order is kept."""
    by_family: dict[socket.AddressFamily, list[Address]] = {}
    for address in addresses:
        by_family.setdefault(address[0], []).append(address)
    rounds = itertools.zip_longest(*by_family.values())
    return [address for group in rounds for address in group if address is not None]


def _most_useful(
    failures: Sequence[tuple[Address, BaseException]],
) -> tuple[Address, BaseException]:
    """The failure to report: the first, in the order the addresses were tried, that says
    something about the service rather than only that this machine cannot use the address."""
    for failure in failures:
        if not _local_only(failure[1]):
            return failure
    return failures[0]


def _local_only(exc: BaseException) -> bool:
    for cause in iter_causes(exc):
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause.errno in _LOCAL_ERRNOS
    return False
