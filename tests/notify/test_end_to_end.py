"""Alerts end to end: the real App (or `probe run` in a subprocess) probing a local port the
test opens and closes, notifying real local webhook servers and a log file."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from probe.alerting import notification_for
from probe.app import App
from probe.assembly import load_config
from probe.config.models import AlertSpec, ProbeSpec
from probe.core.result import Result, Status
from probe.core.scheduler import SchedulerStats
from probe.core.tracker import Policy, StatusTracker, alert_positions
from probe.notify.dispatch import Dispatcher
from probe.notify.metrics import NotifyMetrics, notify_metrics
from tests.notify.webhook_server import Answer, WebhookServer, webhook_notifier
from tests.support.cli import spawn_probe_run
from tests.support.config import free_http_port, use_free_http_port


class Port:
    """A loopback port the test controls: bound but not listening (connections refused) until
    `open()`, then accepting (the kernel completes the handshakes)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.number = self.sock.getsockname()[1]

    def open(self) -> None:
        self.sock.listen(64)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def port() -> Iterator[Port]:
    p = Port()
    yield p
    p.close()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_down_then_up_gives_one_down_and_one_recovery_per_notifier(
    tmp_path, port, web_server
) -> None:
    a, b = WebhookServer(), WebhookServer()
    await a.start(web_server)
    await b.start(web_server)
    log_file = tmp_path / "alerts.log"
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"""
tcp:
  - name: db
    host: 127.0.0.1:{port.number}
    interval: 100ms
    timeout: 90ms
    labels: {{team: core}}
notify:
  webhook:
    - {{name: hook-a, url: "{a.base}/a"}}
  http:
    - {{name: hook-b, url: "{b.base}/b"}}
  log:
    - {{name: file, file: alerts.log}}
settings:
  notify: {{group: {{wait: 0s}}}}  # each message at once, none grouped
"""
    )
    registry = CollectorRegistry()
    app = App(free_http_port(load_config(config)), registry=registry)
    run = asyncio.create_task(app.run())
    try:
        await a.wait_for(1)
        await b.wait_for(1)
        await asyncio.sleep(0.5)  # five more failed checks: no more down messages
        opened = time.time()
        port.open()
        await a.wait_for(2)
        await b.wait_for(2)
        await asyncio.sleep(0.3)
    finally:
        app.request_stop()
        assert await asyncio.wait_for(run, 15) == 0
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    for docs in ([h.json for h in a.hits], [h.json for h in b.hits], lines):
        assert [(d["event"], d["probe"], d["status"]) for d in docs] == [
            ("down", "db", "down"),
            ("recovery", "db", "up"),
        ]
        down, up = docs
        assert down["kind"] == "tcp" and down["endpoint"] == f"127.0.0.1:{port.number}"
        assert down["labels"] == {"team": "core"} and down["position"] == 1
        assert "refused" in down["message"]
        # The outage: from the first failed check to the first good one.
        assert 0.5 <= up["duration"] <= time.time() - opened + 1.5
        assert up["outage_start"] == down["outage_start"]
    assert a.hits[0].json["id"] == b.hits[0].json["id"] == lines[0]["id"]
    metrics = notify_metrics(registry)
    assert app.metrics is metrics
    assert [metrics.value(n, "sent") for n in ("hook-a", "hook-b", "file")] == [2, 2, 2]


@pytest.mark.slow
async def test_a_hanging_api_never_delays_a_check(tmp_path, port, web_server, monkeypatch) -> None:
    monkeypatch.setattr("probe.app.NOTIFY_GRACE", 0.5)  # stop sooner than a real run would
    hanging = WebhookServer()
    hanging.default = Answer(200, "late", delay=30)
    await hanging.start(web_server)
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"""
tcp:
  - {{name: db, host: "127.0.0.1:{port.number}", interval: 100ms, timeout: 90ms,
      alert: {{strategy: regular, factor: 1, max: 100}}}}
notify:
  http:
    - {{name: slow, url: "{hanging.base}/x", timeout: 20s}}
settings:
  notify: {{group: {{wait: 0s}}}}  # each down message goes out at once, none grouped
"""
    )
    stats = SchedulerStats(keep_lag=True)
    app = App(free_http_port(load_config(config)), stats=stats, registry=CollectorRegistry())
    run = asyncio.create_task(app.run())
    await asyncio.sleep(2.0)
    app.request_stop()
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    assert await asyncio.wait_for(run, 20) == 0
    # Stop waited its grace for the hanging sends at most, then left them pending.
    assert loop.time() - stopping < 2
    assert hanging.in_flight >= 10  # a down message per failed check, all hanging
    # ~20 checks due in 2 s, each on time: a check waiting for a send would be seconds late.
    assert stats.checks >= 15
    assert max(stats.lag_samples) < 0.5


def _result(name: str, t: float, status: Status) -> Result:
    return Result(
        name=name,
        kind="tcp",
        endpoint="127.0.0.1:1",
        status=status,
        latency=0.001,
        message="connection refused" if status is Status.DOWN else "connected",
        time=datetime.fromtimestamp(t, UTC),
    )


class _Spec(ProbeSpec):
    def endpoint(self) -> str:
        return "127.0.0.1:1"


@pytest.mark.parametrize(
    ("strategy", "factor", "max_alerts", "positions"),
    [
        ("regular", 1, 1, [1]),  # the default: once per outage
        ("regular", 3, 4, [1, 4, 7, 10]),
        ("increment", 1, 5, [1, 2, 4, 7, 11]),
        ("increment", 2, 10, [1, 3, 7, 13]),
        ("exponent", 1, 10, [1, 2, 4, 8, 16]),
        ("exponent", 2, 3, [1, 3, 9]),  # EaseProbe: next = n + n*f
    ],
)
async def test_strategies_over_a_long_outage(
    client, web_server, strategy, factor, max_alerts, positions
) -> None:
    """20 failed checks then a good one, through the real tracker and dispatcher."""
    assert [p for p in alert_positions(strategy, factor, max_alerts) if p <= 20] == positions
    server = WebhookServer()
    await server.start(web_server)
    spec = _Spec(name="db", alert=AlertSpec(strategy=strategy, factor=factor, max=max_alerts))
    policy = Policy(interval=60, strategy=strategy, factor=factor, max_alerts=max_alerts)
    tracker = StatusTracker()
    dispatcher = Dispatcher(
        [webhook_notifier(client, "ops", server.base + "/x")],
        metrics=NotifyMetrics(CollectorRegistry()),
    )
    await dispatcher.start()
    start = 1_700_000_000.0
    for i in range(20):
        obs = tracker.observe(_result("db", start + 60 * i, Status.DOWN), policy)
        n = notification_for(obs, spec)
        if n is not None:
            dispatcher.notify(n, spec.channels)
    obs = tracker.observe(_result("db", start + 60 * 20, Status.UP), policy)
    n = notification_for(obs, spec)
    assert n is not None
    dispatcher.notify(n, spec.channels)
    await dispatcher.drain()
    await dispatcher.stop()
    docs = sorted((h.json for h in server.hits), key=lambda d: d["timestamp"])
    assert [d["position"] for d in docs if d["event"] == "down"] == positions
    (recovery,) = [d for d in docs if d["event"] == "recovery"]
    assert recovery["duration"] == 20 * 60.0
    assert docs[-1] == recovery


# --- a process killed while an alert is pending ------------------------------------------


async def _start_probe(config: Path, log: Path) -> asyncio.subprocess.Process:
    use_free_http_port(config)
    return await spawn_probe_run(config, log)


def _outbox(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, state FROM outbox ORDER BY created").fetchall()
    finally:
        conn.close()


@pytest.mark.slow
async def test_killed_while_an_alert_is_pending_it_is_delivered_once_after_restart(
    tmp_path, port, web_server
) -> None:
    server = WebhookServer()
    server.default = Answer(503, "maintenance")
    await server.start(web_server)
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"""
tcp:
  - {{name: db, host: "127.0.0.1:{port.number}", interval: 200ms, timeout: 150ms}}
notify:
  http:
    - {{name: ops, url: "{server.base}/hook"}}
settings:
  notify: {{retry: {{times: 1, interval: 100ms}}, group: {{wait: 0s}}}}
  store: {{path: probe.db}}
"""
    )
    log = tmp_path / "probe.log"
    first = await _start_probe(config, log)
    try:
        await server.wait_for(2, accepted=False, timeout=20)  # the try and its retry: 503
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    ((row_id, state),) = _outbox(tmp_path / "probe.db")
    assert state == "pending" and server.accepted == []

    server.default = Answer(200, "ok")
    second = await _start_probe(config, log)
    try:
        await server.wait_for(1, timeout=20)
        await asyncio.sleep(1.0)  # time for a duplicate or a new alert to show up: none may
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 20)
    assert second.returncode == 0, log.read_text()
    (delivered,) = server.accepted
    assert f"{delivered.json['id']}:ops" == row_id
    assert delivered.json["event"] == "down" and delivered.json["probe"] == "db"
    # Every request, 503s included, carried that one notification.
    assert {h.json["id"] for h in server.hits} == {delivered.json["id"]}
    assert _outbox(tmp_path / "probe.db") == [(row_id, "delivered")]
    assert "resending 1 notification(s) left pending by an earlier run" in log.read_text()
