"""Happy Eyeballs (`probe.probers._connect`), for real on loopback.

A black hole without leaving the machine: a listener whose accept queue is full drops further
SYNs, so a connect to it waits until it is given up.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterator

import pytest

from probe.core.check import CheckContext
from probe.probers._connect import ATTEMPT_DELAY, happy_eyeballs, interleave_families, open_socket
from probe.probers._net import Address
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.tcp import TCPProber, TCPSpec

V4 = socket.AF_INET
V6 = socket.AF_INET6


def v4(host: str, port: int) -> Address:
    return V4, (host, port)


def v6(host: str, port: int) -> Address:
    return V6, (host, port, 0, 0)


def _black_hole(family: socket.AddressFamily, host: str, port: int = 0) -> Iterator[int]:
    listener = socket.socket(family, socket.SOCK_STREAM)
    fillers = [socket.socket(family, socket.SOCK_STREAM) for _ in range(3)]
    try:
        listener.bind((host, port))
        listener.listen(0)
        bound = listener.getsockname()[1]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex((host, bound))
        yield bound
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
def black_hole() -> Iterator[Callable[..., int]]:
    """`black_hole(host="127.0.0.2", port=0, family=AF_INET) -> port` whose connects hang."""
    holes: list[Iterator[int]] = []

    def make(host: str = "127.0.0.2", port: int = 0, family: socket.AddressFamily = V4) -> int:
        hole = _black_hole(family, host, port)
        holes.append(hole)
        return next(hole)

    yield make
    for hole in holes:
        hole.close()


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def race(addresses: list[Address], ctx: CheckContext) -> tuple[socket.socket, Address]:
    return await happy_eyeballs(addresses, open_socket, discard=socket.socket.close, ctx=ctx)


async def test_a_black_hole_first_still_connects_after_the_attempt_delay(black_hole, raw_server):
    server = await raw_server(idle)
    hole = black_hole()
    await asyncio.sleep(0.05)  # the fillers' handshakes done
    cancelled: list[Address] = []

    async def attempt(address: Address) -> socket.socket:
        try:
            return await open_socket(address)  # closes its socket on every other path
        except asyncio.CancelledError:
            cancelled.append(address)
            raise

    loop = asyncio.get_running_loop()
    started = loop.time()
    ctx = CheckContext()
    sock, address = await happy_eyeballs(
        [v4("127.0.0.2", hole), v4("127.0.0.1", server.port)],
        attempt,
        discard=socket.socket.close,
        ctx=ctx,
    )
    elapsed = loop.time() - started
    try:
        assert address == v4("127.0.0.1", server.port)
        assert ctx.details["peer"] == server.address
        assert ATTEMPT_DELAY * 0.8 <= elapsed < ATTEMPT_DELAY + 0.5
        assert cancelled == [v4("127.0.0.2", hole)]  # and done with before the race returned
    finally:
        sock.close()


async def test_a_refused_address_starts_the_next_at_once(closed_port, raw_server):
    server = await raw_server(idle)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sock, address = await race(
        [v4("127.0.0.1", closed_port), v4("127.0.0.1", server.port)], CheckContext()
    )
    sock.close()
    assert address == v4("127.0.0.1", server.port)
    assert loop.time() - started < ATTEMPT_DELAY / 2


async def test_every_address_refused(closed_port):
    ctx = CheckContext()
    with pytest.raises(ConnectionRefusedError):
        await race([v4("127.0.0.2", closed_port), v4("127.0.0.1", closed_port)], ctx)
    assert ctx.details["peer"] == f"127.0.0.2:{closed_port}"  # the first tried


async def test_a_local_only_error_gives_way_to_the_service_s_answer():
    # An IPv6 address this machine has no route for says less than the refusal of the IPv4
    # one (no socket here: the attempts only raise).
    async def attempt(address: Address) -> socket.socket:
        if address[0] == V6:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    ctx = CheckContext()
    with pytest.raises(ConnectionRefusedError):
        await happy_eyeballs(
            [v6("2001:db8::1", 80), v4("192.0.2.1", 80)],
            attempt,
            discard=socket.socket.close,
            ctx=ctx,
        )
    assert ctx.details["peer"] == "192.0.2.1:80"


async def test_all_local_only_errors_report_the_first():
    async def attempt(address: Address) -> socket.socket:
        raise OSError(errno.ENETUNREACH, f"unreachable {address[1][0]}")

    with pytest.raises(OSError, match="2001:db8::1"):
        await happy_eyeballs(
            [v6("2001:db8::1", 80), v6("2001:db8::2", 80)], attempt, discard=socket.socket.close
        )


async def test_a_loser_that_connects_is_closed():
    closed: list[str] = []

    class Conn:
        def __init__(self, name: str) -> None:
            self.name = name

    gate = asyncio.get_running_loop().create_future()

    async def attempt(address: Address) -> Conn:
        # Both connect in the same turn of the loop: one wins, the other must be discarded.
        if address[1][0] == "a":
            await gate
        else:
            gate.set_result(None)
        return Conn(address[1][0])

    winner, _address = await happy_eyeballs(
        [v4("a", 1), v4("b", 1)], attempt, discard=lambda conn: closed.append(conn.name)
    )
    await asyncio.sleep(0)
    assert {winner.name, *closed} == {"a", "b"}
    assert winner.name not in closed


async def test_hard_timeout_during_the_race_leaves_no_socket(black_hole, open_fds):
    holes = [black_hole("127.0.0.2"), black_hole("127.0.0.3"), black_hole("127.0.0.4")]
    await asyncio.sleep(0.05)
    before = open_fds()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(ATTEMPT_DELAY * 2.5):
            await race(
                [v4(f"127.0.0.{i + 2}", port) for i, port in enumerate(holes)], CheckContext()
            )
    assert open_fds() == before


def test_families_are_interleaved_the_first_address_s_first():
    addresses = [v6("::1", 1), v6("::2", 1), v4("127.0.0.1", 1), v6("::3", 1), v4("127.0.0.2", 1)]
    assert interleave_families(addresses) == [
        v6("::1", 1),
        v4("127.0.0.1", 1),
        v6("::2", 1),
        v4("127.0.0.2", 1),
        v6("::3", 1),
    ]
    assert interleave_families([v4("127.0.0.1", 1)]) == [v4("127.0.0.1", 1)]


# --- through the probers ----------------------------------------------------------------------


def resolve_to(monkeypatch: pytest.MonkeyPatch, addresses: list[Address]) -> None:
    """`svc.test` resolves to `addresses`, in that order (nothing is asked of a DNS server)."""
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host, port, **kwargs):
        assert host == "svc.test"
        return [(family, socket.SOCK_STREAM, 6, "", sockaddr) for family, sockaddr in addresses]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_tcp_prober_past_a_black_hole_ipv6_first(
    monkeypatch, black_hole, raw_server, ipv6_loopback, resources: SharedResources
):
    # The resolver prefers IPv6, whose two addresses hang: the IPv4 one, tried second (the
    # families interleaved), answers after one attempt delay.
    server = await raw_server(idle)
    holes = [black_hole(ipv6_loopback, family=V6), black_hole(ipv6_loopback, family=V6)]
    resolve_to(monkeypatch, [*(v6("::1", port) for port in holes), v4("127.0.0.1", server.port)])
    prober = TCPProber(TCPSpec(name="tcp", host=f"svc.test:{server.port}", timeout="2s"), resources)
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await prober.check(CheckContext())
    assert outcome.ok
    assert outcome.message == f"connected to {server.address}"
    assert loop.time() - started < ATTEMPT_DELAY + 0.5


async def test_http_prober_past_a_black_hole(monkeypatch, black_hole, raw_server, resources):
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    server = await raw_server(ok)
    try:
        black_hole("127.0.0.2", server.port)  # the same port: the URL's
    except OSError:
        pytest.skip("127.0.0.2 cannot bind the server's port here")
    resolve_to(monkeypatch, [v4("127.0.0.2", server.port), v4("127.0.0.1", server.port)])
    spec = HTTPSpec(name="web", url=f"http://svc.test:{server.port}/", timeout="2s")
    ctx = CheckContext()
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await HTTPProber(spec, resources).check(ctx)
    assert outcome.ok, outcome.message
    assert ctx.details["peer"] == server.address
    assert loop.time() - started < ATTEMPT_DELAY + 0.5
