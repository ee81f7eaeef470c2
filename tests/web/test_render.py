"""The status page: rendered from a real store with known history, read with html.parser."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from probe.cli import main as cli_main
from probe.store import Store
from probe.web.data import ProbeInfo, StatusSource
from probe.web.render import (
    PageData,
    build_page_data,
    render_status_page,
    write_static_page,
)
from probe.web.server import BadRequest, create_app, start_server
from tests.store.helpers import NOW, Clock
from tests.web.pagedom import PageDOM
from tests.web.test_server import HOSTILE, PROBES, fill

LONG = ("\"quoted\" 'single' 🚀 " * 12)[:200]
ALL = [*PROBES, ProbeInfo(LONG, "tcp", "127.0.0.1:3", {"group": "<b>grp</b>"})]


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock())
    await s.start()
    await fill(s)
    yield s
    await s.close()


@pytest.fixture
async def data(store) -> PageData:
    source = StatusSource(store, ALL, clock=lambda: NOW)
    return await build_page_data(source, store, NOW)


def test_one_row_per_probe_with_status_and_uptime(data):
    html = render_status_page(data, {})
    dom = PageDOM(html)
    assert sorted(r.name for r in dom.rows) == sorted(p.name for p in ALL)
    assert all(r.name == r.name_attr for r in dom.rows)
    api = dom.row("api")
    assert api.status == "up" == api.status_attr
    assert api.uptime["24h"] == "100%"
    # 2 hours down out of 30 days measured: 99.722%
    assert api.uptime["30d"] == "99.722%"
    assert api.uptime["7d"].endswith("%") and float(api.uptime["7d"][:-1]) < 99.0
    assert api.latency == "50 ms"
    assert len(api.days) == 90
    assert "2026-02-27: 91.666%" in api.days  # the outage day, on hover
    assert api.days[-2] == "2026-02-28: 100%"
    assert sum(d.endswith("no data") for d in api.days) == 60  # 30 days of history
    assert api.chart
    assert len(api.incidents) == 1
    assert "2026-02-27 21:" in api.incidents[0] and "2h" in api.incidents[0]
    hostile = dom.row(HOSTILE)
    assert hostile.status == "down" and hostile.uptime["24h"] == "0.000%"
    assert hostile.latency == "no data" and not hostile.chart
    assert "ongoing" in hostile.incidents[0]
    assert dom.row("db").uptime["30d"] == "100%"
    # A major/partial banner: one of the three probes with data is down.
    assert dom.banner.startswith("Partial outage")


def test_no_data_probe_shows_no_data(data):
    fresh = PageDOM(render_status_page(data, {})).row("fresh")
    assert fresh.status == "unknown"
    assert set(fresh.uptime.values()) == {"no data"}
    assert fresh.latency == "no data"
    assert all(d.endswith("no data") for d in fresh.days)
    assert not fresh.chart and fresh.incidents == []


async def test_empty_store_renders_no_data(tmp_path):
    store = Store.open(tmp_path / "empty.db", clock=Clock())
    await store.start()
    try:
        source = StatusSource(store, PROBES, clock=lambda: NOW)
        dom = PageDOM(render_status_page(await build_page_data(source, store, NOW), {}))
    finally:
        await store.close()
    assert len(dom.rows) == len(PROBES)
    assert dom.banner == "No data yet"
    for row in dom.rows:
        assert set(row.uptime.values()) == {"no data"} and row.status == "unknown"
        assert "0%" not in row.uptime.values()


def test_hostile_names_are_text_not_markup(data):
    html = render_status_page(data, {})
    assert "<script" not in html.lower()
    assert "<b>grp</b>" not in html
    dom = PageDOM(html)
    assert "script" not in dom.tags and "b" not in dom.tags
    assert dom.row(HOSTILE).name == HOSTILE and dom.row(HOSTILE).name_attr == HOSTILE
    assert dom.row(LONG).name == LONG and len(LONG) == 200
    assert "<b>grp</b>" in dom.groups
    # Nothing is loaded from anywhere else.
    assert all(not u.startswith(("http:", "https:", "//")) for u in dom.urls)


def test_down_first_and_grouped(data):
    dom = PageDOM(render_status_page(data, {}))
    # The ungrouped section holds the down probe, so it comes first, down first inside it.
    assert [r.name for r in dom.rows][:3] == [HOSTILE, "fresh", "db"]
    assert dom.groups == ["Other", "<b>grp</b>", "web"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"name": "ap"}, ["api"]),
        ({"kind": "postgres"}, ["db"]),
        ({"ep": "example"}, ["api"]),
        ({"status": "down"}, [HOSTILE]),
        ({"gte": "99.5"}, ["db", "api"]),
        ({"lte": "50"}, [HOSTILE]),
        ({"sz": "2", "pg": "2"}, ["db", LONG]),
        ({"sz": "2", "pg": "9"}, []),
    ],
)
def test_filters(data, query, names):
    dom = PageDOM(render_status_page(data, query))
    assert [r.name for r in dom.rows] == names


def test_paging_links_and_refresh(data):
    dom = PageDOM(render_status_page(data, {"sz": "2", "pg": "2", "status": "", "refresh": "30"}))
    assert dom.links == {"prev": "?sz=2&refresh=30&pg=1", "next": "?sz=2&refresh=30&pg=3"}
    assert dom.refresh == "30"
    first = PageDOM(render_status_page(data, {}))
    assert first.links == {} and first.refresh is None


@pytest.mark.parametrize(
    "query", [{"refresh": "4"}, {"refresh": "3601"}, {"refresh": "x"}, {"pg": "0"}, {"sz": "y"}]
)
def test_bad_parameters(data, query):
    with pytest.raises(BadRequest):
        render_status_page(data, query)


async def test_served_at_root(store):
    source = StatusSource(store, ALL, clock=lambda: NOW)
    runner, port = await start_server(create_app(source), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ok = await client.get("/?status=down&refresh=10")
            bad = await client.get("/?refresh=1")
    finally:
        await runner.cleanup()
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in ok.headers["Content-Security-Policy"]
    dom = PageDOM(ok.text)
    assert [r.name for r in dom.rows] == [HOSTILE] and dom.refresh == "10"
    assert bad.status_code == 400 and "refresh" in bad.json()["error"]


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "public" / "index.html"
    write_static_page(target, "old")
    assert target.read_text() == "old"

    def broken(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        write_static_page(target, "new" * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]  # no temp file left
    monkeypatch.undo()
    write_static_page(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]


def test_failed_render_leaves_old_file(tmp_path, data):
    target = tmp_path / "index.html"
    write_static_page(target, "old")
    with pytest.raises(BadRequest):
        write_static_page(target, render_status_page(data, {"refresh": "0"}))
    assert target.read_text() == "old"


def _config(tmp_path: Path, store: Path) -> Path:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "settings:\n"
        f"  store: {{path: '{store}'}}\n"
        f"  status: {{path: '{tmp_path / 'site' / 'index.html'}'}}\n"
        "http:\n  - {name: api, url: 'https://api.example.com/health'}\n"
        "tcp:\n  - {name: db, host: '10.0.0.5:5432'}\n"
    )
    return cfg


async def test_report_writes_the_page(tmp_path, store, capsys):
    await store.flush()
    cfg = _config(tmp_path, tmp_path / "probe.db")
    out = tmp_path / "out.html"
    code = await _in_thread(cli_main, ["report", "-c", str(cfg), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    dom = PageDOM(out.read_text())
    assert sorted(r.name for r in dom.rows) == ["api", "db"]
    # Default target: settings.status.path
    assert await _in_thread(cli_main, ["report", "-c", str(cfg)]) == 0
    assert len(PageDOM((tmp_path / "site" / "index.html").read_text()).rows) == 2


async def test_report_unusable_store_is_exit_3(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    cfg = _config(tmp_path, bad)
    assert await _in_thread(cli_main, ["report", "-c", str(cfg)]) == 3
    assert "Traceback" not in capsys.readouterr().err
    missing = _config(tmp_path, tmp_path / "none.db")
    assert await _in_thread(cli_main, ["report", "-c", str(missing)]) == 3
    assert not (tmp_path / "site" / "index.html").exists()


async def _in_thread(fn, *args):  # the CLI runs its own event loop
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def test_app_writes_the_status_file_while_running_and_at_stop(tmp_path):
    import asyncio

    from probe.app import App
    from probe.config import load_config

    config = tmp_path / "p.yaml"
    config.write_text(
        "settings:\n  name: <i>Mine</i>\n  http: {port: 0, refresh: 200ms}\n"
        "  status: {path: site/index.html}\n"
        "tcp:\n  - {name: self, host: '127.0.0.1:1', interval: 100ms, timeout: 90ms}\n"
    )
    target = tmp_path / "site" / "index.html"
    app = App(load_config(config))
    seen: list[str] = []

    async def watch_then_stop() -> None:
        while not target.exists():
            await asyncio.sleep(0.05)
        seen.append(target.read_text())
        await asyncio.sleep(0.5)
        app.request_stop()

    task = asyncio.create_task(watch_then_stop())
    assert await asyncio.wait_for(app.run(), 20) == 0
    await task
    assert len(PageDOM(seen[0]).rows) == 1
    final = PageDOM(target.read_text())
    assert final.row("self").status == "down"
    assert "&lt;i&gt;Mine&lt;/i&gt;" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]
