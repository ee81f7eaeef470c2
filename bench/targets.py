"""Fast local targets for the benchmarks, run in a separate process so that their CPU is not
counted as ours: a minimal HTTP/1.1 server answering `200 ok` and closing, and a TCP port that
accepts and closes; a gRPC health server and a private memcached for the grpc and memcache
probes. Loopback only."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


class _HTTP(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]
            self.transport.close()


class _Accept(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(http_port: int, tcp_port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(_HTTP, "127.0.0.1", http_port, backlog=4096)
    await loop.create_server(_Accept, "127.0.0.1", tcp_port, backlog=4096)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def start_targets() -> tuple[subprocess.Popen[str], int, int]:
    """Start the target process; returns (process, http port, tcp port)."""
    http_port, tcp_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(http_port), str(tcp_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, http_port, tcp_port


async def _serve_tls(port: int, ca_path: str) -> None:
    """A TLS port with a certificate for 127.0.0.1 from a throwaway CA (written to ca_path)."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    loop = asyncio.get_running_loop()
    await loop.create_server(_Accept, "127.0.0.1", port, ssl=context, backlog=4096)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def start_tls_target(ca_path: str) -> tuple[subprocess.Popen[str], int]:
    """Start a TLS target process; its CA certificate is written to `ca_path`."""
    port = free_port()
    return _spawn("tls", str(port), ca_path, ready="ready"), port


async def _serve_websocket(port: int) -> None:
    """A WebSocket server (websockets' own) whose connections answer pings and echo."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", port, compression=None, backlog=4096):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


def start_websocket_target() -> tuple[subprocess.Popen[str], int]:
    """Start a WebSocket target process (ws://127.0.0.1:port/)."""
    port = free_port()
    return _spawn("websocket", str(port), ready="ready"), port


async def _serve_grpc(port: int) -> None:
    """A gRPC server answering the health protocol (SERVING), as the grpc probes ask it."""
    import grpc.aio
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def start_grpc_target() -> tuple[subprocess.Popen[str], int]:
    """Start a gRPC health server process on a free loopback port."""
    port = free_port()
    return _spawn("grpc", str(port), ready="ready"), port


def start_memcached() -> tuple[subprocess.Popen[str], int] | None:
    """A private memcached (Debian's binary) on a free loopback port; None when not installed."""
    binary = shutil.which("memcached")
    if binary is None:
        return None
    port = free_port()
    command = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16", "-c", "1024"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # memcached refuses to run as root
    proc = subprocess.Popen(command, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None


def start_peer(kind: str) -> tuple[subprocess.Popen[str], int]:
    """The test peer of the mongo prober (MockupDB, tests/support/mongo_peer.py) or of the
    kafka prober (tests/support/kafka_peer.py) in a process of its own, so that its CPU is not
    counted as the prober's; returns it and its port."""
    proc = _spawn(kind)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline().strip())


def _spawn(kind: str, *args: str, ready: str | None = None) -> subprocess.Popen[str]:
    """This file run as the target `kind` in a process of its own (the repository on its
    path, for the tests' peers); with `ready`, once it printed that line."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), kind, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
    )
    assert proc.stdout is not None
    if ready is not None:
        assert proc.stdout.readline().strip() == ready
    return proc


def _serve_mongo() -> None:
    from tests.support.mongo_peer import MongoPeer

    with MongoPeer(documents={"bench:items": [{"_id": 1, "state": "ok"}]}) as peer:
        print(peer.address.rpartition(":")[2], flush=True)
        signal.sigwait({signal.SIGTERM})


async def _serve_kafka() -> None:
    from tests.support.kafka_peer import KafkaPeer, Topic

    async with KafkaPeer(topics=[Topic("orders", partitions=3)]) as peer:
        print(peer.port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    if sys.argv[1] == "mongo":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        _serve_mongo()
    elif sys.argv[1] == "kafka":
        asyncio.run(_serve_kafka())
    elif sys.argv[1] == "websocket":
        asyncio.run(_serve_websocket(int(sys.argv[2])))
    elif sys.argv[1] == "tls":
        asyncio.run(_serve_tls(int(sys.argv[2]), sys.argv[3]))
    elif sys.argv[1] == "grpc":
        asyncio.run(_serve_grpc(int(sys.argv[2])))
    else:
        asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
