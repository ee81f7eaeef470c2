"""The web server's clients are bounded in number and in time (issue 9): a slow request head
is cut off, idle keep-alive connections are closed, connections past the limit are closed at
once, and a flood of idle clients never costs a check its descriptors. Real sockets on
loopback; the last test runs a real `probe run` under a low RLIMIT_NOFILE."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from probe.store import Store
from probe.web.data import StatusSource
from probe.web.server import HEADER_TIMEOUT, connection_cap, create_app, start_server
from tests.store.helpers import NOW, Clock
from tests.support.cli import spawn_probe
from tests.web.test_server import PROBES

pytestmark = pytest.mark.slow

MARGIN = 3.0  # scheduling slack on a loaded machine; the bounds themselves are seconds

Start = Callable[..., Awaitable[int]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def start(store: Store) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def go(**kwargs: object) -> int:
        app = create_app(StatusSource(store, PROBES, clock=lambda: NOW))
        runner, port = await start_server(app, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        runners.append(runner)
        return port

    yield go
    for runner in runners:
        await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (reads until EOF or a reset)."""
    began = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - began


async def test_partial_request_line_is_cut_off(start: Start) -> None:
    port = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/sla HT")  # and nothing more: a slowloris
    await writer.drain()
    took = await closed_after(reader, HEADER_TIMEOUT + MARGIN)
    writer.close()
    assert took <= HEADER_TIMEOUT + MARGIN


async def test_trickled_headers_are_cut_off(start: Start) -> None:
    """A byte of header every half second keeps the connection busy but never ends the
    head: the bound runs from the first byte, not from the last."""
    port = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    closed = asyncio.create_task(closed_after(reader, HEADER_TIMEOUT + MARGIN))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while not closed.done():
            writer.write(b"X")
            await writer.drain()
            sent += 1
            await asyncio.wait([closed], timeout=0.5)
    await closed
    writer.close()
    assert sent >= 5  # it kept trickling until it was cut off
    assert time.monotonic() - began <= HEADER_TIMEOUT + MARGIN


async def test_silent_connection_is_closed(start: Start) -> None:
    port = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    took = await closed_after(reader, HEADER_TIMEOUT + MARGIN)
    writer.close()
    assert took <= HEADER_TIMEOUT + MARGIN


async def test_idle_keep_alive_is_closed_and_a_whole_request_is_answered(start: Start) -> None:
    port = await start(idle_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    took = await closed_after(reader, 1.0 + MARGIN)  # kept alive, then idle
    writer.close()
    assert took <= 1.0 + MARGIN


async def test_connections_past_the_limit_are_closed_at_once(start: Start) -> None:
    port = await start(max_connections=5)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    await asyncio.sleep(0.2)  # all five counted
    extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(15)]
    # Each excess one is closed as soon as it arrives, long before any timeout.
    for reader, _ in extra:
        assert await closed_after(reader, 2.0) < 2.0
    for _, writer in extra:
        writer.close()
    # The five within the limit are still open, and answered.
    reader, writer = held[0]
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)  # their slots are given back
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 200


def test_connection_cap_follows_rlimit_nofile() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) == min(10, soft // 4)
    assert connection_cap(10**6) <= max(1, soft // 4)


# --- the whole program under a small descriptor limit -----------------------------------------

CLIENTS = 200
RLIMIT = 100  # the machine


def _low_rlimit() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (RLIMIT, RLIMIT))


async def _connect(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 2
        )
    except (OSError, TimeoutError):
        sock.close()
        return None
    return sock


async def test_idle_clients_never_cost_a_check_its_descriptors(tmp_path: Path) -> None:
    """`probe run` with RLIMIT_NOFILE=100 checks a loopback port every 100 ms while 200
    clients connect to its web server and sit idle: every check stays up, and nothing in
    its log says "too many open files"."""
    accepted = 0

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        w.close()

    target = await asyncio.start_server(accept, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    (tmp_path / "p.yaml").write_text(
        "settings:\n"
        "  http: {port: 0, refresh: 1s}\n"
        "  status: {path: index.html}\n"
        "tcp:\n"
        f"  - {{name: self, host: '127.0.0.1:{target_port}', interval: 100ms, timeout: 2s}}\n"
    )
    proc = await spawn_probe(
        "run",
        "-c",
        "p.yaml",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        preexec_fn=_low_rlimit,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    log: list[str] = []
    clients: list[socket.socket] = []
    try:
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "probe run ended: " + "".join(log)
            log.append(line)
            if found := re.search(r"serving http://127\.0\.0\.1:(\d+)/", line):
                port = int(found.group(1))

        async def read_log() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                log.append(line.decode())

        reader = asyncio.create_task(read_log())
        before = accepted
        for _ in range(CLIENTS):
            sock = await _connect(port)
            if sock is not None:
                clients.append(sock)
        flood_began = time.time()
        await asyncio.sleep(3.0)  # ~30 checks while the clients sit there
        checks_during = accepted - before
        for sock in clients:
            sock.close()
        clients.clear()
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            detail = (await client.get("/api/v1/probes/self")).json()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await reader
    finally:
        for sock in clients:
            sock.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        target.close()
    text = "".join(log)
    assert "too many open files" not in text.lower(), text[-3000:]
    assert checks_during >= 10, text[-3000:]
    during = [
        r
        for r in detail["results"]
        if r["time"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(flood_began))
    ]
    assert len(during) >= 10 and all(r["status"] == "up" for r in during), during
    assert "connection(s) closed at once" in text  # the limit did the work
