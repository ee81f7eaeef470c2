"""Flapping, for real: a running App, a target that answers 503 and 200 in turn, and a webhook
receiver (tests/support/running_app.py): one "flapping" message, silence, one "stable"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from probe.app import App
from probe.core.result import Status
from tests.support.running_app import Targets, alerting, running, until
from tests.web.pagedom import PageDOM

pytestmark = pytest.mark.slow


async def test_a_probe_alternating_every_check_sends_one_flapping_and_one_stable_message(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    probes = {"shaky": "flap: {changes: 3, window: 2s}", "calm": ""}
    alerting(config, targets, probes, defaults="interval: 150ms, timeout: 100ms")

    async def body(app: App) -> None:
        await until(lambda: len(targets.hits.get("shaky", [])) >= 1)
        targets.alternating.add("shaky")
        await until(lambda: app.tracker.state("shaky").flapping)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as http:
            assert (await http.get("/api/v1/probes/shaky")).json()["flapping"] is True
            assert (await http.get("/api/v1/probes/calm")).json()["flapping"] is False
            rows = PageDOM((await http.get("/")).text)
            assert rows.row("shaky").flapping and not rows.row("calm").flapping
        await asyncio.sleep(1.0)  # it goes on flapping: nothing more is said
        flapping_at = [a["event"] for a in targets.alerts].index("flapping")
        assert len(targets.alerts) == flapping_at + 1
        targets.alternating.clear()
        await until(lambda: not app.tracker.state("shaky").flapping)
        await until(lambda: len(targets.alerts) >= flapping_at + 2)
        await asyncio.sleep(0.3)

    await running(config, body)
    events = [(a["probe"], a["event"]) for a in targets.alerts]
    assert events.count(("shaky", "flapping")) == 1
    assert events[-1] == ("shaky", "stable")
    stable = targets.alerts[-1]
    assert stable["status"] == Status.UP.value
    assert stable["title"] == "shaky is stable (up)"
    flapping = next(a for a in targets.alerts if a["event"] == "flapping")
    assert flapping["message"].startswith("4 status changes within 2s;")
    assert all(probe == "shaky" for probe, _ in events)
