"""Maintenance windows end to end: the real App with loopback targets and a real webhook
receiver, windows placed relative to now; the real tracker and store for the SLA."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from probe.app import App
from probe.core.maintenance import MaintenanceCalendar, OneOffWindow
from probe.core.result import Result, Status
from probe.core.tracker import Observation, Policy, StatusTracker
from probe.maintenance_gate import MaintenanceGate
from probe.store import Store
from tests.support.running_app import Targets, running, until


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def alerts_of(targets: Targets, probe: str) -> list[tuple[str, str]]:
    return [(a["event"], a["status"]) for a in targets.alerts if a["probe"] == probe]


def write_config(path: Path, targets: Targets, windows: dict[str, tuple[float, float]]) -> None:
    """Three probes against `targets`; `windows`: "db upgrade" (top level, for `muted`) and
    "switch swap" (`recovers`'s own), each (start, end) in Unix seconds."""
    base = targets.base
    text = [
        "settings:",
        "  http: {port: 0}",
        f"  store: {{path: {path.parent}/probe.db}}",
        "  probe: {interval: 200ms, timeout: 150ms}",
        "  notify: {group: {wait: 0s}}",  # each alert at once, none grouped
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


def feed(
    gate: MaintenanceGate, tracker: StatusTracker, result: Result, policy: Policy
) -> Observation:
    """One result through the tracker and the gate, as the App's `_on_result` does."""
    before = tracker.state(result.name)
    return gate.screen(tracker.observe(result, policy), before)


def up(name: str, t: float) -> Result:
    moment = datetime.fromtimestamp(t, UTC)
    return Result(name, "http", "http://127.0.0.1/", Status.UP, 0.01, "200", moment)


def test_a_muted_recovery_is_owed_across_a_restart() -> None:
    """Down notified before the window, up inside it: the up state keeps the outage's count,
    so a tracker made anew from it still owes the one recovery at the end."""
    t0 = 1_790_000_000.0
    window = OneOffWindow(t0 + 100, t0 + 600, "w")
    tracker = StatusTracker()
    gate = MaintenanceGate(MaintenanceCalendar(own={"db": (window,)}), tracker)
    policy = Policy(interval=60.0)
    first = feed(gate, tracker, down("db", t0), policy)
    assert first.alert is not None and first.alert.event == "down"  # before the window: sent
    before = tracker.state("db")
    back = gate.screen(tracker.observe(up("db", t0 + 120), policy), before)
    assert back.alert is None and back.state.status is Status.UP
    assert back.state.alerts_sent == 1  # a recovery is owed

    saved = tracker.now("db")
    assert saved.last is not None
    restarted = StatusTracker({"db": saved.state}, {"db": saved.last})
    later = MaintenanceGate(MaintenanceCalendar(own={"db": (window,)}), restarted)
    assert later.stale(["db"], t0 + 300) == []
    assert later.stale(["db"], t0 + 700) == ["db"]
    sent = later.reckon("db", policy, t0 + 700)
    assert sent is not None and sent.alert is not None and sent.alert.event == "recovery"
    assert restarted.state("db").alerts_sent == 0
    assert later.reckon("db", policy, t0 + 701) is None


def test_down_and_back_inside_a_window_owes_nothing() -> None:
    t0 = 1_790_000_000.0
    calendar = MaintenanceCalendar(shared=((OneOffWindow(t0, t0 + 600, "w"), None),))
    tracker = StatusTracker()
    gate = MaintenanceGate(calendar, tracker)
    policy = Policy(interval=60.0)
    for t, result in ((t0, up), (t0 + 60, down), (t0 + 120, down), (t0 + 180, up)):
        obs = feed(gate, tracker, result("db", t), policy)
        assert obs.alert is None
    assert gate.ended(["db"], t0 + 600) == ["db"]
    assert gate.reckon("db", policy, t0 + 600) is None


def test_a_window_removed_while_in_force_ends_then() -> None:
    t0 = time.time()
    tracker = StatusTracker()
    window = OneOffWindow(t0 - 10, t0 + 3600, "long")
    gate = MaintenanceGate(MaintenanceCalendar(own={"db": (window,)}), tracker)
    policy = Policy(interval=60.0)
    obs = feed(gate, tracker, down("db", t0 - 5), policy)
    assert obs.alert is None
    assert gate.window("db") == ("long", t0 + 3600)
    assert gate.ended(["db"], t0) == []  # still in force
    gate.calendar = MaintenanceCalendar()  # a reload removed it
    assert gate.window("db") is None
    assert gate.ended(["db"], t0) == ["db"]
    sent = gate.reckon("db", policy, t0)
    assert sent is not None and sent.alert is not None and sent.alert.event == "down"


def test_config_windows_become_the_calendar(tmp_path: Path) -> None:
    from probe.assembly import load_config
    from probe.maintenance_gate import calendar_for

    path = tmp_path / "probes.yaml"
    path.write_text(
        "settings: {timezone: Europe/Berlin}\n"
        "maintenance:\n"
        '  - {name: backup, every: [monday], start: "23:30", duration: 1h, probes: [api]}\n'
        "http:\n"
        "  - name: api\n"
        "    url: http://127.0.0.1:9/\n"
        "    maintenance:\n"
        '      - {every: daily, start: "02:00", duration: 30m, timezone: UTC}\n'
        "  - {name: web, url: 'http://127.0.0.1:9/'}\n"
    )
    calendar = calendar_for(load_config(path))
    monday_late = datetime.fromisoformat("2026-06-02T00:15:00+02:00").timestamp()  # tuesday
    window = calendar.window_for("api", monday_late)
    assert window is not None and window.name == "backup"
    assert calendar.window_for("web", monday_late) is None  # not in `probes:`
    own = calendar.window_for("api", datetime.fromisoformat("2026-06-03T02:10:00Z").timestamp())
    assert own is not None and own.name == ""
