"""The `log` notifier: one JSON line per notification, appended to a file or stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.notify.base import DeliveryError, NotifyContext
from probe.notify.log import LogNotifier, LogSpec
from probe.notify.templates import Templates
from tests.config.conftest import ConfigFiles
from tests.notify.webhook_server import notification


def make(file: str, **keys) -> LogNotifier:
    spec = LogSpec.model_validate({"name": "log", "file": file, **keys})
    return LogNotifier(spec, NotifyContext(http=None, templates=Templates(), timeout=1, dry=False))


async def deliver(notifier: LogNotifier, n) -> None:
    await notifier.send(notifier.render(n))


async def test_one_json_line_per_notification_appended(tmp_path: Path) -> None:
    path = tmp_path / "alerts.log"
    path.write_text('{"earlier": true}\n')
    notifier = make(str(path))
    down = notification(probe="db", message='refused: "x"\nsecond line', time=1000.0)
    up = notification("recovery", probe="db", time=1060.0, outage_start=1000.0, duration=60.0)
    await deliver(notifier, down)
    await deliver(notifier, up)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == '{"earlier": true}'
    first, second = json.loads(lines[1]), json.loads(lines[2])
    assert (first["event"], first["probe"], first["message"]) == (
        "down",
        "db",
        'refused: "x"\nsecond line',
    )
    assert (second["event"], second["status"], second["duration"]) == ("recovery", "up", 60.0)
    assert first["id"] == down.id


async def test_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    notifier = make("stderr")
    assert notifier.spec.target() == "stderr"
    await deliver(notifier, notification(probe="web"))
    line = capsys.readouterr().err.strip()
    assert json.loads(line)["probe"] == "web"


async def test_an_unwritable_file_is_a_temporary_delivery_error(tmp_path: Path) -> None:
    notifier = make(str(tmp_path / "missing-dir" / "alerts.log"))
    with pytest.raises(DeliveryError) as info:
        await deliver(notifier, notification())
    assert info.value.permanent is False
    assert "cannot write" in info.value.message and "no such file" in info.value.message.lower()


async def test_template_override(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    notifier = make(str(path), template={"down": "DOWN {{ probe }}: {{ message }}"})
    await deliver(notifier, notification(probe="db", message="refused"))
    assert path.read_text() == "DOWN db: refused\n"


def test_config_relative_path_syslog_and_easeprobe_keys(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    cfg = files.load(
        "notify:\n  log:\n"
        "    - {name: a, file: logs/alerts.log, host: 127.0.0.1:514, network: udp}\n"
        "    - {name: b, file: stderr}\n"
    )
    a, b = cfg.notifiers
    assert isinstance(a, LogSpec) and isinstance(b, LogSpec)
    assert a.file == str(tmp_path / "logs" / "alerts.log") and b.file == "stderr"
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:3:40: notify.log[0].host: accepted for EaseProbe compatibility; not used",
        "probes.yaml:3:61: notify.log[0].network: accepted for EaseProbe compatibility; not used",
    ]
    assert files.errors("notify:\n  log:\n    - {name: a, file: syslog}\n") == [
        'probes.yaml:3:23: notify.log[0].file: syslog is not supported; use a file path or "stderr"'
    ]
