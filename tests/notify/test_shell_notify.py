"""The shell notifier running real commands: a Python script (this interpreter) that writes
what it was given (environment, stdin) to a file, and `sh` for the failure cases."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, Event, Notification, NotifyContext
from probe.notify.shell import ShellNotifier, ShellNotifySpec, event_environment, go_duration
from probe.notify.templates import Templates
from tests.notify.samples import notification as sample

# Writes {"env": {...}, "stdin": "..."} to the file named by its first argument.
RECORDER = """
import json, os, sys
data = sys.stdin.read()
with open(sys.argv[1], "w") as fh:
    json.dump({"env": dict(os.environ), "stdin": data}, fh)
"""

T0 = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def notification(event: Event = Event.DOWN, **fields: Any) -> Notification:
    defaults = {
        "time": T0,
        "position": 3,
        "outage_start": T0 - 120,
        "labels": {"team": "core", "env": "prod"},
    }
    return sample(event, **{**defaults, **fields})


def make(cmd: str, *args: str, **keys: Any) -> ShellNotifier:
    keys.setdefault("timeout", "5s")
    spec = ShellNotifySpec.model_validate(
        {"name": "script", "cmd": cmd, "args": list(args), **keys}
    )
    context = NotifyContext(http=None, templates=Templates(), timeout=10.0, dry=False)
    return ShellNotifier(spec, context)


def recorder(out: Path, **keys: Any) -> ShellNotifier:
    return make(sys.executable, "-c", RECORDER, str(out), **keys)


async def deliver(notifier: ShellNotifier, note: Notification | None = None) -> None:
    await notifier.send(notifier.render(note or notification()))


def running(pid: int) -> bool:
    """Whether `pid` is alive (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_registry_points_at_the_notifier():
    assert load_notifier_class("shell") is ShellNotifier


async def test_event_in_the_environment_and_on_stdin(tmp_path):
    out = tmp_path / "seen.json"
    await deliver(recorder(out, env=["EXTRA=1", "PROBE_NAME=not-this"]))
    seen = json.loads(out.read_text())
    env = seen["env"]
    assert env["PROBE_EVENT"] == "down"
    assert env["PROBE_NAME"] == "api"  # the event's variables win over env entries
    assert env["PROBE_KIND"] == "http"
    assert env["PROBE_ENDPOINT"] == "https://api.example.test/health"
    assert env["PROBE_STATUS"] == "down"
    assert env["PROBE_MESSAGE"] == "status 503 not in 200-399"
    assert env["PROBE_TIME"] == "2023-11-14T22:13:20.250Z"
    assert env["PROBE_OUTAGE_START"] == "2023-11-14T22:11:20.250Z"
    assert env["PROBE_DURATION"] == ""
    assert env["PROBE_POSITION"] == "3"
    assert json.loads(env["PROBE_LABELS"]) == {"team": "core", "env": "prod"}
    assert env["EXTRA"] == "1"
    assert "PATH" in env  # this process's environment, without clean_env
    # EaseProbe's names.
    assert env["EASEPROBE_TYPE"] == "Status"
    assert env["EASEPROBE_TITLE"] == "api Failure"
    assert env["EASEPROBE_NAME"] == "api"
    assert env["EASEPROBE_STATUS"] == "down"
    assert env["EASEPROBE_TIMESTAMP"] == "1700000000250"
    assert env["EASEPROBE_TIME"] == "2023-11-14 22:13:20 Z"
    assert env["EASEPROBE_MESSAGE"] == "status 503 not in 200-399"
    assert env["EASEPROBE_RTT"] == "0"
    # EaseProbe's CSV, on stdin (by default) and in EASEPROBE_CSV.
    assert env["EASEPROBE_CSV"] == seen["stdin"]
    rows = list(csv.reader(io.StringIO(env["EASEPROBE_CSV"])))
    assert rows[0][:4] == ["Title", "Name", "Endpoint", "Status"]
    assert rows[1][:4] == ["api Failure", "api", "https://api.example.test/health", "down"]
    # EaseProbe's JSON object in EASEPROBE_JSON; ours, the JSON event, in PROBE_JSON.
    assert json.loads(env["EASEPROBE_JSON"]) == {
        "name": "api Failure",
        "endpoint": "https://api.example.test/health",
        "time": "2023-11-14T22:13:20.25Z",
        "timestamp": 1700000000250,
        "rtt": 0,
        "status": "down",
        "prestatus": "down",
        "message": "status 503 not in 200-399",
    }
    event = json.loads(env["PROBE_JSON"])
    assert event["event"] == "down" and event["probe"] == "api"
    assert event["labels"] == {"team": "core", "env": "prod"}


async def test_recovery_carries_the_duration(tmp_path):
    out = tmp_path / "seen.json"
    await deliver(recorder(out), notification(Event.RECOVERY, duration=330.5, position=0))
    env = json.loads(out.read_text())["env"]
    assert env["PROBE_EVENT"] == "recovery"
    assert env["PROBE_DURATION"] == "330.5"
    # EaseProbe's recovery title: the downtime as Go prints it, halves rounded up as Go does.
    assert env["EASEPROBE_TITLE"] == "api Recovery - ( 5m31s Downtime )"
    assert env["EASEPROBE_STATUS"] == "up"


async def test_clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_MARKER", "leaked")
    out = tmp_path / "seen.json"
    await deliver(recorder(out, clean_env=True, env=["ONLY=this"]))
    env = json.loads(out.read_text())["env"]
    assert "PROBE_TEST_MARKER" not in env
    assert env["ONLY"] == "this"
    assert env["PROBE_EVENT"] == "down"


async def test_sla_report_type(tmp_path):
    out = tmp_path / "seen.json"
    report = {"window": "day", "rows": [{"name": "api", "sla": 99.5, "down_s": 432}]}
    note = Notification(event=Event.SLA, time=T0, report=report)
    await deliver(recorder(out), note)
    seen = json.loads(out.read_text())
    assert seen["env"]["EASEPROBE_TYPE"] == "SLA"
    assert seen["env"]["PROBE_EVENT"] == "sla"
    assert json.loads(seen["env"]["EASEPROBE_JSON"])["event"] == "sla"
    assert seen["stdin"].startswith("Name,Endpoint,UpTime,")


async def test_template_override_shapes_the_json(tmp_path):
    out = tmp_path / "seen.json"
    notifier = recorder(
        out,
        format="json",
        template={"down": '{"who": {{ probe | tojson }}, "what": "down"}'},
    )
    await deliver(notifier)
    assert json.loads(json.loads(out.read_text())["stdin"]) == {"who": "api", "what": "down"}


# A shell script as EaseProbe users have them: it reads the CSV from stdin (and one variable)
# and writes what it got to a file.
READER_SCRIPT = """#!/bin/sh
cat > "$1"
printf '%s' "$EASEPROBE_TYPE" > "$1.type"
"""


def reader(tmp_path: Path, **keys: Any) -> tuple[ShellNotifier, Path]:
    script = tmp_path / "notify.sh"
    script.write_text(READER_SCRIPT)
    script.chmod(0o755)
    out = tmp_path / "stdin.csv"
    return make(str(script), str(out), **keys), out


async def test_stdin_is_easeprobes_csv_by_default(tmp_path):
    notifier, out = reader(tmp_path)
    message = ' refused, "twice"\nthen timed out'  # quoting: comma, quotes, LF, leading space
    await deliver(notifier, notification(message=message, position=1))
    raw = out.read_bytes().decode()
    assert raw.startswith("Title,Name,Endpoint,Status,PreStatus,RoundTripTime,Time,")
    assert raw.endswith("\n") and "\r" not in raw
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows == [
        [
            "Title",
            "Name",
            "Endpoint",
            "Status",
            "PreStatus",
            "RoundTripTime",
            "Time",
            "Timestamp",
            "Message",
        ],
        [
            "api Failure",
            "api",
            "https://api.example.test/health",
            "down",
            "up",  # the outage's first alert
            "0",
            "2023-11-14 22:13:20 Z",
            "1700000000250",
            message,
        ],
    ]
    assert (tmp_path / "stdin.csv.type").read_text() == "Status"


async def test_stdin_csv_for_a_recovery_and_an_sla_report(tmp_path):
    notifier, out = reader(tmp_path)
    await deliver(notifier, notification(Event.RECOVERY, duration=3 * 3600 + 65, position=0))
    _, record = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    assert record[:5] == [
        "api Recovery - ( 3h1m5s Downtime )",
        "api",
        "https://api.example.test/health",
        "up",
        "down",
    ]
    rows = [
        {"name": "api", "endpoint": "https://a.test/", "sla": 99.51, "up_s": 90061.0,
         "down_s": 432.0, "checks": 1440},
        {"name": "new", "endpoint": "tcp://b:1", "sla": None, "up_s": 0, "down_s": 0,
         "checks": 0},
    ]  # fmt: skip
    await deliver(notifier, Notification(event=Event.SLA, time=T0, report={"rows": rows}))
    assert list(csv.reader(io.StringIO(out.read_text(), newline=""))) == [
        [
            "Name",
            "Endpoint",
            "UpTime",
            "DownTime",
            "SLA",
            "ProbeSummary",
            "LatestProbe",
            "LatestStatus",
            "Message",
        ],
        ["api", "https://a.test/", "1d1h1m1s", "7m12s", "99.51%", "1440", "", "", ""],
        ["new", "tcp://b:1", "0s", "0s", "", "0", "", "", ""],
    ]
    assert (tmp_path / "stdin.csv.type").read_text() == "SLA"


async def test_format_json_keeps_the_json_event_on_stdin(tmp_path):
    notifier, out = reader(tmp_path, format="json")
    await deliver(notifier)
    event = json.loads(out.read_text())
    assert event["event"] == "down" and event["probe"] == "api" and event["position"] == 3


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (45, "45s"), (60, "1m0s"), (331, "5m31s"), (3600, "1h0m0s"), (93784, "26h3m4s")],
)
def test_go_duration(seconds, expected):
    assert go_duration(seconds) == expected


async def test_failing_command_is_temporary_with_its_last_line_and_no_secret():
    notifier = make(
        "sh",
        "-c",
        'echo starting; echo "cannot post with token $API_TOKEN" >&2; exit 3',
        env=["API_TOKEN=tok-0123456789"],
    )
    with pytest.raises(DeliveryError) as caught:
        await deliver(notifier)
    error = caught.value
    assert not error.permanent
    assert error.message == "sh: exit status 3: cannot post with token ***"


async def test_killed_by_a_signal():
    with pytest.raises(DeliveryError) as caught:
        await deliver(make("sh", "-c", "kill -TERM $$"))
    assert caught.value.message == "sh: killed by SIGTERM"


@pytest.mark.slow
async def test_timeout_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    notifier = make("sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait", timeout="500ms")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await deliver(notifier)
    assert time.monotonic() - started < 3.0
    assert not caught.value.permanent
    assert "timed out after 0.5s" in caught.value.message
    child = int(pid_file.read_text())
    for _ in range(100):
        if not running(child):
            break
        await asyncio.sleep(0.02)
    assert not running(child)


async def test_command_not_found_is_permanent():
    with pytest.raises(DeliveryError) as caught:
        await deliver(make("no-such-command-here"))
    assert caught.value.permanent
    assert caught.value.message == "command not found: no-such-command-here"

    with pytest.raises(DeliveryError) as caught:
        await deliver(make("/nonexistent/notify.sh"))
    assert caught.value.permanent


async def test_not_executable_is_permanent(tmp_path):
    script = tmp_path / "notify.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(str(script)))
    # Even root cannot execute a file without any execute bit.
    assert caught.value.permanent
    assert "permission denied" in caught.value.message


async def test_a_command_that_ignores_stdin_is_fine_with_a_large_event():
    rows = [{"name": f"probe-{i}", "sla": 99.9, "down_s": i} for i in range(6000)]
    note = Notification(event=Event.SLA, time=T0, report={"window": "week", "rows": rows})
    notifier = make(sys.executable, "-c", "pass")
    payload = notifier.render(note)
    assert len(payload["stdin"]) > 128 * 1024  # more than a pipe holds
    assert payload["env"]["EASEPROBE_JSON"] == ""  # too large for the environment
    assert payload["env"]["EASEPROBE_CSV"] == ""
    await notifier.send(payload)


def test_long_and_nul_values_fit_the_environment():
    env = event_environment(notification(message="x\0y" + "z" * 20000), "{}")
    assert "\0" not in env["PROBE_MESSAGE"]
    assert len(env["PROBE_MESSAGE"]) <= 8 * 1024
    assert env["PROBE_MESSAGE"].startswith("xyz")


def test_render_holds_no_env_values():
    notifier = make("sh", "-c", "true", env=["API_TOKEN=tok-0123456789"])
    payload = notifier.render(notification())
    assert "tok-0123456789" not in json.dumps(payload)
    assert notifier.spec.target() == "shell: sh"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "cmd"),
        ({"cmd": ""}, "at least 1 character"),
        ({"cmd": "sh", "env": ["NOVALUE"]}, 'env[0]: expected "NAME=value"'),
        ({"cmd": "sh", "args": ["a\0b"]}, "args[0] must not contain a NUL"),
        ({"cmd": "sh", "format": "xml"}, "format"),
    ],
)
def test_config_errors(raw, expected):
    with pytest.raises(ValidationError) as caught:
        ShellNotifySpec.model_validate({"name": "s", **raw})
    assert expected in str(caught.value)


def test_env_value_never_in_errors():
    with pytest.raises(ValidationError) as caught:
        ShellNotifySpec.model_validate({"name": "s", "cmd": "sh", "env": ["X=ok", "secretvalue"]})
    assert "secretvalue" not in str(caught.value)
