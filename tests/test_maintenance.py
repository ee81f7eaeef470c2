"""Maintenance windows end to end: the real App with loopback targets and a real webhook
receiver, windows placed relative to now; the real tracker and store for the SLA."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import probe
from probe.app import App
from probe.core.maintenance import MaintenanceCalendar, OneOffWindow
from probe.core.result import Result, Status
from probe.core.tracker import Policy, StatusTracker
from probe.maintenance_gate import MaintenanceGate
from probe.store import Store
from probe.web import render
from tests.test_reload import Targets, running, targets, until

__all__ = ["targets"]  # the fixture, shared with tests/test_reload.py


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def alerts_of(targets: Targets, probe: str) -> list[tuple[str, str]]:
    return [(a["event"], a["status"]) for a in targets.alerts if a["probe"] == probe]


@pytest.fixture
def own_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The status page from this checkout's templates/: an editable install of another
    checkout maps `probe.templates` to that one's folder."""
    root = Path(probe.__file__).resolve().parent.parent / "templates"
    monkeypatch.setattr(render, "template_root", lambda: root)
    render._template.cache_clear()


def write_config(path: Path, targets: Targets, windows: dict[str, tuple[float, float]]) -> None:
    """Three probes against `targets`; `windows`: "db upgrade" (top level, for `muted`) and
    "switch swap" (`recovers`'s own), each (start, end) in Unix seconds."""
    base = targets.base
    text = [
        "settings:",
        "  http: {port: 0}",
        f"  store: {{path: {path.parent}/probe.db}}",
        "  probe: {interval: 200ms, timeout: 150ms}",
    ]
    if "db upgrade" in windows:
        start, end = windows["db upgrade"]
        text += [
            "maintenance:",
            f'  - {{name: db upgrade, start: "{iso(start)}", end: "{iso(end)}", probes: [muted]}}',
        ]
    text += [
        "http:",
        f'  - {{name: muted, url: "{base}/ok/muted"}}',
        f'  - {{name: outside, url: "{base}/ok/outside"}}',
        f'  - name: recovers\n    url: "{base}/ok/recovers"',
    ]
    if "switch swap" in windows:
        start, end = windows["switch swap"]
        text += [
            "    maintenance:",
            f'      - {{name: switch swap, start: "{iso(start)}", end: "{iso(end)}"}}',
        ]
    text += ["notify:", "  webhook:", f'    - {{name: hook, url: "{base}/hook"}}']
    path.write_text("\n".join(text) + "\n")


@pytest.mark.usefixtures("own_templates")
async def test_alerts_are_muted_inside_a_window_and_reckoned_at_its_end(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    write_config(config, targets, {})
    targets.failing.add("recovers")
    seen: dict[str, object] = {}

    async def body(app: App) -> None:
        await until(lambda: alerts_of(targets, "recovers") == [("down", "down")])
        # Windows placed relative to now, by a reload (they apply at once).
        now = time.time()
        first_end, second_start, second_end = now + 2.5, now + 1.0, now + 3.0
        windows = {"db upgrade": (now - 1, first_end), "switch swap": (second_start, second_end)}
        write_config(config, targets, windows)
        assert (await app.reload("test")).ok
        targets.failing |= {"muted", "outside"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as client:
            await until(lambda: app.tracker.state("muted").status is Status.DOWN)
            seen["api"] = (await client.get("/api/v1/probes/muted")).json()
            seen["page"] = (await client.get("/")).text
            seen["metrics"] = (await client.get("/metrics")).text
            # A probe outside any window alerts at once; one inside does not.
            await until(lambda: ("down", "down") in alerts_of(targets, "outside"))
            assert alerts_of(targets, "muted") == []
            assert time.time() < first_end  # (a bound on the test's own speed, not timing)
            # Inside its own window (which began after its down alert) `recovers` recovers.
            await until(lambda: time.time() >= second_start + 0.1)
            targets.failing.discard("recovers")
            await until(lambda: app.tracker.state("recovers").status is Status.UP)
            assert alerts_of(targets, "recovers") == [("down", "down")]
            # The first window ends: one down for `muted`, still down, nobody told.
            await until(lambda: alerts_of(targets, "muted") != [])
            assert time.time() >= first_end
            # The second one ends: one recovery for `recovers`.
            await until(lambda: len(alerts_of(targets, "recovers")) == 2)
            assert time.time() >= second_end
            await asyncio.sleep(0.6)  # a few more checks of each: nothing repeats
            seen["after"] = (await client.get("/api/v1/probes/muted")).json()
            seen["first_end"] = first_end

    app = await running(config, body)
    assert alerts_of(targets, "muted") == [("down", "down")]
    assert alerts_of(targets, "recovers") == [("down", "down"), ("recovery", "up")]
    assert alerts_of(targets, "outside") == [("down", "down")]
    muted_down = next(a for a in targets.alerts if a["probe"] == "muted")
    assert muted_down["position"] >= 2  # the outage's failure count when the window ended
    assert app.tracker.state("muted").alerts_sent == 1  # counted as sent, after the window

    api = seen["api"]
    assert isinstance(api, dict)
    assert api["status"] == "maintenance" and api["checked_status"] == "down"
    assert api["maintenance"]["name"] == "db upgrade"
    first_end = seen["first_end"]
    assert isinstance(first_end, float)
    assert api["maintenance"]["end"].startswith(iso(first_end)[:19])
    assert 'class="st st-maintenance"' in str(seen["page"])
    flags = {
        sample.labels["name"]: sample.value
        for family in text_string_to_metric_families(str(seen["metrics"]))
        if family.name == "probe_maintenance"
        for sample in family.samples
    }
    assert flags == {"muted": 1.0, "outside": 0.0, "recovers": 0.0}
    after = seen["after"]
    assert isinstance(after, dict)
    assert after["status"] == "down" and "maintenance" not in after


def down(name: str, t: float) -> Result:
    moment = datetime.fromtimestamp(t, UTC)
    return Result(name, "http", "http://127.0.0.1/", Status.DOWN, None, "503", moment)


async def test_time_inside_a_window_is_neither_up_nor_down(tmp_path: Path) -> None:
    """Down for 2 hours, with a 30-minute window inside: 90 minutes down, none up."""
    t0 = 1_790_000_000.0 - 1_790_000_000.0 % 3600  # an hour's start, far from now
    calendar = MaintenanceCalendar(shared=((OneOffWindow(t0 + 1800, t0 + 3600, "w"), None),))
    tracker = StatusTracker()
    gate = MaintenanceGate(calendar, tracker)
    policy = Policy(interval=60.0)
    store = Store.open(tmp_path / "probe.db")
    await store.start()
    try:
        for minute in range(121):
            before = tracker.state("db")
            store.submit(gate.screen(tracker.observe(down("db", t0 + 60 * minute), policy), before))
        await store.flush()
        figures = await asyncio.to_thread(store.sla, "db", t0, t0 + 7200)
    finally:
        await store.close()
    assert figures.down_s == 90 * 60
    assert figures.up_s == 0


def test_a_muted_down_is_owed_across_a_restart() -> None:
    """A down muted inside a window does not count as sent: a tracker made anew from the
    saved state (a restart) still owes it when the window has ended."""
    t0 = 1_790_000_000.0
    window = OneOffWindow(t0, t0 + 600, "w")
    tracker = StatusTracker()
    gate = MaintenanceGate(MaintenanceCalendar(own={"db": (window,)}), tracker)
    policy = Policy(interval=60.0, max_alerts=3, factor=5)
    for minute in range(3):
        before = tracker.state("db")
        obs = gate.screen(tracker.observe(down("db", t0 + 60 * minute), policy), before)
        assert obs.alert is None
        assert obs.state.alerts_sent == 0 and obs.state.next_alert == minute + 1

    saved = tracker.now("db")
    restarted = StatusTracker({"db": saved.state}, {"db": saved.last} if saved.last else {})
    later = MaintenanceGate(MaintenanceCalendar(own={"db": (window,)}), restarted)
    assert later.stale(["db"], t0 + 300) == []  # still inside
    assert later.stale(["db"], t0 + 600) == ["db"]  # exactly at the end: over
    sent = later.reckon("db", policy, t0 + 600)
    assert sent is not None and sent.alert is not None
    assert (sent.alert.event, sent.alert.position) == ("down", 3)
    assert restarted.state("db").alerts_sent == 1
    assert restarted.state("db").next_alert == 8  # regular, factor 5: the next position
    assert later.reckon("db", policy, t0 + 601) is None  # never twice
