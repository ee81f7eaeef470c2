"""The App in process: the wiring between scheduler, tracker and store, and what no single
part can show alone (name resolution stalls, restart continuity of the tracker state)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from probe.app import App
from probe.assembly import load_config
from probe.core.result import Status
from probe.store import Store
from tests.support.config import free_http_port


async def run_app_for(config_path: Path, seconds: float) -> App:
    app = App(free_http_port(load_config(config_path)))

    async def stop_later() -> None:
        await asyncio.sleep(seconds)
        app.request_stop()

    stopper = asyncio.create_task(stop_later())
    assert await app.run() == 0
    await stopper
    return app


async def test_stalled_name_resolution_does_not_stall_other_probes(tmp_path, monkeypatch):
    """Ten probes whose names take 3 s to resolve hold ten resolver threads at a time; a probe
    that needs a lookup of its own (localhost) keeps its rate. Python's default executor has
    only cpu+4 threads, which the stalled lookups would fill."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith("stall.invalid"):
            time.sleep(3)  # a resolver that never answers in time (nothing leaves the machine)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = web.Application()
    server.router.add_get("/", ok)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        stalled = "\n".join(
            f"  - {{name: s{i}, url: 'http://s{i}.stall.invalid/', interval: 500ms,"
            f" timeout: 400ms}}"
            for i in range(10)
        )
        config = tmp_path / "p.yaml"
        config.write_text(
            "http:\n"
            f"  - {{name: local, url: 'http://localhost:{port}/', interval: 200ms,"
            " timeout: 150ms}\n"
            f"{stalled}\n"
        )
        app = await run_app_for(config, 3.0)
    finally:
        await runner.cleanup()

    store = Store.open(tmp_path / "data" / "probe.db")
    try:
        local = store.last_results("local", 100)
        stalled_results = store.last_results("s0", 100)
    finally:
        store.close_sync()
    assert len(local) >= 10, [r.message for r in local]
    assert all(r.status is Status.UP for r in local), [r.message for r in local]
    assert stalled_results and all(
        r.message == "timeout after 400ms during resolve" for r in stalled_results
    )
    assert app.tracker.state("local").status is Status.UP


async def test_restart_restores_tracker_state_and_does_not_realert(tmp_path):
    config = tmp_path / "p.yaml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config.write_text(
        f"tcp:\n  - {{name: gone, host: '127.0.0.1:{port}', interval: 100ms, timeout: 90ms,"
        " alert: {strategy: regular, factor: 1000, max: 2}}\n"
    )
    first = await run_app_for(config, 0.6)
    before = first.tracker.state("gone")
    assert before.status is Status.DOWN and before.alerts_sent == 1

    second = await run_app_for(config, 0.6)
    after = second.tracker.state("gone")
    assert after.status is Status.DOWN
    assert after.since == before.since  # the same outage, carried across the restart
    assert after.alerts_sent == 1  # not alerted again at its start
    assert after.outage_failures > before.outage_failures


async def test_web_server_serves_the_running_probes(tmp_path):
    import httpx

    config = tmp_path / "p.yaml"
    config.write_text(
        "settings:\n  http: {port: 0, token: t0ken}\n"
        "tcp:\n  - {name: self, host: '127.0.0.1:1', interval: 100ms, timeout: 90ms}\n"
    )
    app = App(load_config(config))
    answers: dict[str, object] = {}

    async def query_then_stop() -> None:
        while app.http_port is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        base = f"http://127.0.0.1:{app.http_port}"
        headers = {"Authorization": "Bearer t0ken"}
        async with httpx.AsyncClient(base_url=base) as client:
            answers["health"] = (await client.get("/healthz")).json()
            answers["sla"] = (await client.get("/api/v1/sla", headers=headers)).json()
            answers["metrics"] = (await client.get("/metrics", headers=headers)).text
            answers["unauthorised"] = (await client.get("/api/v1/sla")).status_code
        app.request_stop()

    task = asyncio.create_task(query_then_stop())
    assert await app.run() == 0
    await task
    assert answers["health"] == {"status": "ok"}
    assert answers["unauthorised"] == 401
    [item] = answers["sla"]  # type: ignore[misc]
    assert item["name"] == "self" and item["status"] == "down"
    families = {f.name: f for f in text_string_to_metric_families(str(answers["metrics"]))}
    [sample] = families["probe_success"].samples
    assert sample.labels["name"] == "self" and sample.value == 0.0


async def test_port_taken_is_a_startup_error(tmp_path):
    import pytest

    from probe.errors import StartupError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "p.yaml"
        config.write_text(
            f"settings:\n  http: {{port: {port}}}\ntcp:\n  - {{name: c, host: '127.0.0.1:1'}}\n"
        )
        with pytest.raises(StartupError, match=f"cannot serve on 127.0.0.1:{port}"):
            await App(load_config(config)).run()
