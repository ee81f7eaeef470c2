"""Name resolution faults, run inside network and mount namespaces of their own.

`python -m tests.faults.dns_child` is started by test_dns_faults.py under `unshare --net
--mount`. Here, and only here, the system resolver is pointed at a DNS server of ours on
127.0.0.1:53: the new network namespace has nothing but a loopback interface (so no query can
leave the machine whatever happens), and /etc/resolv.conf is replaced by a bind mount visible
to this process alone. The server answers NXDOMAIN for NXDOMAIN_NAME and never answers for
SILENT_NAME. The real probers then check names through getaddrinfo, and what they said is
printed as one JSON object on stdout.

It refuses to run (exit code 3, the reason on stderr) unless it is sure it is isolated: `lo`
is the only network interface, and the resolver configuration it wrote is the one the system
reads.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from probe.core.scheduler import run_check
from probe.eventloop import RESOLVER_THREADS
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from probe.probers.tcp import TCPProber, TCPSpec

NXDOMAIN_NAME = "nx.probe.test"
SILENT_NAME = "silent.probe.test"
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class Refused(Exception):
    """Not isolated: nothing is run."""


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def isolate() -> None:
    # Asked of the kernel for this process's namespace (/sys/class/net shows the namespace
    # sysfs was mounted in, not ours).
    interfaces = sorted(name for _index, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise Refused(f"not in a network namespace of our own (interfaces: {interfaces})")
    loopback_up()
    fd, path = tempfile.mkstemp(prefix="resolv-", suffix=".conf")
    with os.fdopen(fd, "w") as file:
        file.write(RESOLV_CONF)
    done = subprocess.run(
        ["mount", "--bind", path, "/etc/resolv.conf"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise Refused(f"cannot bind-mount /etc/resolv.conf: {done.stderr.strip()}")
    with open("/etc/resolv.conf") as file:
        if file.read() != RESOLV_CONF:
            raise Refused("/etc/resolv.conf is not the one written here")


# --- the DNS server ------------------------------------------------------------------------


def question_name(packet: bytes) -> tuple[str, int]:
    """The first question's name and where the question ends."""
    labels, at = [], 12
    while packet[at]:
        length = packet[at]
        labels.append(packet[at + 1 : at + 1 + length].decode("ascii", "replace"))
        at += 1 + length
    return ".".join(labels).lower(), at + 5  # the zero byte, QTYPE, QCLASS


def serve_dns(sock: socket.socket, seen: list[str]) -> None:
    """NXDOMAIN for NXDOMAIN_NAME, silence for everything else (SILENT_NAME included)."""
    while True:
        try:
            packet, peer = sock.recvfrom(4096)
        except OSError:
            return  # closed
        try:
            name, end = question_name(packet)
        except (IndexError, UnicodeError):
            continue
        seen.append(name)
        if name != NXDOMAIN_NAME:
            continue
        query_id, flags = struct.unpack("!HH", packet[:4])
        answer_flags = 0x8000 | (flags & 0x0100) | 0x0080 | 3  # response, RD copied, RA, NX
        header = struct.pack("!HHHHHH", query_id, answer_flags, 1, 0, 0, 0)
        sock.sendto(header + packet[12:end], peer)


# --- the checks -------------------------------------------------------------------------------


async def check(prober: Any) -> dict[str, Any]:
    started = time.monotonic()
    run = await run_check(prober)
    elapsed = time.monotonic() - started
    if run.straggler is not None:
        run.straggler.cancel()
    return {
        "name": prober.name,
        "status": run.result.status.value,
        "message": run.result.message,
        "phase": run.result.details.get("phase"),
        "elapsed": elapsed,
        "timeout": prober.timeout,
        "straggler": run.straggler is not None,
    }


async def checks() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    # What the App and each worker give the loop (probe.eventloop.use_io_threads).
    executor = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="probe-io")
    loop.set_default_executor(executor)
    resources = SharedResources()
    out: dict[str, Any] = {}

    def http(name: str, host: str, timeout: str) -> HTTPProber:
        spec = HTTPSpec(name=name, url=f"http://{host}:8080/health", timeout=timeout)
        return HTTPProber(spec, resources)

    def tcp(name: str, host: str, timeout: str) -> TCPProber:
        return TCPProber(TCPSpec(name=name, host=f"{host}:5432", timeout=timeout), resources)

    out["nxdomain"] = [
        await check(http("http-nx", NXDOMAIN_NAME, "2s")),
        await check(tcp("tcp-nx", NXDOMAIN_NAME, "2s")),
    ]
    out["silent"] = [
        await check(http("http-silent", SILENT_NAME, "500ms")),
        await check(tcp("tcp-silent", SILENT_NAME, "500ms")),
    ]

    # How long one lookup holds its executor thread when the resolver never answers.
    started = time.monotonic()
    try:
        await loop.run_in_executor(None, socket.getaddrinfo, SILENT_NAME, 80)
        out["lookup_error"] = None
    except socket.gaierror as exc:
        out["lookup_error"] = exc.strerror
    out["lookup_held_thread_s"] = time.monotonic() - started

    # More checks of one silent name at once than the pool has threads: they share one
    # lookup, so one thread is blocked for the resolver's timeout, not all of them.
    await asyncio.sleep(1.2)  # the lookups above have given their threads back
    many = RESOLVER_THREADS + 16
    threads_before = sum(t.name.startswith("probe-io") for t in threading.enumerate())
    silent = [tcp(f"silent-{i}", SILENT_NAME, "300ms") for i in range(many)]
    results = await asyncio.gather(*(check(p) for p in silent))
    out["flood"] = {
        "checks": many,
        "down": sum(r["status"] == "down" for r in results),
        "longest": max(r["elapsed"] for r in results),
        "stragglers": sum(r["straggler"] for r in results),
        "threads": sum(t.name.startswith("probe-io") for t in threading.enumerate()),
        "threads_before": threads_before,
    }
    await asyncio.sleep(1.2)  # that lookup ends

    # As many silent names as checks: every thread is blocked for the resolver's timeout; a
    # name in /etc/hosts (localhost) is answered without one meanwhile.
    distinct = [tcp(f"other-{i}", f"n{i}.{SILENT_NAME}", "300ms") for i in range(many)]
    results = await asyncio.gather(*(check(p) for p in distinct))
    out["distinct_flood"] = {
        "checks": many,
        "down": sum(r["status"] == "down" for r in results),
        "longest": max(r["elapsed"] for r in results),
        "threads": sum(t.name.startswith("probe-io") for t in threading.enumerate()),
    }
    out["hosts_file_name_meanwhile"] = await check(tcp("localhost", "localhost", "300ms"))
    started = time.monotonic()
    await loop.run_in_executor(None, lambda: None)
    out["noop_job_waited_s"] = time.monotonic() - started
    await asyncio.sleep(1.5)  # the flood's lookups end
    out["hosts_file_name_after"] = await check(tcp("localhost", "localhost", "300ms"))
    await resources.aclose()
    executor.shutdown(wait=True)
    return out


def main() -> int:
    try:
        isolate()
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    seen: list[str] = []
    threading.Thread(target=serve_dns, args=(sock, seen), daemon=True).start()
    out = asyncio.run(checks())
    sock.close()
    out["queries_seen"] = sorted(set(seen))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
