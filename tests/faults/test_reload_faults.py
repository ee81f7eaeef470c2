"""Reloads under load: 1,000 probes, a file that does not load, and reloads in a burst of
failures, with the state of every probe kept (the fault suite's reload figures)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probe.app import App
from probe.assembly import load_config
from probe.core.result import Status
from probe.store import Store
from tests.faults.conftest import FaultFigures
from tests.support.running_app import Targets, running
from tests.support.running_app import write as write_http

pytestmark = pytest.mark.slow

PROBES = 1000


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A TCP port on loopback that accepts and closes: an up target for TCP probes."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, backlog=1024)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def write(
    path: Path, port: int, names: list[str], *, timeout: dict[str, str] | None = None
) -> None:
    lines = [
        "settings:",
        "  http: {port: 0}",
        f"  store: {{path: {path.parent}/probe.db}}",
        "  probe: {interval: 2s, timeout: 1s}",
        "tcp:",
    ]
    for name in names:
        extra = f", timeout: {timeout[name]}" if timeout and name in timeout else ""
        # Port 1 refuses: those probes are down; the rest are up.
        target = 1 if name.startswith("down") else port
        lines.append(f"  - {{name: {name}, host: '127.0.0.1:{target}'{extra}}}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_reloads_of_1000_probes_keep_every_state(
    tmp_path: Path, port: int, fault_figures: FaultFigures
) -> None:
    config = tmp_path / "probes.yaml"
    names = [f"up{i}" for i in range(PROBES - 100)] + [f"down{i}" for i in range(100)]
    write(config, port, names)
    app = App(load_config(config))
    figures: dict[str, float] = {}

    async def body() -> None:
        while app._scheduler is None or app.http_port is None:
            await asyncio.sleep(0.02)
        checked = lambda: sum(sum(app.tracker.now(n).checks.values()) > 0 for n in names)  # noqa: E731
        await until(lambda: checked() == PROBES)
        before = {n: app.tracker.state(n) for n in names}

        # Valid: 100 changed, 100 removed, 100 added, 700 untouched.
        changed = {n: "900ms" for n in names[:100]}
        removed = set(names[100:200])
        added = [f"new{i}" for i in range(100)]
        kept = [n for n in names if n not in removed and n not in changed]
        write(config, port, [n for n in names if n not in removed] + added, timeout=changed)
        began = time.perf_counter()
        report = await app.reload("api")
        figures["valid"] = (time.perf_counter() - began) * 1000
        assert report.ok, report
        assert report.diff is not None
        assert (len(report.diff.added), len(report.diff.changed), len(report.diff.removed)) == (
            100,
            100,
            100,
        )
        assert report.diff.unchanged == len(kept)

        # Invalid: nothing changes, and it is said where.
        good = config.read_text()
        config.write_text(good.replace("interval: 2s", "interval: [2s]"))
        began = time.perf_counter()
        refused = await app.reload("api")
        figures["invalid"] = (time.perf_counter() - began) * 1000
        assert not refused.ok and "settings.probe.interval" in refused.problems[0]
        config.write_text(good)

        await until(lambda: all(sum(app.tracker.now(n).checks.values()) > 0 for n in added))
        await asyncio.sleep(2.5)  # one more interval: every kept probe checked again
        for name in kept + list(changed):
            now = app.tracker.state(name)
            then = before[name]
            # Same status since the same moment, and the streak counted on, not from zero.
            assert now.status is then.status and now.since == then.since, name
            assert now.ok_streak + now.fail_streak > then.ok_streak + then.fail_streak, name
        assert app.tracker.state("down0").status is Status.DOWN
        figures["kept"] = len(kept) + len(changed)

    async def drive() -> None:
        try:
            await asyncio.wait_for(body(), 120)
        finally:
            app.request_stop()

    driver = asyncio.create_task(drive())
    assert await app.run() == 0
    await driver  # its assertion errors, if any

    # No check lost or doubled by the reloads: every kept probe's results stay one interval
    # apart (a doubled check would leave two close together, a lost one a gap of two).
    store = Store.open(tmp_path / "probe.db")
    try:
        gaps = []
        for name in names[200:]:
            times = sorted(r.time.timestamp() for r in store.last_results(name, 100))
            gaps += [b - a for a, b in itertools.pairwise(times)]
    finally:
        store.close_sync()
    assert gaps and min(gaps) > 1.0 and max(gaps) < 3.0, (min(gaps), max(gaps))
    fault_figures.add(
        f"reload, {PROBES} probes (100 added, 100 changed, 100 removed): applied in"
        f" {figures['valid']:.0f} ms; an invalid file refused in {figures['invalid']:.0f} ms;"
        f" state kept for {figures['kept']:.0f} of {figures['kept']:.0f} probes; results of"
        f" kept probes {min(gaps):.2f}-{max(gaps):.2f} s apart (interval 2 s)"
    )


async def test_reloads_in_a_burst_of_failures_send_each_alert_once(
    tmp_path: Path, targets: Targets, fault_figures: FaultFigures
) -> None:
    config = tmp_path / "probes.yaml"
    notify = f"webhook:\n  - {{name: hook, url: '{targets.base}/hook'}}"
    probes = {f"b{i}": "failure: 3" for i in range(10)}
    at_once = "notify: {group: {wait: 0s}}"  # each alert on its own: counted one by one
    write_http(config, targets, probes, notify=notify, settings=at_once)
    reloads = 0

    async def body(app: App) -> None:
        nonlocal reloads
        await until(lambda: all(targets.hits.get(n) for n in probes))
        targets.failing.update(probes)
        # A reload every 100 ms through the whole outage: before, at and after the threshold
        # of every probe, each changing the probes' timeouts (all of them changed probes).
        while reloads < 20 or not all(app.tracker.state(n).status is Status.DOWN for n in probes):
            timeout = f"timeout: {100 + reloads % 40}ms"
            changed = {n: f"failure: 3, {timeout}" for n in probes}
            write_http(config, targets, changed, notify=notify, settings=at_once)
            assert (await app.reload("api")).ok
            reloads += 1
            await asyncio.sleep(0.1)
        targets.failing.clear()
        await until(lambda: all(app.tracker.state(n).status is Status.UP for n in probes))
        await until(lambda: len(targets.alerts) >= 2 * len(probes))
        await asyncio.sleep(0.5)

    await running(config, body)
    assert len(targets.alerts) == 2 * len(probes)  # one down and one recovery each
    fault_figures.add(
        f"reload during a failure burst: {reloads} reloads over the outage of {len(probes)}"
        f" probes; {len(targets.alerts)} alerts sent, {2 * len(probes)} expected, no duplicate"
    )


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_reload_cycles_leak_no_descriptors_or_tasks(
    tmp_path: Path, targets: Targets, fault_figures: FaultFigures
) -> None:
    config = tmp_path / "probes.yaml"
    cycles = 200
    hook = "webhook:\n  - {{name: hook, url: '{}/hook{}'}}"
    write_http(config, targets, {"a": "", "b": ""}, notify=hook.format(targets.base, 0))
    seen: dict[str, int] = {}

    async def body(app: App) -> None:
        await until(lambda: all(targets.hits.get(n) for n in ("a", "b")))
        for cycle in range(cycles + 20):
            if cycle == 20:  # warmed up: pools, caches and lazy imports are made by now
                await asyncio.sleep(0.5)
                seen["fds"], seen["tasks"] = _fds(), len(asyncio.all_tasks())
            # Every kind of change in turn: a probe changed, added, removed; the notifier.
            probes = {"a": f"timeout: {100 + cycle % 50}ms", "b": ""}
            if cycle % 2:
                probes[f"extra{cycle % 3}"] = ""
            write_http(config, targets, probes, notify=hook.format(targets.base, cycle % 4))
            assert (await app.reload("api")).ok
            await asyncio.sleep(0.01)
        write_http(config, targets, {"a": "", "b": ""}, notify=hook.format(targets.base, 0))
        assert (await app.reload("api")).ok
        await asyncio.sleep(1.5)  # retired probers and notifiers closed in the background
        seen["fds_after"], seen["tasks_after"] = _fds(), len(asyncio.all_tasks())

    await running(config, body)
    fault_figures.add(
        f"reload cycles: {cycles} reloads (probes changed, added, removed; notifier replaced):"
        f" fds {seen['fds']} -> {seen['fds_after']}, tasks {seen['tasks']} -> {seen['tasks_after']}"
    )
    assert seen["fds_after"] <= seen["fds"] + 2
    assert seen["tasks_after"] <= seen["tasks"] + 2
