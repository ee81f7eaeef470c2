"""CPU per check, probe against Prometheus blackbox_exporter, in one run on one machine.

Run:  .venv/bin/python bench/vs_blackbox.py [--kind http|https|tcp|tls] [--rate 300]
      [--seconds 20]
Needs Debian's nginx-light (or nginx) and prometheus-blackbox-exporter
(`apt-get install nginx-light prometheus-blackbox-exporter`).

A local nginx is the target (plain HTTP, or TLS with a throwaway self-signed certificate for
https and tls, not verified by either prober; `tcp` only opens and closes a connection).
blackbox_exporter is driven at `--rate` probes per second through its /probe endpoint by
threads of this script (module http_2xx, tcp_connect, or tcp_connect with TLS), and probe runs
`rate x interval` probes of the same kind, each with a fresh connection per check, as
`probe run` does. For each, the CPU of its own process only (the driver is not counted) over
`--seconds`, divided by the checks it completed in that time (probe: the results its store
holds for the window, so a prober that falls behind shows it as checks done below checks due,
not as a low figure per check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
BB_MODULES = {
    "http": "  http_2xx:\n    prober: http\n    timeout: 5s\n",
    "https": "  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
    "      tls_config: {insecure_skip_verify: true}\n",
    "tcp": "  tcp_connect:\n    prober: tcp\n    timeout: 5s\n",
    "tls": "  tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n"
    "      tls_config: {insecure_skip_verify: true}\n",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def await_port(port: int, within: float = 20.0) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {within:.0f}s")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of the process and its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def start(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,  # type: ignore[arg-type]
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def drive(port: int, path: str, rate: float, seconds: float, threads: int = 32) -> int:
    """GET `path` on 127.0.0.1:`port` at `rate` per second for `seconds`: the ones answered
    with a success (blackbox_exporter answers 200 with probe_success 1)."""
    total = int(rate * seconds)
    began = time.monotonic()
    done = [0]
    lock = threading.Lock()

    def worker(first: int) -> None:
        for k in range(first, total, threads):
            pause = began + k / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path)
                body = conn.getresponse().read()
                if b"probe_success 1" in body:
                    with lock:
                        done[0] += 1
            except OSError:
                pass
            finally:
                conn.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return done[0]


def probe_config(kind: str, count: int, target: int, interval: int, folder: Path) -> Path:
    lines = [f"{'http' if kind == 'https' else kind}:"]
    for i in range(count):
        if kind in ("http", "https"):
            lines += [f"  - name: p{i}", f"    url: {kind}://127.0.0.1:{target}/?p={i}"]
            if kind == "https":
                lines += ["    insecure: true"]
        elif kind == "tcp":
            lines += [f"  - name: p{i}", f"    host: 127.0.0.1:{target}"]
        else:
            lines += [
                f"  - name: p{i}",
                f"    host: 127.0.0.1:{target}",
                "    insecure_skip_verify: true",
            ]
    lines += [
        "settings:",
        "  probe:",
        f"    interval: {interval}s",
        "    timeout: 5s",
        "  store:",
        f"    path: {folder}/probe.db",
        "  http:",
        f"    port: {free_port()}",
    ]
    path = folder / "probes.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def results_between(store: Path, start: float, end: float) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM results WHERE time >= ? AND time < ?", (start, end)
        ).fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("http", "https", "tcp", "tls"), default="http")
    parser.add_argument("--rate", type=float, default=300.0, help="checks per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=int, default=10, help="probe's interval (s)")
    parser.add_argument("--probe", default=str(Path(sys.executable).parent / "probe"))
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    exporter = shutil.which("prometheus-blackbox-exporter")
    if not Path(nginx).exists() or exporter is None:
        sys.exit(
            "needs nginx and blackbox_exporter:"
            " apt-get install nginx-light prometheus-blackbox-exporter"
        )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        target = free_port()
        listen = f"127.0.0.1:{target}"
        tls = ""
        if args.kind in ("tls", "https"):
            cert, key = self_signed(folder)
            listen += " ssl"
            tls = f"ssl_certificate {cert}; ssl_certificate_key {key}; "
        (folder / "nginx.conf").write_text(
            f"worker_processes 1; pid {folder}/nginx.pid; error_log {folder}/nginx.err;"
            " daemon off;\nevents { worker_connections 16384; }\n"
            f"http {{ access_log off; server {{ listen {listen}; {tls}"
            'location / { return 200 "ok\\n"; } } }\n'
        )
        processes = [start([nginx, "-c", str(folder / "nginx.conf")])]
        try:
            await_port(target)
            module = "http_2xx" if args.kind in ("http", "https") else "tcp_connect"
            (folder / "bb.yml").write_text("modules:\n" + BB_MODULES[args.kind])
            bb_port = free_port()
            bb = start(
                [
                    exporter,
                    f"--config.file={folder}/bb.yml",
                    f"--web.listen-address=127.0.0.1:{bb_port}",
                ]
            )
            processes.append(bb)
            await_port(bb_port)
            plain = f"127.0.0.1:{target}"
            web = args.kind in ("http", "https")
            scheme_target = f"{args.kind}://{plain}/" if web else plain
            path = f"/probe?module={module}&target={scheme_target}"
            drive(bb_port, path, args.rate, 2)  # warm up
            before = cpu_of(bb.pid)
            bb_done = drive(bb_port, path, args.rate, args.seconds)
            bb_cpu = cpu_of(bb.pid) - before
            bb_per = bb_cpu / max(bb_done, 1)
            stop(bb)
            count = int(args.rate * args.interval)
            config = probe_config(args.kind, count, target, args.interval, folder)
            env = {k: v for k, v in os.environ.items() if k != "PROBE_EVENT_LOOP"}
            if "PROBE_EVENT_LOOP" in os.environ:
                env["PROBE_EVENT_LOOP"] = os.environ["PROBE_EVENT_LOOP"]
            prober = start([args.probe, "run", "-c", str(config)], cwd=folder, env=env)
            processes.append(prober)
            time.sleep(args.interval + 3)  # every probe has had its first check
            if prober.poll() is not None:
                sys.exit(f"probe run exited with {prober.returncode}")
            began, before = time.time(), cpu_of(prober.pid)
            time.sleep(args.seconds)
            ended, cpu = time.time(), cpu_of(prober.pid) - before
            rss = peak_rss_mb(prober.pid)
            stop(prober)  # its store is flushed at stop: every result of the window is in
            done = results_between(folder / "probe.db", began, ended)
            due = count * (ended - began) / args.interval
        finally:
            for process in processes:
                stop(process)
    per = cpu / max(done, 1)
    print(
        f"{args.kind} at {args.rate:.0f} checks/s ({count} probes every {args.interval}s),"
        f" {args.seconds:.0f}s each, CPU of each prober's process per check done:"
    )
    print(f"  blackbox_exporter  {bb_per * 1e6:8.0f} us  ({bb_done} checks done)")
    print(
        f"  probe              {per * 1e6:8.0f} us  ({done} done of {due:.0f} due;"
        f" peak RSS {rss:.0f} MB)"
    )
    print(f"  ratio probe / blackbox_exporter: {per / bb_per:.2f}")


if __name__ == "__main__":
    main()
