"""The command line's alerting: `probe notify-test`, `probe run --dry-notify`, the `notify:`
section in `probe check` (counts per kind, located errors). Real subprocesses, real local
webhook servers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError
from tests.notify.webhook_server import Answer, WebhookServer

PROBE = [sys.executable, "-m", "probe"]
SECRET = "/hook/s3cret"


async def probe_cmd(*args: str, cwd: Path, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *PROBE, *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def ok_server(web_server) -> WebhookServer:
    s = WebhookServer()
    await s.start(web_server)
    return s


@pytest.fixture
async def refusing_server(web_server) -> WebhookServer:
    s = WebhookServer()
    s.default = Answer(
        403, json.dumps({"error": "invalid_token"}), {"Content-Type": "application/json"}
    )
    await s.start(web_server)
    return s


def notify_config(tmp_path: Path, ok: WebhookServer, refusing: WebhookServer) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        f"""
tcp:
  - {{name: db, host: "127.0.0.1:1"}}
notify:
  webhook:
    - {{name: good, url: "{ok.base}{SECRET}"}}
    - {{name: bad, url: "{refusing.base}{SECRET}"}}
  log:
    - {{name: file, file: alerts.log}}
"""
    )
    return path


@pytest.mark.slow
async def test_notify_test_reports_each_notifier(tmp_path, ok_server, refusing_server) -> None:
    notify_config(tmp_path, ok_server, refusing_server)
    code, out, err = await probe_cmd("notify-test", cwd=tmp_path)
    assert code == 1, err
    assert out.splitlines() == [
        f"good (http → {ok_server.base})",
        "  down: sent",
        "  recovery: sent",
        f"bad (http → {refusing_server.base})",
        f"  down: failed: {refusing_server.base} answered 403: invalid_token",
        f"  recovery: failed: {refusing_server.base} answered 403: invalid_token",
        f"file (log → {tmp_path / 'alerts.log'})",
        "  down: sent",
        "  recovery: sent",
        "",
        "3 notifier(s), 2 message(s) failed",
    ]
    assert "s3cret" not in out + err
    assert [(h.json["event"], h.json["probe"]) for h in ok_server.hits] == [
        ("down", "notify-test"),
        ("recovery", "notify-test"),
    ]
    assert ok_server.hits[1].json["duration"] == 125.0
    assert len(refusing_server.hits) == 2  # no retries
    lines = (tmp_path / "alerts.log").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["down", "recovery"]


@pytest.mark.slow
async def test_notify_test_one_notifier(tmp_path, ok_server, refusing_server) -> None:
    notify_config(tmp_path, ok_server, refusing_server)
    code, out, _ = await probe_cmd("notify-test", "--notifier", "good", cwd=tmp_path)
    assert code == 0
    assert out.splitlines()[0] == f"good (http → {ok_server.base})"
    assert out.rstrip().endswith("1 notifier(s), 0 message(s) failed")
    assert refusing_server.hits == []

    code, out, err = await probe_cmd("notify-test", "--notifier", "nope", cwd=tmp_path)
    assert code == 2 and out == ""
    assert "no notifier named 'nope' (configured: good, bad, file)" in err


@pytest.mark.slow
async def test_notify_test_without_notifiers(tmp_path) -> None:
    (tmp_path / "probes.yaml").write_text("tcp:\n  - {name: db, host: '127.0.0.1:1'}\n")
    code, _, err = await probe_cmd("notify-test", cwd=tmp_path)
    assert code == 2 and "the config has no notifiers" in err


async def test_check_counts_notifiers_per_kind(tmp_path, ok_server, refusing_server) -> None:
    notify_config(tmp_path, ok_server, refusing_server)
    code, out, _ = await probe_cmd("check", cwd=tmp_path)
    assert code == 0
    assert "  notifiers: 3 (http: 2, log: 1)" in out.splitlines()


@pytest.mark.slow
async def test_check_reports_notify_errors_located(tmp_path) -> None:
    (tmp_path / "probes.yaml").write_text(
        "notify:\n"
        "  slak:\n    - {name: a, webhook: 'https://hooks.slack.com/services/x'}\n"
        "  wecom:\n    - {name: b, webhook: 'https://qyapi.weixin.qq.com/x'}\n"
        "  log:\n    - {name: c}\n"
    )
    code, out, err = await probe_cmd("check", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        'probes.yaml:2:3: notify.slak: unknown notifier kind "slak" (did you mean "slack"?)',
        "probes.yaml:4:3: notify.wecom: EaseProbe's wecom notifier is not supported;"
        " use apprise with a wecombot:// URL",
        "probes.yaml:7:7: notify.log[0].file: missing required key",
    ]
    assert "Traceback" not in err


def test_a_notifier_module_that_cannot_be_imported_is_a_located_error(
    tmp_path, monkeypatch
) -> None:
    import probe.notify

    monkeypatch.setitem(probe.notify.NOTIFIERS, "mqtt", "probe.notify.no_such_module:X")
    path = tmp_path / "probes.yaml"
    path.write_text("notify:\n  mqtt:\n    - {name: m, host: '127.0.0.1:1883', topic: t}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert str(problem).endswith(
        "probes.yaml:2:3: notify.mqtt: mqtt notifiers are unavailable"
        " (ModuleNotFoundError: No module named 'probe.notify.no_such_module')"
    )


@pytest.mark.slow
async def test_run_dry_notify_logs_the_payload_and_sends_nothing(tmp_path, ok_server) -> None:
    (tmp_path / "probes.yaml").write_text(
        f"""
tcp:
  - {{name: db, host: "127.0.0.1:1", interval: 200ms, timeout: 150ms}}
notify:
  http:
    - {{name: ops, url: "{ok_server.base}{SECRET}?token=s3cret"}}
settings:
  store: {{path: probe.db}}
  http: {{port: 0}}
  notify: {{group: {{wait: 0s}}}}  # the down message at once
"""
    )
    proc = await asyncio.create_subprocess_exec(
        *PROBE,
        "run",
        "--dry-notify",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 20
    try:
        while b"dry run: ops (http) would send" not in seen:
            assert time.monotonic() < deadline, seen.decode()
            chunk = await asyncio.wait_for(proc.stderr.read(4096), 20)
            assert chunk, seen.decode()
            seen += chunk
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    log = seen.decode()
    assert proc.returncode == 0
    assert ok_server.hits == []
    line = next(x for x in log.splitlines() if "dry run: ops (http) would send" in x)
    assert f"the down notification for db to {ok_server.base}: " in line
    payload = json.loads(line.split(f"to {ok_server.base}: ", 1)[1])
    assert (payload["event"], payload["probe"], payload["status"]) == ("down", "db", "down")
    assert "s3cret" not in log
