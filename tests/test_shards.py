"""Worker processes (`settings.probe.workers`): every probe checked, one alert decision per
probe in the main process, a worker that dies started again, and no worker outliving its
main process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from aiohttp import web

from probe.app import App
from probe.assembly import load_config
from probe.core.result import Status
from probe.errors import ConfigError
from probe.shards import ShardedScheduler, deal
from probe.store import Store
from tests.support.cli import spawn_probe
from tests.support.config import free_http_port

pytestmark = pytest.mark.slow


def test_deal_is_round_robin_and_loses_nothing():
    shards = deal(list(range(10)), 3)
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert deal([1, 2], 4) == [[1], [2], [], []]


def worker_pids(parent: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"probe.shards" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                continue
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
async def answering():
    """An HTTP server on 127.0.0.1 that answers 200 to /up and 503 to /down."""

    async def up(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="no")

    server = web.Application()
    server.router.add_get("/up", up)
    server.router.add_get("/down", down)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def write_config(tmp_path: Path, base: str, workers: int, *, extra: str = "") -> Path:
    lines = [
        "settings:",
        f"  probe: {{workers: {workers}, interval: 200ms, timeout: 1s}}",
        f"  store: {{path: {tmp_path}/probe.db}}",
        "http:",
        *(f"  - {{name: up{i}, url: '{base}/up'}}" for i in range(5)),
        f"  - {{name: failing, url: '{base}/down', alert: {{strategy: regular, factor: 1000,"
        " max: 1}}",
        extra,
    ]
    config = tmp_path / "p.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def test_every_probe_is_checked_across_the_workers(tmp_path, answering):
    app = App(free_http_port(load_config(write_config(tmp_path, answering, 3))))
    seen_workers: list[int] = []

    async def look_then_stop() -> None:
        # Until every probe was checked 3 times (workers start slower on a loaded machine).
        names = [*(f"up{i}" for i in range(5)), "failing"]
        for _ in range(400):
            if all(sum(app.tracker.now(n).checks.values()) >= 3 for n in names):
                break
            await asyncio.sleep(0.05)
        seen_workers.extend(worker_pids(os.getpid()))
        assert isinstance(app._scheduler, ShardedScheduler)
        app.request_stop()

    task = asyncio.create_task(look_then_stop())
    assert await app.run() == 0
    await task
    assert len(seen_workers) == 2  # the main process checks shard 0 itself
    for pid in seen_workers:
        for _ in range(50):
            if not alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not alive(pid), "a worker outlived the App's stop"

    store = Store.open(tmp_path / "probe.db")
    try:
        for name in [*(f"up{i}" for i in range(5)), "failing"]:
            results = store.last_results(name, 100)
            assert len(results) >= 3, name
            want = Status.DOWN if name == "failing" else Status.UP
            assert {r.status for r in results} == {want}, name
    finally:
        store.close_sync()
    # One alert decision for the failing probe, whichever process checked it.
    state = app.tracker.state("failing")
    assert state.status is Status.DOWN and state.alerts_sent == 1


async def test_a_worker_that_dies_is_started_again(tmp_path, answering, caplog):
    app = App(free_http_port(load_config(write_config(tmp_path, answering, 2))))
    counts: dict[str, int] = {}

    async def kill_then_stop() -> None:
        await asyncio.sleep(1.0)
        [pid] = worker_pids(os.getpid())
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        await asyncio.sleep(3.0)  # the restart pause is 1 s
        assert worker_pids(os.getpid()) not in ([], [pid])
        counts["killed_at"] = int(killed_at)
        app.request_stop()

    task = asyncio.create_task(kill_then_stop())
    assert await app.run() == 0
    await task
    assert any("exited unasked" in r.getMessage() for r in caplog.records)
    store = Store.open(tmp_path / "probe.db")
    try:
        # Probes of the killed worker's shard (up1, up3 are in shard 1) run again after it.
        after = counts["killed_at"] + 1
        later = [r for r in store.last_results("up1", 100) if r.time.timestamp() > after]
        assert later, "the restarted worker did not check its probes"
    finally:
        store.close_sync()


async def test_workers_stop_when_the_main_process_is_killed(tmp_path, answering):
    config = write_config(tmp_path, answering, 2, extra="")
    text = config.read_text().replace("settings:\n", "settings:\n  http: {port: 0}\n", 1)
    config.write_text(text)
    process = await spawn_probe("run", "-c", str(config), cwd=tmp_path)
    try:
        workers: list[int] = []
        for _ in range(100):
            await asyncio.sleep(0.1)
            workers = worker_pids(process.pid)
            if workers:
                break
        assert workers, "no worker started"
        process.kill()  # SIGKILL: no chance to stop its workers itself
        await process.wait()
        for _ in range(100):
            if not any(alive(pid) for pid in workers):
                break
            await asyncio.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "an orphaned worker kept running"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_workers_setting_is_validated(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("settings:\n  probe: {workers: 0}\nhttp: []\n")
    with pytest.raises(ConfigError, match="workers"):
        load_config(config)


def test_more_workers_than_probes_starts_no_idle_process(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text(
        "settings:\n  probe: {workers: 8}\ntcp:\n  - {name: one, host: '127.0.0.1:1'}\n"
    )
    app = App(load_config(config))
    scheduler = app._checkers()
    assert len(app._probers) == 1
    assert not isinstance(scheduler, ShardedScheduler)
