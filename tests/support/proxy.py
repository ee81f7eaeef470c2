"""A TCP forwarder the test controls, put between a prober and a shared server.

Outages are made here, never by stopping a shared server (that would race every other test):
`cut()` resets every connection and refuses new ones, `stall()` accepts and forwards nothing
(a port that accepts and never speaks), `restore()` forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["TCPProxy"]


class TCPProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "forward"  # forward | stall | cut
        self.connections = 0  # accepted since start
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TCPProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TCPProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def cut(self) -> None:
        """Reset every open connection; new ones are reset as soon as they are accepted."""
        self.mode = "cut"
        self._reset_all()

    def stall(self) -> None:
        """New connections are accepted and then never answered."""
        self.mode = "stall"

    def restore(self) -> None:
        self.mode = "forward"

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "cut":
            _reset(writer)
            return
        if self.mode == "stall":
            self._writers.add(writer)
            with contextlib.suppress(Exception):
                await reader.read()  # hold the connection open until the client gives up
            self._writers.discard(writer)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
            self._tasks.discard(task)
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer sees a reset, not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
