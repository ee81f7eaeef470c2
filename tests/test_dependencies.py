"""Alerts of dependent probes, for real: a running App, HTTP targets on loopback that fail on
demand, and a webhook receiver (tests/support/running_app.py). The router goes down with the
20 services behind it: one message; the router comes back and three services stay down: each
of those three alerts on its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from probe.app import App
from probe.core.result import Status
from tests.support.running_app import Targets, alerting, all_down, running, until

pytestmark = pytest.mark.slow

SERVICES = [f"svc{i:02d}" for i in range(20)]


def events(targets: Targets, path: str = "/hook") -> list[tuple[str, str]]:
    return [(a["probe"], a["event"]) for a in targets.alerts if a["path"] == path]


async def test_a_dependency_outage_is_one_message_then_the_still_down_alert_on_their_own(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    probes = {"router": "", **{name: "depends_on: [router]" for name in SERVICES}}
    hooks = ("hook", "hook-pager")  # two notifiers: one message each
    alerting(config, targets, probes, defaults="interval: 300ms, timeout: 200ms", hooks=hooks)

    async def body(app: App) -> None:
        await all_down(app, targets, probes)
        await asyncio.sleep(1.0)  # every service failed again at least twice: still one message
        assert events(targets) == events(targets, "/hook-pager") == [("router", "down")]
        message = targets.alerts[0]["message"]
        assert "; 20 dependent probes affected: " in message  # each checked at once
        assert "svc" in message
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as http:
            folded = (await http.get("/api/v1/probes/svc05")).json()["alerts_folded_into"]
            assert folded == "router"
            assert (await http.get("/api/v1/probes/router")).json()["alerts_folded_into"] is None

        stuck = SERVICES[:3]
        targets.failing.difference_update(["router", *SERVICES[3:]])
        await until(lambda: len(targets.alerts) >= 10)
        await asyncio.sleep(1.0)
        assert events(targets)[1] == ("router", "recovery")
        assert sorted(events(targets)[2:]) == [(name, "down") for name in stuck]

        targets.failing.clear()
        await until(lambda: len(targets.alerts) >= 16)
        await asyncio.sleep(0.6)

    await running(config, body)
    assert sorted(events(targets)[5:]) == [(name, "recovery") for name in SERVICES[:3]]
    assert len(events(targets)) == 8, events(targets)
    assert sorted(events(targets)) == sorted(events(targets, "/hook-pager"))


async def test_a_dependent_checked_first_waits_for_its_dependency_s_fresh_check(
    tmp_path: Path, targets: Targets
) -> None:
    """The database is checked every 10 minutes; the API behind it every 200 ms. When both
    fail, the API's alert waits for a check of the database made at once, and goes with it."""
    config = tmp_path / "probes.yaml"
    probes = {"db": "interval: 10m, timeout: 200ms", "api": "depends_on: [db]"}
    alerting(config, targets, probes)

    async def body(app: App) -> None:
        await until(lambda: all(targets.hits.get(name) for name in probes))
        db_checks = len(targets.hits["db"])
        targets.failing.update(probes)
        await until(lambda: len(targets.alerts) >= 1)
        await asyncio.sleep(0.6)
        assert len(targets.hits["db"]) == db_checks + 1  # the one check made at once
        assert events(targets) == [("db", "down")]
        assert targets.alerts[0]["message"].endswith("; 1 dependent probe affected: api")

    await running(config, body)


async def test_a_dependent_alerts_when_its_dependency_is_fine(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    probes = {"db": "interval: 10m", "api": "depends_on: [db]"}
    alerting(config, targets, probes)

    async def body(app: App) -> None:
        await until(lambda: all(targets.hits.get(name) for name in probes))
        db_checks = len(targets.hits["db"])
        targets.failing.add("api")
        await until(lambda: len(targets.alerts) >= 1)
        assert len(targets.hits["db"]) == db_checks + 1
        assert events(targets) == [("api", "down")]
        assert "dependent" not in targets.alerts[0]["message"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as http:
            assert (await http.get("/api/v1/probes/api")).json()["depends_on"] == ["db"]
            assert "Depends on: db" in (await http.get("/")).text

    await running(config, body)


async def test_dependencies_across_worker_processes(tmp_path: Path, targets: Targets) -> None:
    config = tmp_path / "probes.yaml"
    probes = {
        "router": "interval: 10m, timeout: 200ms",
        **{name: "depends_on: [router]" for name in SERVICES[:6]},
    }
    alerting(config, targets, probes, defaults="interval: 200ms, timeout: 150ms, workers: 2")

    async def body(app: App) -> None:
        await all_down(app, targets, probes)
        await asyncio.sleep(0.6)
        assert events(targets) == [("router", "down")]

    await running(config, body, workers=2)


async def test_an_alert_held_at_stop_is_decided_and_sent_not_lost(
    tmp_path: Path, targets: Targets
) -> None:
    """The database's fresh check cannot come (it hangs past the stop): the API's held alert
    goes out at stop, through the outbox."""
    config = tmp_path / "probes.yaml"
    probes = {"db": "interval: 10m, timeout: 20s", "api": "depends_on: [db]"}
    alerting(config, targets, probes)

    async def body(app: App) -> None:
        await until(lambda: all(targets.hits.get(name) for name in probes))
        targets.failing.add("api")
        targets.hanging.add("db")
        await until(lambda: app.tracker.state("api").status is Status.DOWN)
        await asyncio.sleep(0.3)
        assert targets.alerts == []  # held: the database's check has not answered

    await running(config, body)
    assert events(targets) == [("api", "down")]
