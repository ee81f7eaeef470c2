"""The event loop the program runs on: asyncio's own, uvloop with PROBE_EVENT_LOOP=uvloop (a
dev dependency, so the tests have it); real runs of `probe once` and `probe run` on each,
checking a local HTTP server, its TCP port and a shell command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from probe import eventloop

uvloop = pytest.importorskip("uvloop")  # a dev dependency: present wherever `make test` runs


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "UP"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def config(tmp_path: Path, port: int, interval: str = "60s") -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        f"http:\n  - {{name: web, url: 'http://127.0.0.1:{port}/', interval: {interval},"
        " conditions: ['[BODY].status == UP']}\n"
        f"tcp:\n  - {{name: port, host: '127.0.0.1:{port}', interval: {interval}}}\n"
        f"shell:\n  - {{name: cmd, cmd: 'true', interval: {interval}}}\n"
        f"settings:\n  store: {{path: '{tmp_path / 'probe.db'}'}}\n"
        "  http: {port: 0}\n"
    )
    return path


def env(loop: str | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != eventloop.ENV}
    if loop is not None:
        out[eventloop.ENV] = loop
    return out


def test_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_running()) == "asyncio"
    assert eventloop.unmet_request() is None
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    assert eventloop.loop_name() == f"uvloop {uvloop.__version__}"
    assert eventloop.run(_running()) == f"uvloop {uvloop.__version__}"
    assert eventloop.unmet_request() is None
    monkeypatch.setenv(eventloop.ENV, "tokio")
    assert eventloop.loop_name() == "asyncio"
    assert "not a loop this program knows" in (eventloop.unmet_request() or "")


async def _running() -> str:
    return eventloop.running_loop_name()


@pytest.mark.parametrize("loop", [None, "uvloop"])
def test_probe_once_on_each_loop(tmp_path: Path, server: int, loop: str | None) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "probe",
            "once",
            "-c",
            str(config(tmp_path, server)),
            "--format",
            "json",
        ],
        env=env(loop),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    assert {name: r["status"] for name, r in results.items()} == {
        "web": "up",
        "port": "up",
        "cmd": "up",
    }
    version = subprocess.run(
        [sys.executable, "-m", "probe", "--version"], env=env(loop), capture_output=True, text=True
    )
    expected = f"uvloop {uvloop.__version__}" if loop else "asyncio"
    assert version.stdout.strip().endswith(f"event loop {expected})")


@pytest.mark.slow
def test_probe_run_on_uvloop(tmp_path: Path, server: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "probe", "run", "-c", str(config(tmp_path, server, "200ms"))],
        env=env("uvloop"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        rows = 0
        while time.monotonic() < deadline and rows < 15:
            time.sleep(0.5)
            db = tmp_path / "probe.db"
            if db.exists():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    try:
                        rows = conn.execute("SELECT count(*) FROM results").fetchone()[0]
                    except sqlite3.OperationalError:
                        rows = 0
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"on the uvloop {uvloop.__version__} event loop" in output
    assert rows >= 15, output
    with sqlite3.connect(tmp_path / "probe.db") as conn:
        down = conn.execute("SELECT count(*) FROM results WHERE status != 'up'").fetchone()[0]
    assert down == 0
