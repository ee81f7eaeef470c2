"""A real App against real HTTP targets on loopback, for tests of what the App does with
results (reloads, alerts of dependent probes): `Targets` (the /ok/NAME endpoints and the /hook
webhook receiver) and its fixture, `write` (a config of HTTP probes on disk), `running` (an App
run while a test body drives it) and `until`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from probe.app import App
from probe.assembly import load_config
from probe.core.result import Status


class Targets:
    """HTTP targets on loopback: /ok/NAME answers 200 unless NAME is in `failing`; every
    request is counted by name. /hook records webhook notifications."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.alternating: set[str] = set()  # these answer 503 and 200 in turn
        self.statuses: dict[str, int] = {}  # these answer this status instead of 200
        self.hanging: set[str] = set()  # these answer after 6 s (longer than a stop's grace)
        self.hits: dict[str, list[float]] = {}
        self.alerts: list[dict[str, Any]] = []
        self.base = ""

    async def target(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hits = self.hits.setdefault(name, [])
        hits.append(time.monotonic())
        if name in self.hanging:
            await asyncio.sleep(6)
        failing = name in self.failing or (name in self.alternating and len(hits) % 2 == 1)
        return web.Response(status=503 if failing else self.statuses.get(name, 200), text="x")

    async def hook(self, request: web.Request) -> web.Response:
        if "broken" in request.path:
            return web.Response(status=500, text="down for maintenance")
        self.alerts.append({"path": request.path, **json.loads(await request.read())})
        return web.Response(text="ok")


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    t = Targets()
    app = web.Application()
    app.router.add_get("/ok/{name}", t.target)
    app.router.add_post("/{path:hook.*}", t.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    t.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield t
    await runner.cleanup()


def write(
    path: Path,
    targets: Targets,
    probes: dict[str, str],
    *,
    settings: str = "",
    notify: str = "",
    defaults: str = "interval: 200ms, timeout: 150ms",
    http: str = "port: 0",
) -> None:
    """A config of HTTP probes NAME -> extra keys, against `targets`."""
    lines = [
        "settings:",
        f"  http: {{{http}}}",
        f"  store: {{path: {path.parent}/probe.db}}",
        f"  probe: {{{defaults}}}",
        *(f"  {line}" for line in settings.splitlines()),
        "http:",
    ]
    for name, extra in probes.items():
        more = f", {extra}" if extra else ""
        lines.append(f"  - {{name: {name}, url: '{targets.base}/ok/{name}'{more}}}")
    if notify:
        lines += ["notify:", *(f"  {line}" for line in notify.splitlines())]
    # Written whole, then moved in place: the watch never sees half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


async def running(path: Path, body: Callable[[App], Awaitable[None]], *, workers: int = 1) -> App:
    """Run the App of `path` while `body` runs, then stop it."""
    app = App(load_config(path))

    async def drive() -> None:
        try:
            while app.http_port is None or app._scheduler is None:
                await asyncio.sleep(0.02)
            await body(app)
        finally:
            app.request_stop()

    task = asyncio.create_task(drive())
    assert await app.run() == 0
    await task  # its assertion errors, if any
    return app


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# Settings for a test that counts alerts one by one: each goes out at once, none grouped.
AT_ONCE = "notify: {group: {wait: 0s}}"


def alerting(
    path: Path,
    targets: Targets,
    probes: dict[str, str],
    *,
    defaults: str = "",
    hooks: tuple[str, ...] = ("hook",),
) -> None:
    """`write` with a webhook notifier per name in `hooks` (each posting to /NAME, all to
    `targets.alerts`) and every alert sent at once."""
    lines = [f"  - {{name: {name}, url: '{targets.base}/{name}'}}" for name in hooks]
    notify = "webhook:\n" + "\n".join(lines)
    extra = {"defaults": defaults} if defaults else {}
    write(path, targets, probes, notify=notify, settings=AT_ONCE, **extra)


async def all_down(app: App, targets: Targets, names: Iterable[str]) -> None:
    """Once every probe named was checked: make them all fail, until the tracker has them down."""
    names = list(names)
    await until(lambda: all(targets.hits.get(name) for name in names))
    targets.failing.update(names)
    await until(lambda: all(app.tracker.state(n).status is Status.DOWN for n in names))
