"""Native-client probers: checks per second and CPU per check against the local services.

Run:  .venv/bin/python bench/native.py [--seconds 10] [--in-flight 50] [KIND ...]

For each kind, 50 probes of that kind (one config, loaded as users load theirs) are checked
back to back, 50 checks in flight, each check through the scheduler's own runner
(`run_check`: hard timeout, fresh connection, closed after). CPU is the whole process's
(driver threads included) over the checks done; the services run in their own processes.
Services are found as the tests find them (PROBE_TEST_POSTGRES, ...; README: Development);
a kind whose service does not answer is reported as skipped. ssh and host log in to a private
sshd started here (as root; the probe-ssh user of scripts/services.sh), whose CPU is not
counted: the figure is the prober's side. mongo and kafka are checked against the tests'
wire-protocol peers (MockupDB; tests/support/kafka_peer.py), each in a process of its own:
no MongoDB or Kafka server can be installed here. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import (
    start_grpc_target,
    start_memcached,
    start_peer,
    start_targets,
    start_tls_target,
    start_websocket_target,
)
from probe.assembly import build_probers, load_config
from probe.core.scheduler import run_check
from probe.probers.base import SharedResources
from tests.support.sshd import SSH_PASSWORD, SSH_USER, PrivateSSHD

SERVICES = {
    "postgres": ("PROBE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("PROBE_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
    "redis": ("PROBE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    "mqtt": ("PROBE_TEST_MQTT", "mqtt://127.0.0.1:1883"),
    "etcd": ("PROBE_TEST_ETCD", "http://127.0.0.1:2379"),
    "influxdb": ("PROBE_TEST_INFLUXDB", "http://127.0.0.1:8086"),
}
# Kinds whose server the benchmark starts itself (no shared service for them).
# mongo and kafka: against the tests' wire-protocol peers (no server can be installed here).
OWN_TARGETS = ["grpc", "memcache", "mongo", "kafka"]
# Over SSH, to a private sshd (tests/support/sshd.py: needs root and the probe-ssh user).
SSH_KINDS = ("ssh", "host")
KINDS = [
    "http",
    "tcp",
    "tls",
    "shell",
    "ping",
    "zookeeper",
    "dns",
    "websocket",
    *SERVICES,
    *SSH_KINDS,
    *OWN_TARGETS,
]


def service_url(kind: str) -> str:
    variable, default = SERVICES[kind]
    return os.environ.get(variable) or default


def start_dnsmasq() -> tuple[subprocess.Popen[bytes] | None, str]:
    """A private dnsmasq (Debian's dnsmasq-base) answering www.bench.test on a free loopback
    port and forwarding nothing; (None, "") when it is not installed."""
    binary = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin")
    if binary is None:
        return None, ""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    user = ["--user=root"] if os.geteuid() == 0 else []
    command = [binary, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}"]
    command += ["--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts"]
    command += ["--pid-file=", *user, "--host-record=www.bench.test,10.0.0.1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if answers(f"tcp://127.0.0.1:{port}"):
            break
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def entries(kind: str, n: int, targets: dict[str, str]) -> tuple[str, list[str]]:
    """(section, YAML flow mappings) for n probes of `kind`."""
    if kind == "http":
        return "http", [f"{{name: b{i}, url: '{targets['http']}/b{i}'}}" for i in range(n)]
    if kind == "tcp":
        return "tcp", [f"{{name: b{i}, host: '{targets['tcp']}'}}" for i in range(n)]
    if kind == "tls":
        return "tls", [
            f"{{name: b{i}, host: '{targets['tls']}', root_ca_pem_path: '{targets['tls_ca']}'}}"
            for i in range(n)
        ]
    if kind == "ping":
        # One echo request per check (raw socket: the bench runs as root), so CPU per check
        # is CPU per packet exchanged.
        return "ping", [
            f"{{name: b{i}, host: 127.0.0.1, count: 1, privileged: true}}" for i in range(n)
        ]
    if kind == "zookeeper":
        # A session opened, one znode read, the session closed (against the private server).
        return "client", [
            f"{{name: b{i}, driver: zookeeper, host: '{targets['zookeeper']}', "
            "data: {/bench: ok}}"
            for i in range(n)
        ]
    if kind == "shell":
        return "shell", [f"{{name: b{i}, cmd: 'true'}}" for i in range(n)]
    if kind == "websocket":
        return "websocket", [
            f"{{name: b{i}, url: '{targets['websocket']}/b{i}'}}" for i in range(n)
        ]
    if kind == "dns":
        return "dns", [
            f"{{name: b{i}, query: www.bench.test, server: '{targets['dns']}',"
            " answers: {contain: [10.0.0.1]}}"
            for i in range(n)
        ]
    if kind in SSH_KINDS:
        login = (
            f"host: '{SSH_USER}@{targets['ssh']}', password: '{SSH_PASSWORD}', "
            f"known_hosts: '{targets['known_hosts']}'"
        )
        # Thresholds no busy machine trips: the figure is the cost of a check, not the verdict.
        calm = "threshold: {cpu: 1, mem: 1, disk: 1, load: {m1: 99, m5: 99, m15: 99}}"
        extra = "cmd: 'true'" if kind == "ssh" else calm
        return kind, [f"{{name: b{i}, {login}, {extra}}}" for i in range(n)]
    if kind == "grpc":
        return "grpc", [f"{{name: b{i}, host: '{targets['grpc']}'}}" for i in range(n)]
    if kind == "mongo":
        find = """data: {'bench:items': '{"state": "ok"}'}"""
        return "client", [
            f"{{name: b{i}, driver: mongo, host: '{targets['mongo']}', {find}}}" for i in range(n)
        ]
    if kind == "kafka":
        topics = "topics: [orders]"
        return "client", [
            f"{{name: b{i}, driver: kafka, host: '{targets['kafka']}', {topics}}}" for i in range(n)
        ]
    if kind == "memcache":
        return "client", [
            f"{{name: b{i}, driver: memcache, host: '{targets['memcache']}'}}" for i in range(n)
        ]
    return "client", [
        f"{{name: b{i}, driver: {kind}, dsn: '{service_url(kind)}'}}" for i in range(n)
    ]


async def measure(
    config_path: Path, seconds: float, in_flight: int
) -> tuple[int, float, Counter[str], float]:
    config = load_config(config_path)
    resources = SharedResources()
    probers = build_probers(config.enabled_probes, resources)
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    checks = 0

    async def worker(index: int) -> None:
        nonlocal checks
        prober = probers[index % len(probers)]
        while time.monotonic() < deadline:
            run = await run_check(prober)
            checks += 1
            outcomes[run.result.status.value if run.result.ok else run.result.message] += 1

    await asyncio.gather(*(worker(i) for i in range(in_flight)))  # warm-up: imports, first TLS
    deadline = time.monotonic() + seconds
    checks = 0
    outcomes.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for prober in probers:
        await prober.aclose()
    await resources.aclose()
    return checks, cpu, outcomes, wall


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kinds", nargs="*", default=KINDS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"machine: {os.cpu_count()} cores; {args.in_flight} checks in flight, "
        f"{args.seconds:g}s per kind after a warm-up of the same length\n"
    )
    proc, http_port, tcp_port = start_targets()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tls_proc, tls_port = start_tls_target(str(folder / "ca.pem"))
        dns_proc, dns_server = start_dnsmasq()
        ws_proc, ws_port = start_websocket_target()
        own: list[subprocess.Popen[str]] = [tls_proc]
        if "grpc" in args.kinds:
            grpc_proc, grpc_port = start_grpc_target()
            own.append(grpc_proc)
        memcached = start_memcached() if "memcache" in args.kinds else None
        if memcached is not None:
            own.append(memcached[0])
        peers: dict[str, int] = {}
        for kind in ("mongo", "kafka"):
            if kind in args.kinds:
                peer_proc, peers[kind] = start_peer(kind)
                own.append(peer_proc)
        targets = {
            "http": f"http://127.0.0.1:{http_port}",
            "tcp": f"127.0.0.1:{tcp_port}",
            "tls": f"127.0.0.1:{tls_port}",
            "tls_ca": str(folder / "ca.pem"),
            "dns": dns_server,
            "websocket": f"ws://127.0.0.1:{ws_port}",
        }
        zookeeper = None
        if "zookeeper" in args.kinds:
            # Debian's ZooKeeper, started privately as the tests start it (no shared one).
            from tests.support.zookeeper import PrivateZooKeeper

            zookeeper = PrivateZooKeeper(folder / "zookeeper").start()
            zookeeper.create("/bench", "ok")
            targets["zookeeper"] = zookeeper.address
        sshd: PrivateSSHD | None = None
        if "grpc" in args.kinds:
            targets["grpc"] = f"127.0.0.1:{grpc_port}"
        if memcached is not None:
            targets["memcache"] = f"127.0.0.1:{memcached[1]}"
        for kind, port in peers.items():
            targets[kind] = f"127.0.0.1:{port}"
        print(f"{'kind':<9} {'checks/s':>9} {'CPU/check':>10}  outcomes")
        try:
            for kind in args.kinds:
                if kind in SERVICES and not answers(service_url(kind)):
                    print(f"{kind:<9} skipped: nothing answers at {service_url(kind)}")
                    continue
                if kind == "dns" and dns_proc is None:
                    print(f"{kind:<9} skipped: dnsmasq is not installed (dnsmasq-base)")
                    continue
                if kind in SSH_KINDS and sshd is None:
                    if os.geteuid() != 0 or not os.access("/usr/sbin/sshd", os.X_OK):
                        print(f"{kind:<9} skipped: a private sshd needs root and openssh-server")
                        continue
                    sshd = PrivateSSHD(folder / "sshd", authorized=[]).start()
                    targets["ssh"] = sshd.address
                    targets["known_hosts"] = str(folder / "known_hosts")
                    (folder / "known_hosts").write_text(sshd.known_hosts_line())
                if kind == "memcache" and memcached is None:
                    print(f"{kind:<9} skipped: memcached is not installed")
                    continue
                section, items = entries(kind, args.in_flight, targets)
                path = folder / f"{kind}.yaml"
                path.write_text(f"{section}:\n" + "".join(f"  - {item}\n" for item in items))
                checks, cpu, outcomes, wall = await measure(path, args.seconds, args.in_flight)
                shown = ", ".join(f"{k}: {v}" for k, v in outcomes.most_common(3))
                print(
                    f"{kind:<9} {checks / wall:>9.0f} {cpu / max(checks, 1) * 1e3:>8.2f}ms  {shown}"
                )
        finally:
            if zookeeper is not None:
                zookeeper.stop()
            if sshd is not None:
                sshd.stop()
            proc.terminate()
            proc.wait(10)
            for started in [ws_proc, *own]:  # own holds the TLS target too
                started.terminate()
                started.wait(10)
            if dns_proc is not None:
                dns_proc.terminate()
                dns_proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
