"""Hot reload of a running App, for real: a config file on disk, local HTTP targets and a
local webhook, and the three triggers (SIGHUP, POST /-/reload, the file watch)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from probe.app import App
from probe.core.result import Status
from tests.support.running_app import Targets, running, until, write

pytestmark = pytest.mark.slow


def client(app: App, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", headers=headers)


async def test_sighup_adds_changes_and_removes_probes_and_keeps_the_rest(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    targets.failing = {"steady"}
    write(config, targets, {"steady": "failure: 5", "changing": "", "leaving": ""})

    async def body(app: App) -> None:
        await until(lambda: app.tracker.state("steady").fail_streak >= 6)
        await until(lambda: len(targets.hits.get("leaving", [])) >= 2)
        before = app.tracker.state("steady")
        write(
            config,
            targets,
            {"steady": "failure: 5", "changing": "timeout: 120ms", "arriving": ""},
        )
        reloaded = app.last_reload
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: app.last_reload is not reloaded)
        report = app.last_reload
        assert report is not None and report.ok, report
        assert report.diff is not None
        assert [s.name for s in report.diff.added] == ["arriving"]
        assert [s.name for s in report.diff.changed] == ["changing"]
        assert report.diff.removed == ["leaving"]
        assert report.diff.unchanged == 1
        left_at = time.monotonic()
        await until(lambda: len(targets.hits.get("arriving", [])) >= 2)
        # The unchanged probe kept its streak: counting on from where it was, not from 0.
        after = app.tracker.state("steady")
        assert after.fail_streak > before.fail_streak
        assert after.status is Status.DOWN and after.since == before.since
        await asyncio.sleep(0.3)
        assert all(t <= left_at + 0.05 for t in targets.hits["leaving"])
        # Its history stays queryable through the API.
        async with client(app) as http:
            gone = (await http.get("/api/v1/probes/leaving")).json()
            names = [item["name"] for item in (await http.get("/api/v1/sla")).json()]
        assert gone["configured"] is False and gone["results"]
        assert names == ["steady", "changing", "arriving"]

    await running(config, body)
    # The steady probe's checks stayed on its 200 ms grid through the reload: none doubled,
    # none skipped.
    hits = targets.hits["steady"]
    steps = [b - a for a, b in itertools.pairwise(hits)]
    assert all(0.1 < step < 0.3 for step in steps), steps


async def test_an_invalid_file_changes_nothing_and_says_where(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    write(config, targets, {"one": ""}, http="port: 0, token: s3cret")
    text = config.read_text()

    async def body(app: App) -> None:
        config.write_text(text.replace("interval: 200ms", "interval: soon"))
        async with client(app, "s3cret") as http:
            refused = await http.post("/-/reload")
            health = (await http.get("/healthz")).json()
            state = (await http.get("/api/v1/reload")).json()
            anonymous = await http.post("/-/reload", headers={"Authorization": ""})
            cross = await http.post("/-/reload", headers={"Origin": "http://example.invalid"})
        assert refused.status_code == 422
        [error] = refused.json()["errors"]
        assert error.startswith(f"{config}:4:") and "settings.probe.interval" in error
        assert health == {"status": "ok", "reload": "failed"}  # no paths, no config text
        assert state["status"] == "failed" and state["errors"] == [error]
        assert anonymous.status_code == 401
        assert cross.status_code == 403
        before = len(targets.hits["one"])
        await asyncio.sleep(0.5)
        assert len(targets.hits["one"]) > before  # still checking, on the old config
        config.write_text(text)
        async with client(app, "s3cret") as http:
            applied = await http.post("/-/reload")
            health = (await http.get("/healthz")).json()
        assert applied.status_code == 200
        assert applied.json()["changes"]["unchanged"] == 1
        assert health == {"status": "ok"}

    await running(config, body)


async def test_the_watch_reloads_on_a_content_change_of_the_file_or_a_secret_it_reads(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    secret = tmp_path / "hook-header"
    # Secrets no other test's log expects to read: the log hides them for the whole process.
    secret.write_text("first-Secret-41\n")
    notify = f"webhook:\n  - {{name: hook, url: '{targets.base}/hook', headers: {{X-Key: x}}}}"
    watch = "reload: {watch: true, every: 100ms}"
    write(config, targets, {"one": ""}, settings=watch, notify=notify)

    async def body(app: App) -> None:
        assert app.last_reload is None
        os.utime(config)  # touched, same content: nothing to reload
        await asyncio.sleep(0.5)
        assert app.last_reload is None
        write(config, targets, {"one": "", "two": ""}, settings=watch, notify=notify)
        await until(lambda: app.last_reload is not None)
        assert app.last_reload is not None and app.last_reload.trigger == "file change"
        await until(lambda: len(targets.hits.get("two", [])) >= 1)
        # A probe's password from a file: a new secret is a changed probe.
        text = config.read_text().replace(
            "name: two,", f"name: two, password_file: {secret.name}, username: u,"
        )
        config.write_text(text)
        await until(lambda: app.last_reload is not None and "two" in _added(app))
        first = app.last_reload
        secret.write_text("second-Secret-42\n")
        await until(lambda: app.last_reload is not first)
        assert app.last_reload is not None
        assert app.last_reload.diff is not None
        assert [s.name for s in app.last_reload.diff.changed] == ["two"]

    await running(config, body)


def _added(app: App) -> list[str]:
    report = app.last_reload
    if report is None or report.diff is None:
        return []
    return [s.name for s in [*report.diff.added, *report.diff.changed]]


async def test_a_reload_in_a_burst_of_failures_sends_no_duplicate_alert(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    notify = f"webhook:\n  - {{name: hook, url: '{targets.base}/hook'}}"
    probes = {"burst": "failure: 2", "other": ""}
    at_once = "notify: {group: {wait: 0s}}"  # each alert at once, none grouped
    write(config, targets, probes, notify=notify, settings=at_once)

    async def body(app: App) -> None:
        await until(lambda: len(targets.hits.get("burst", [])) >= 2)
        targets.failing.add("burst")
        await until(lambda: app.tracker.state("burst").fail_streak >= 1)
        # Mid-burst: before, during and after the threshold; each reload changes the other.
        for round_ in range(4):
            other = {**probes, "other": f"timeout: {140 - round_}ms"}
            write(config, targets, other, notify=notify, settings=at_once)
            report = await app.reload("api")
            assert report.ok
            await asyncio.sleep(0.15)
        await until(lambda: app.tracker.state("burst").fail_streak >= 6)
        targets.failing.clear()
        await until(lambda: app.tracker.state("burst").status is Status.UP)
        await until(lambda: len(targets.alerts) >= 2)
        await asyncio.sleep(0.3)

    await running(config, body)
    events = [
        (a.get("probe") or a.get("name"), a.get("event") or a.get("status")) for a in targets.alerts
    ]
    assert len(targets.alerts) == 2, events


async def test_a_changed_notifier_takes_the_alerts_and_the_pending_ones(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    no_retry = "notify: {retry: {times: 0}, group: {wait: 0s}}"  # each alert at once
    hook = "webhook:\n  - {{name: hook, url: '{}/{}'}}"
    write(
        config,
        targets,
        {"p": ""},
        notify=hook.format(targets.base, "hook-broken"),
        settings=no_retry,
    )

    async def body(app: App) -> None:
        assert app.dispatcher is not None
        targets.failing.add("p")
        # The down alert fails (500) and waits in the outbox for its next round, a minute on.
        await until(lambda: app.tracker.state("p").status is Status.DOWN)
        await until(lambda: app.dispatcher is not None and app.dispatcher.pending == 1)
        await asyncio.sleep(0.3)
        write(
            config,
            targets,
            {"p": ""},
            notify=hook.format(targets.base, "hook-b"),
            settings=no_retry,
        )
        report = await app.reload("api")
        assert report.ok and report.diff is not None and report.diff.notifiers
        # The pending alert goes to the fixed notifier now, not a minute later.
        await until(lambda: len(targets.alerts) >= 1, timeout=5)
        targets.failing.clear()
        await until(lambda: len(targets.alerts) >= 2)

    await running(config, body)
    assert [a["path"] for a in targets.alerts] == ["/hook-b", "/hook-b"]


async def test_a_new_token_and_port_take_effect_and_the_old_port_closes(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    write(config, targets, {"p": ""})

    async def body(app: App) -> None:
        old_port = app.http_port
        text = config.read_text().replace("http: {port: 0}", "http: {port: 0, token: n3w}")
        config.write_text(text)
        async with client(app) as http:
            assert (await http.post("/-/reload")).status_code == 200
        await until(lambda: app.http_port != old_port)
        async with client(app) as http:
            assert (await http.get("/api/v1/sla")).status_code == 401
        async with client(app, "n3w") as http:
            assert (await http.get("/api/v1/sla")).status_code == 200
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.get(f"http://127.0.0.1:{old_port}/healthz")

    await running(config, body)


async def test_reload_with_workers_changes_probes_where_they_run(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    probes = {f"p{i}": "" for i in range(4)}
    write(config, targets, probes, defaults="interval: 200ms, timeout: 150ms, workers: 2")

    async def body(app: App) -> None:
        await until(lambda: all(len(targets.hits.get(n, [])) >= 2 for n in probes))
        text = config.read_text()
        text = text.replace(f"  - {{name: p3, url: '{targets.base}/ok/p3'}}\n", "")
        text = text.replace("name: p1,", "name: p1, timeout: 120ms,")
        text += f"  - {{name: p4, url: '{targets.base}/ok/p4'}}\n"
        config.write_text(text)
        report = await app.reload("api")
        assert report.ok, report
        removed_at = time.monotonic()
        await until(lambda: len(targets.hits.get("p4", [])) >= 2)
        counts = {n: len(targets.hits[n]) for n in ("p0", "p1", "p2")}
        await asyncio.sleep(0.5)
        assert all(len(targets.hits[n]) > counts[n] for n in counts)
        assert all(t <= removed_at + 0.1 for t in targets.hits["p3"])

    await running(config, body)


@pytest.fixture(autouse=True)
def _no_stray_sighup() -> Iterator[None]:
    # A SIGHUP that reached no handler would end the test process: make sure one is set.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield
    with contextlib.suppress(Exception):
        signal.signal(signal.SIGHUP, previous)


async def test_a_new_address_that_is_taken_refuses_the_reload_and_keeps_serving(
    tmp_path: Path, targets: Targets
) -> None:
    config = tmp_path / "probes.yaml"
    write(config, targets, {"p": ""})
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_port = taken.getsockname()[1]

    async def body(app: App) -> None:
        port = app.http_port
        write(config, targets, {"p": "", "q": ""}, http=f"port: {busy_port}")
        async with client(app) as http:
            refused = await http.post("/-/reload")
        assert refused.status_code == 422
        assert f"cannot serve on 127.0.0.1:{busy_port}" in refused.json()["errors"][0]
        assert app.http_port == port
        async with client(app) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok", "reload": "failed"}
        # Nothing of the refused file was applied: q never started.
        await asyncio.sleep(0.4)
        assert "q" not in targets.hits

    try:
        await running(config, body)
    finally:
        taken.close()
