"""The status page in a real browser: Debian's headless Chromium dumps the DOM it built.

Skipped when /usr/bin/chromium is missing, unless PROBE_TEST_REQUIRE_SERVICES=1 (CI), where
that is a failure (tests/support/services.py). Chromium's network log shows that no request
leaves localhost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW, Clock, Feeder, every
from tests.support.browser import CHROMIUM_FLAGS, chromium
from tests.web.pagedom import PageDOM
from tests.web.test_render import ALL, LONG
from tests.web.test_server import HOSTILE, fill

pytestmark = pytest.mark.browser


async def dump_dom(url: str, tmp: Path) -> tuple[str, str]:
    """The DOM Chromium built for `url`, and its network log (JSON text)."""
    netlog = tmp / "netlog.json"
    proc = await asyncio.create_subprocess_exec(
        str(chromium()),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp / 'profile'}",
        f"--log-net-log={netlog}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode(), netlog.read_text() if netlog.exists() else ""


def page_requests(netlog: str, site: str) -> list[str]:
    """The URLs the page itself asked for: requests whose network isolation key is the
    page's site. (Chromium's own background calls, an update check or the like, carry
    another key or `null` and say nothing about the page.)"""
    log = json.loads(netlog)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        key = str(params.get("network_isolation_key", "")).split(" ")[0]
        if event["type"] == start_job and "url" in params and key == site:
            urls.append(params["url"])
    return urls


def looked_up(netlog: str) -> list[str]:
    """The host names the browser resolved other than loopback's: none may be, so nothing
    Chromium asks for on its own (update and time checks) leaves the machine (CHROMIUM_FLAGS
    map every other name to "not found" before any DNS query)."""
    log = json.loads(netlog)
    kinds = log["constants"]["logEventTypes"]
    asks = {kinds[k] for k in ("HOST_RESOLVER_MANAGER_REQUEST", "HOST_RESOLVER_MANAGER_JOB")}
    hosts = [
        str((event.get("params") or {}).get("host", ""))
        for event in log["events"]
        if event["type"] in asks and (event.get("params") or {}).get("host")
    ]
    assert hosts, "no name resolution logged: the net log's shape changed"
    local = ("127.0.0.1", "localhost", "~notfound")
    return [h for h in hosts if not any(name in h for name in local)]


HOUR = 3600.0
# The example: up 99.5% over 30 days with one 2-hour incident yesterday (so 400 hours
# of history: 2 h down of 400 h measured).
BILLING = ConfiguredProbe("billing", "http", "http://127.0.0.1:9/health", {"group": "web"})


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    await fill(s)
    outage = (NOW - 27 * HOUR, NOW - 25 * HOUR)
    for obs in Feeder(Policy(interval=300)).series(
        "billing",
        every(NOW - 400 * HOUR, NOW, 300),
        lambda t: Status.DOWN if outage[0] <= t < outage[1] else Status.UP,
    ):
        s.submit(obs)
    await s.flush()
    yield s
    await s.close()


async def test_page_in_headless_chromium(store, tmp_path):
    chromium()
    source = StatusSource(store, [*ALL, BILLING], clock=lambda: NOW)
    runner, port = await start_server(create_app(source), "127.0.0.1", 0)
    try:
        html, netlog = await dump_dom(f"http://127.0.0.1:{port}/", tmp_path)
    finally:
        await runner.cleanup()
    dom = PageDOM(html)
    assert sorted(r.name for r in dom.rows) == sorted(p.name for p in [*ALL, BILLING])
    billing = dom.row("billing")
    assert billing.status == "up" and billing.uptime["30d"] == "99.500%"
    assert billing.uptime["24h"] == "100%"
    assert len(billing.incidents) == 1 and billing.incidents[0].endswith("(2h 0m)")
    assert "2026-02-27: 91.666%" in billing.days  # yesterday's bar, 22 h of 24 up
    api = dom.row("api")
    assert api.status == "up" and api.uptime["24h"] == "100%" and api.uptime["30d"] == "99.722%"
    assert dom.row(HOSTILE).status == "down" and dom.row(HOSTILE).name == HOSTILE
    assert dom.row(LONG).name == LONG
    assert set(dom.row("fresh").uptime.values()) == {"no data"}
    assert "script" not in dom.tags  # the hostile name stayed text in the browser's DOM
    urls = page_requests(netlog, "http://127.0.0.1")
    assert f"http://127.0.0.1:{port}/" in urls
    assert all(u.startswith(f"http://127.0.0.1:{port}/") for u in urls), urls
    assert looked_up(netlog) == []


async def test_icon_is_loaded_as_favicon_and_logo(store, tmp_path):
    """settings.icon on another loopback server: the page's policy lets exactly that origin
    in, and the browser fetches it; nothing else leaves the page's own server."""
    chromium()
    from aiohttp import web

    asked: list[str] = []

    async def logo(request: web.Request) -> web.Response:
        asked.append(request.path)
        body = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'
        return web.Response(text=body, content_type="image/svg+xml")

    icons = web.Application()
    icons.router.add_get("/logo.svg", logo)
    icon_runner = web.AppRunner(icons, access_log=None)
    await icon_runner.setup()
    icon_site = web.TCPSite(icon_runner, "127.0.0.1", 0)
    await icon_site.start()
    icon_port = icon_runner.addresses[0][1]
    icon = f"http://127.0.0.1:{icon_port}/logo.svg"
    source = StatusSource(store, ALL, clock=lambda: NOW)
    runner, port = await start_server(create_app(source, icon=icon), "127.0.0.1", 0)
    try:
        html, netlog = await dump_dom(f"http://127.0.0.1:{port}/", tmp_path)
    finally:
        await runner.cleanup()
        await icon_runner.cleanup()
    assert PageDOM(html).urls.count(icon) == 2
    assert "/logo.svg" in asked  # the <img> in the header, allowed by img-src
    urls = page_requests(netlog, "http://127.0.0.1")
    assert all(u.startswith((f"http://127.0.0.1:{port}/", icon)) for u in urls), urls
    assert looked_up(netlog) == []
