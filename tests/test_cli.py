"""The `probe` command end to end: real subprocesses, a real local HTTP server, a real store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from probe import __version__
from tests.support.cli import PROBE, spawn_probe
from tests.support.config import use_free_http_port


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    hits: dict[str, Any] = {"count": 0, "slow_started": asyncio.Event()}

    async def ok(request: web.Request) -> web.Response:
        hits["count"] += 1
        return web.Response(text="all good")

    async def slow(request: web.Request) -> web.Response:
        hits["slow_started"].set()
        await asyncio.sleep(1.0)
        return web.Response(text="slow but fine")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def probe_cmd(*args: str, cwd: Path, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PROBE, *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_version(tmp_path):
    code, out, _ = await probe_cmd("--version", cwd=tmp_path)
    assert code == 0 and out.strip().startswith(f"probe {__version__} (Python ")
    assert out.strip().endswith("event loop asyncio)")


async def test_check_prints_counts_per_kind(tmp_path):
    write(
        tmp_path / "probes.yaml",
        """
http:
  - {name: a, url: "http://127.0.0.1:1/"}
  - {name: b, url: "http://127.0.0.1:1/", enabled: false}
tcp:
  - {name: c, host: "127.0.0.1:1"}
""",
    )
    code, out, err = await probe_cmd("check", cwd=tmp_path)  # probes.yaml found by default
    assert code == 0, err
    assert "probes: 3 (http: 2, tcp: 1)" in out
    assert "disabled: 1" in out
    assert "notifiers: 0" in out


async def test_config_from_environment_variable(tmp_path):
    cfg = write(tmp_path / "elsewhere.yaml", "tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    proc = await asyncio.create_subprocess_exec(
        *PROBE,
        "check",
        cwd=tmp_path,
        env={**os.environ, "PROBE_CONFIG": str(cfg)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and "probes: 1 (tcp: 1)" in out.decode()


async def test_bad_config_is_one_located_line_and_exit_2(tmp_path):
    write(
        tmp_path / "bad.yaml", "http:\n  - name: a\n    url: http://127.0.0.1:1/\n    tiemout: 5s\n"
    )
    code, _out, err = await probe_cmd("check", "-c", "bad.yaml", cwd=tmp_path)
    assert code == 2
    assert "Traceback" not in err
    assert 'bad.yaml:4:5: http[0].tiemout: unknown key "tiemout" (did you mean "timeout"?)' in err


async def test_missing_config_file_is_exit_2(tmp_path):
    code, _, err = await probe_cmd("once", "-c", "nope.yaml", cwd=tmp_path)
    assert code == 2 and "nope.yaml" in err and "Traceback" not in err


async def test_usage_error_is_exit_2(tmp_path):
    code, _, err = await probe_cmd("sla", "--format", "xml", cwd=tmp_path)
    assert code == 2 and "Traceback" not in err


@pytest.mark.slow
async def test_once_json_shape_and_exit_code(tmp_path, http_server):
    base, _ = http_server
    write(
        tmp_path / "p.yaml",
        f"""
http:
  - name: web
    url: "http://user:secret@{base[len("http://") :]}/"
    contain: good
tcp:
  - name: closed
    host: "127.0.0.1:{closed_port()}"
""",
    )
    code, out, err = await probe_cmd("once", "-c", "p.yaml", "--format", "json", cwd=tmp_path)
    assert code == 1, err  # one probe is down
    items = json.loads(out)
    assert [i["name"] for i in items] == ["web", "closed"]
    web_item, closed = items
    assert set(web_item) == {
        "name",
        "kind",
        "endpoint",
        "status",
        "latency_ms",
        "message",
        "time",
        "details",
    }
    assert web_item["status"] == "up" and web_item["kind"] == "http"
    assert isinstance(web_item["latency_ms"], float)
    assert web_item["time"].endswith("Z")
    assert "secret" not in out and "user:" not in web_item["endpoint"]
    assert closed["status"] == "down" and closed["latency_ms"] is None
    assert "refused" in closed["message"]
    assert not (tmp_path / "data").exists()  # once writes nothing


@pytest.mark.slow
async def test_once_text_all_up_exit_0(tmp_path, http_server):
    base, _ = http_server
    write(tmp_path / "p.yaml", f"http:\n  - {{name: web, url: '{base}/'}}\n")
    code, out, _ = await probe_cmd("once", "-c", "p.yaml", cwd=tmp_path)
    assert code == 0
    assert "UP" in out and "web" in out and "1 up, 0 down" in out


async def run_for(
    tmp_path: Path,
    seconds: float,
    sig: int = signal.SIGTERM,
    *,
    until: asyncio.Event | None = None,
) -> tuple[int, str]:
    """Start `probe run`, wait until it is probing (its signal handlers are in place by
    then) and, if given, until `until` is set; then run `seconds` more and send `sig`."""
    config = tmp_path / "p.yaml"
    if "afile" not in config.read_text():  # the start-up failure tests keep their file as is
        use_free_http_port(config)
    proc = await spawn_probe("run", "-c", "p.yaml", cwd=tmp_path)
    assert proc.stderr is not None
    seen: list[bytes] = []

    async def probing() -> bool:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            seen.append(line)
            if b"probing" in line:
                return True
        return False  # exited first: a start-up failure

    if await asyncio.wait_for(probing(), 60):
        if until is not None:
            await asyncio.wait_for(until.wait(), 30)
        await asyncio.sleep(seconds)
        proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, b"".join(seen).decode() + err.decode()


async def sla_json(tmp_path: Path, window: str = "24h") -> dict[str, dict]:
    code, out, err = await probe_cmd(
        "sla", "-c", "p.yaml", "--window", window, "--format", "json", cwd=tmp_path
    )
    assert code == 0, err
    return {item["name"]: item for item in json.loads(out)}


@pytest.mark.slow
async def test_run_then_sla_and_restart_continues(tmp_path, http_server):
    base, _hits = http_server
    down_port = closed_port()
    write(
        tmp_path / "p.yaml",
        f"""
settings:
  probe: {{interval: 200ms, timeout: 150ms}}
http:
  - {{name: web, url: "{base}/"}}
tcp:
  - {{name: gone, host: "127.0.0.1:{down_port}"}}
""",
    )
    code, err = await run_for(tmp_path, 2.0)
    assert code == 0, err
    assert (tmp_path / "data" / "probe.db").exists()  # relative to the config file
    first = await sla_json(tmp_path)
    assert set(first) == {"web", "gone"}
    assert first["web"]["checks"] >= 4 and first["web"]["sla"] == 100.0
    assert first["web"]["up_s"] > 0.5 and first["web"]["p95_ms"] is not None
    assert first["gone"]["sla"] == 0.0 and first["gone"]["incidents"] == 1
    assert set(first["web"]) == {
        "name",
        "kind",
        "endpoint",
        "window",
        "sla",
        "up_s",
        "down_s",
        "checks",
        "incidents",
        "p95_ms",
    }

    code, err = await run_for(tmp_path, 1.5, signal.SIGINT)
    assert code == 0, err
    second = await sla_json(tmp_path)
    assert second["web"]["checks"] > first["web"]["checks"]
    # the outage continues across the restart: no second incident
    assert second["gone"]["incidents"] == 1
    all_time = await sla_json(tmp_path, "all")
    assert all_time["web"]["checks"] == second["web"]["checks"]

    code, out, _ = await probe_cmd("sla", "-c", "p.yaml", cwd=tmp_path)
    assert code == 0 and "web" in out and "100.000%" in out


@pytest.mark.slow
async def test_sla_without_store_says_no_data(tmp_path):
    write(tmp_path / "p.yaml", "tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    items = await sla_json(tmp_path, "7d")
    assert items["c"]["sla"] is None and items["c"]["checks"] == 0
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
async def test_sla_rejects_unknown_window(tmp_path):
    write(tmp_path / "p.yaml", "tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    code, _, err = await probe_cmd("sla", "-c", "p.yaml", "--window", "5y", cwd=tmp_path)
    assert code == 2 and "24h" in err and "Traceback" not in err


@pytest.mark.slow
async def test_sigterm_lets_a_check_in_flight_finish(tmp_path, http_server):
    base, hits = http_server
    write(
        tmp_path / "p.yaml",
        f"http:\n  - {{name: slow, url: '{base}/slow', interval: 10s, timeout: 5s}}\n",
    )
    # SIGTERM while the only check is in flight (the server takes 1 s to answer)
    code, err = await run_for(tmp_path, 0.1, until=hits["slow_started"])
    assert code == 0, err
    items = await sla_json(tmp_path, "all")
    assert items["slow"]["checks"] == 1  # finished and stored, not cancelled


@pytest.mark.slow
async def test_store_under_a_regular_file_is_exit_3(tmp_path):
    (tmp_path / "afile").write_text("x")
    write(
        tmp_path / "p.yaml",
        "settings:\n  store: {path: afile/probe.db}\ntcp:\n  - {name: c, host: '127.0.0.1:1'}\n",
    )
    code, err = await run_for(tmp_path, 1.0)
    assert code == 3
    assert "afile/probe.db" in err and "Traceback" not in err


@pytest.mark.slow
async def test_corrupt_store_is_exit_3_and_left_untouched(tmp_path):
    garbage = os.urandom(8192)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "probe.db").write_bytes(garbage)
    write(tmp_path / "p.yaml", "tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    code, err = await run_for(tmp_path, 1.0)
    assert code == 3 and "probe.db" in err and "Traceback" not in err
    assert (tmp_path / "data" / "probe.db").read_bytes() == garbage
    code, _, err = await probe_cmd("sla", "-c", "p.yaml", cwd=tmp_path)
    assert code == 3 and "Traceback" not in err
    assert (tmp_path / "data" / "probe.db").read_bytes() == garbage


async def test_unusable_log_file_is_exit_3(tmp_path):
    (tmp_path / "afile").write_text("x")
    write(
        tmp_path / "p.yaml",
        "settings:\n  log: {file: afile/probe.log}\ntcp:\n  - {name: c, host: '127.0.0.1:1'}\n",
    )
    code, err = await run_for(tmp_path, 1.0)
    assert code == 3 and "afile/probe.log" in err and "Traceback" not in err


EDGE_CONFIGS = {
    # Every bound at its limit: what `check` accepts, `run` must start with (issue 9: a
    # retention of 0s and a NUL in store.path passed check and crashed run).
    "bounds": """
settings:
  probe: {interval: 100ms, timeout: 1ms, failure: 10000, success: 10000, concurrency: 65536,
          alert: {strategy: exponent, factor: 10000, max: 10000}}
  notify: {retry: {times: 100}}
  store: {retention: 1h}
tcp:
  - {name: gone, host: "127.0.0.1:CLOSED", labels: {critical: true, tier: 1}}
""",
    "odd paths": """
settings:
  store: {path: "data dir/pröbe ☃.db"}
  status: {path: "public dir/índex.html"}
tcp:
  - {name: gone, host: "127.0.0.1:CLOSED"}
""",
}


@pytest.mark.parametrize("text", list(EDGE_CONFIGS.values()), ids=list(EDGE_CONFIGS))
@pytest.mark.slow
async def test_what_check_accepts_run_starts_and_stops_cleanly(tmp_path, text):
    write(tmp_path / "p.yaml", text.replace("CLOSED", str(closed_port())))
    # A status path the user names must be in an existing folder (run refuses it otherwise).
    (tmp_path / "public dir").mkdir()
    code, _out, err = await probe_cmd("check", "-c", "p.yaml", cwd=tmp_path)
    assert code == 0, err
    code, err = await run_for(tmp_path, 0.5)
    assert code == 0, err
    assert "Traceback" not in err
