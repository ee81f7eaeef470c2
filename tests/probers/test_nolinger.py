"""`nolinger` (http, tcp, tls): the prober's socket closes with a reset, so it leaves no
TIME_WAIT behind; without it, the prober closes first and its socket sits in TIME_WAIT.

Observed for real: the kernel's own table of TCP sockets (/proc/net/tcp*), and the server
seeing the reset."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import trustme

from probe.core.check import CheckContext
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.tcp import TCPProber, TCPSpec
from probe.probers.tls import TLSProber, TLSSpec
from tests.conftest import server_ssl_context

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/net/tcp"), reason="reads the kernel's socket table (Linux)"
)

_TIME_WAIT = "06"


def time_wait(port: int, *, prober_side_only: bool = True) -> int:
    """Sockets in TIME_WAIT of connections to the server on `port`: the prober's side (the
    remote end is `port`), or with `prober_side_only=False` either side."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            ends = [remote] if prober_side_only else [local, remote]
            if state == _TIME_WAIT and any(int(e.rsplit(":", 1)[1], 16) == port for e in ends):
                count += 1
    return count


class Ends:
    """How each connection the server accepted ended: "eof" or "reset"."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = asyncio.Event()

    async def wait_for_the_client_to_hang_up(self, reader: asyncio.StreamReader) -> None:
        # The server never closes first: whoever closes first is the one left in TIME_WAIT.
        try:
            while await reader.read(65536):
                pass
            self.seen.append("eof")
        except ConnectionResetError:
            self.seen.append("reset")
        finally:
            self.done.set()


async def serve(raw_server, ends: Ends, reply: bytes = b"", ssl_context=None):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        await ends.wait_for_the_client_to_hang_up(reader)

    return await raw_server(handler, ssl_context=ssl_context)


REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def run(prober) -> None:
    outcome = await prober.check(CheckContext())
    assert outcome.ok, outcome.message


@pytest.fixture
def tls_leaf(tls_ca: trustme.CA):
    return server_ssl_context(tls_ca.issue_cert("127.0.0.1"))


@pytest.mark.parametrize("nolinger", [True, False])
async def test_tcp(raw_server, resources, nolinger):
    ends = Ends()
    server = await serve(raw_server, ends)
    before = time_wait(server.port)  # an earlier server on this port may have left some
    spec = TCPSpec(name="t", host=server.address, nolinger=nolinger)
    await run(TCPProber(spec, resources))
    await asyncio.wait_for(ends.done.wait(), 5)
    assert ends.seen == ["reset" if nolinger else "eof"]
    assert time_wait(server.port) - before == (0 if nolinger else 1)


@pytest.mark.parametrize("nolinger", [True, False])
async def test_http(raw_server, resources, nolinger):
    ends = Ends()
    server = await serve(raw_server, ends, REPLY)
    before = time_wait(server.port)
    spec = HTTPSpec(name="h", url=f"http://{server.address}/", nolinger=nolinger)
    await run(HTTPProber(spec, resources))
    await asyncio.wait_for(ends.done.wait(), 5)
    assert ends.seen == ["reset" if nolinger else "eof"]
    assert time_wait(server.port) - before == (0 if nolinger else 1)


async def test_tls(raw_server, resources, tls_leaf, tls_ca_file):
    # Without nolinger a TLS close is often a reset already (the server's close_notify
    # reaches a closed socket), so only the nolinger side is asserted: nothing left behind.
    ends = Ends()
    server = await serve(raw_server, ends, ssl_context=tls_leaf)
    before = time_wait(server.port, prober_side_only=False)
    spec = TLSSpec(name="s", host=server.address, root_ca_pem_path=tls_ca_file, nolinger=True)
    await run(TLSProber(spec, resources))
    await asyncio.wait_for(ends.done.wait(), 5)
    assert time_wait(server.port, prober_side_only=False) - before == 0


def test_http_clients_with_and_without_nolinger_are_not_shared(resources):
    a = HTTPProber(HTTPSpec(name="a", url="http://127.0.0.1:1/"), resources)
    b = HTTPProber(HTTPSpec(name="b", url="http://127.0.0.1:1/", nolinger=True), resources)
    c = HTTPProber(HTTPSpec(name="c", url="http://127.0.0.1:2/x", nolinger=True), resources)
    assert a.client is not b.client
    assert b.client is c.client
