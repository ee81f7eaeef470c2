"""The test suite's TCP proxy must really forward, cut and stall, or outage tests prove nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.proxy import TCPProxy


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_forward_cut_stall_restore():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with TCPProxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(4), 2) == b"ping"

        proxy.cut()
        with pytest.raises(ConnectionResetError):
            writer.write(b"again")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(4), 2)
            if not data:
                raise ConnectionResetError
        writer.close()

        proxy.stall()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(5), 0.3)
        writer.close()

        proxy.restore()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"back")
        assert await asyncio.wait_for(reader.read(4), 2) == b"back"
        writer.close()
        assert proxy.connections == 3
    server.close()
    await server.wait_closed()
