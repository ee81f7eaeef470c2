"""The status page: rendered from a real store with known history, read with html.parser."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from probe.cli import main as cli_main
from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource, read_now
from probe.web.render import StatusPage, write_static_page, write_status_files
from probe.web.server import BadRequest, create_app, start_server
from tests.store.helpers import NOW, Clock, Feeder, every, make_result
from tests.web.pagedom import PageDOM
from tests.web.test_server import HOSTILE, PROBES

DAY = 86400.0
LONG = ("\"quoted\" 'single' 🚀 " * 12)[:200]
ALL = [*PROBES, ConfiguredProbe(LONG, "tcp", "127.0.0.1:3", {"group": "<b>grp</b>"})]


@pytest.fixture
async def page(store) -> StatusPage:
    return StatusPage(StatusSource(store, ALL, clock=lambda: NOW))


async def test_one_row_per_probe_with_status_and_uptime(page):
    html = await page.render({})
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
    # In the details that open in place (no script): the days short of 100% as text.
    assert "1 day(s) below 99.9%; 2026-02-27 91.666%; other days with data: 100%" in (
        api.day_figures
    )
    assert api.days_label.endswith("30 day(s) with data, 1 below 99.9%")
    assert dom.row("db").day_figures.endswith("every day with data: 100%")
    assert "Uptime 90d" in api.details and api.uptime["90d"] in api.details
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


async def test_no_data_probe_shows_no_data(page):
    fresh = PageDOM(await page.render({})).row("fresh")
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
        dom = PageDOM(await StatusPage(source).render({}))
    finally:
        await store.close()
    assert len(dom.rows) == len(PROBES)
    assert dom.banner == "No data yet"
    for row in dom.rows:
        assert set(row.uptime.values()) == {"no data"} and row.status == "unknown"
        assert "0%" not in row.uptime.values()


@pytest.mark.slow
async def test_hostile_names_are_text_not_markup(page):
    html = await page.render({})
    assert "<script" not in html.lower()
    assert "<b>grp</b>" not in html
    dom = PageDOM(html)
    assert "script" not in dom.tags and "b" not in dom.tags
    assert dom.row(HOSTILE).name == HOSTILE and dom.row(HOSTILE).name_attr == HOSTILE
    assert dom.row(LONG).name == LONG and len(LONG) == 200
    assert "<b>grp</b>" in dom.groups
    # Nothing is loaded from anywhere else.
    assert all(not u.startswith(("http:", "https:", "//")) for u in dom.urls)


async def test_down_first_and_grouped(page):
    dom = PageDOM(await page.render({}))
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
@pytest.mark.slow
async def test_filters(page, query, names):
    dom = PageDOM(await page.render(query))
    assert [r.name for r in dom.rows] == names


async def test_paging_links_and_refresh(page):
    dom = PageDOM(await page.render({"sz": "2", "pg": "2", "status": "", "refresh": "30"}))
    assert dom.links == {"prev": "?sz=2&refresh=30&pg=1", "next": "?sz=2&refresh=30&pg=3"}
    assert dom.refresh == "30"
    first = PageDOM(await page.render({}))
    assert first.links == {} and first.refresh is None


@pytest.mark.parametrize(
    "query", [{"refresh": "4"}, {"refresh": "3601"}, {"refresh": "x"}, {"pg": "0"}, {"sz": "y"}]
)
@pytest.mark.slow
async def test_bad_parameters(page, query):
    with pytest.raises(BadRequest):
        await page.render(query)


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
    target.parent.mkdir()
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


async def test_failed_render_leaves_old_file(tmp_path, page):
    target = tmp_path / "index.html"
    write_static_page(target, "old")
    with pytest.raises(BadRequest):
        write_static_page(target, await page.render({"refresh": "0"}))
    assert target.read_text() == "old"


def _config(tmp_path: Path, store: Path) -> Path:
    (tmp_path / "site").mkdir(exist_ok=True)  # a status path's folder must exist
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


@pytest.mark.slow
async def test_app_writes_the_status_file_while_running_and_at_stop(tmp_path):
    import asyncio

    from probe.app import App
    from probe.assembly import load_config

    config = tmp_path / "p.yaml"
    config.write_text(
        "settings:\n  name: <i>Mine</i>\n  http: {port: 0, refresh: 200ms}\n"
        "  status: {path: site/index.html}\n"
        "tcp:\n  - {name: self, host: '127.0.0.1:1', interval: 100ms, timeout: 90ms}\n"
    )
    target = tmp_path / "site" / "index.html"
    target.parent.mkdir()
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


class CountingReader:
    """A real store whose page reads are counted (which names each batch asked for)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.asked: list[list[str]] = []

    def daily_uptime(self, names, start_day, days):
        self.asked.append(list(names))
        return self._store.daily_uptime(names, start_day, days)

    def __getattr__(self, name):
        return getattr(self._store, name)


async def test_reads_only_the_shown_probes_and_caches_them(store):
    reader = CountingReader(store)
    now = [NOW]
    source = StatusSource(reader, ALL, clock=lambda: now[0], max_age=60)
    page = StatusPage(source)
    first = PageDOM(await page.render({"sz": "2"}))
    assert len(first.rows) == 2
    assert reader.asked == [[r.name for r in first.rows]]
    await page.render({"sz": "2"})  # cached: no read
    await page.render({"sz": "3"})  # one more probe shown: only it is read
    assert len(reader.asked) == 2 and len(reader.asked[1]) == 1
    now[0] += 61  # the summaries expire: the details are read anew with them
    await page.render({"sz": "2"})
    assert len(reader.asked) == 3 and len(reader.asked[2]) == 2


async def test_down_since_before_the_window_is_an_ongoing_incident(tmp_path):
    s = Store.open(tmp_path / "p.db", clock=Clock())
    await s.start()
    try:
        feeder = Feeder(Policy(interval=3600))
        for obs in feeder.series(
            "old", every(NOW - 100 * DAY, NOW - 3600, 3600), lambda t: Status.DOWN
        ):
            s.submit(obs)
        await s.flush()
        old = ConfiguredProbe("old", "tcp", "127.0.0.1:1")
        dom = PageDOM(await StatusPage(StatusSource(s, [old], clock=lambda: NOW)).render({}))
    finally:
        await s.close()
    row = dom.row("old")
    assert row.status == "down"
    assert len(row.incidents) == 1 and "ongoing" in row.incidents[0]
    assert "100d" in row.incidents[0] or "99d" in row.incidents[0]


async def test_static_files_page_like_the_server(tmp_path):
    s = Store.open(tmp_path / "p.db", clock=Clock())
    await s.start()
    site = tmp_path / "site"
    site.mkdir()
    (site / "index-x.html").write_text("mine")  # not a page file of ours: kept
    (site / "other-9.html").write_text("mine")
    try:
        many = [ConfiguredProbe(f"p{i:03}", "tcp", f"127.0.0.1:{i + 1}") for i in range(250)]
        page = StatusPage(StatusSource(s, many, clock=lambda: NOW))
        written = await write_status_files(page, site / "index.html")
        assert [p.name for p in written] == ["index.html", "index-2.html", "index-3.html"]
        doms = [PageDOM(p.read_text()) for p in written]
        assert [len(d.rows) for d in doms] == [100, 100, 50]
        assert [r.name for d in doms for r in d.rows] == [p.name for p in many]
        assert doms[0].links == {"next": "index-2.html"}
        assert doms[1].links == {"prev": "index.html", "next": "index-3.html"}
        assert doms[2].links == {"prev": "index-2.html"}
        # Fewer probes later: the page file left over goes.
        fewer = StatusPage(StatusSource(s, many[:120], clock=lambda: NOW))
        assert len(await write_status_files(fewer, site / "index.html")) == 2
    finally:
        await s.close()
    assert sorted(p.name for p in site.iterdir()) == [
        "index-2.html",
        "index-x.html",
        "index.html",
        "other-9.html",
    ]
    assert PageDOM((site / "index.html").read_text()).links == {"next": "index-2.html"}


async def test_report_writes_every_page(tmp_path, capsys):
    db = tmp_path / "probe.db"
    s = Store.open(db, clock=Clock())
    await s.start()
    await s.close()
    cfg = tmp_path / "p.yaml"
    probes = "".join(f"  - {{name: t{i}, host: '127.0.0.1:{i + 1}'}}\n" for i in range(101))
    cfg.write_text(f"settings:\n  store: {{path: '{db}'}}\ntcp:\n{probes}")
    out = tmp_path / "out" / "status.html"
    out.parent.mkdir()
    assert await _in_thread(cli_main, ["report", "-c", str(cfg), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "and 1 more page file(s) (101 probes)" in printed
    assert len(PageDOM((tmp_path / "out" / "status-2.html").read_text()).rows) == 1


async def test_live_status_between_computations(store):
    # The App's path: the tracker, seeded from the store, is what the page shows as now;
    # each result goes to the tracker and from there to the store.
    tracker = read_now(store, [p.name for p in ALL])
    source = StatusSource(store, ALL, live=tracker, clock=lambda: NOW + 60, max_age=3600)
    page = StatusPage(source)
    assert PageDOM(await page.render({})).row("api").status == "up"
    generation = source.generation
    feeder = Feeder(Policy(interval=10), tracker)

    async def observe(t: float, status: Status) -> None:
        store.submit(feeder.observe(make_result("api", t, status)))
        await store.flush()

    await observe(NOW + 10, Status.DOWN)
    api = PageDOM(await page.render({})).row("api")
    assert api.status == "down" and api.incidents[0].endswith("ongoing (50s)")
    assert PageDOM(await page.render({})).banner.startswith("Major outage")
    await observe(NOW + 40, Status.UP)
    api = PageDOM(await page.render({})).row("api")
    assert api.status == "up" and api.incidents[0].endswith("(30s)")
    assert len(api.incidents) == 2  # and yesterday's
    assert source.generation == generation  # no summaries computed for any of it
    feeder.observe(make_result("not configured", NOW, Status.DOWN))
    items = {i.info.name: i for i in await source.summaries()}
    assert "not configured" not in items
    assert items["api"].last is not None and items["api"].last.time.timestamp() == NOW + 40


@pytest.mark.parametrize("hour", [0, 11, 23])
def test_a_lone_hour_draws_inside_the_chart(hour):
    from probe.web.page import CHART_W, _chart

    series: list[float | None] = [None] * 24
    series[hour] = 0.05
    [line] = _chart(series).lines
    xs = [float(point.split(",")[0]) for point in line.split()]
    assert len(xs) == 2 and xs[0] < xs[1]  # a segment, not a point
    assert all(0.0 <= x <= CHART_W for x in xs)
    assert xs[0] <= hour * CHART_W / 23 <= xs[1]


async def test_a_live_view_follows_each_change_and_leaves_earlier_lists_alone(tmp_path):
    from probe.core.tracker import StatusTracker

    store = Store.open(tmp_path / "live.db", clock=Clock())
    await store.start()
    try:
        tracker = StatusTracker()
        source = StatusSource(store, PROBES, live=tracker, clock=lambda: NOW)
        page = StatusPage(source)
        policy = Policy(interval=10.0)
        for probe in PROBES:
            tracker.observe(make_result(probe.name, NOW - 5), policy)
        first = await source.summaries()
        assert {item.status for item in first} == {Status.UP}
        assert await source.summaries() is first  # nothing changed: the same list

        victim = PROBES[-1].name
        tracker.observe(make_result(victim, NOW - 1, Status.DOWN), policy)
        second = await source.summaries()
        assert second is not first
        assert [i.status for i in first] == [Status.UP] * len(PROBES)  # left as it was
        changed = {i.info.name: i.status for i in second}
        assert changed[victim] is Status.DOWN
        assert all(s is Status.UP for n, s in changed.items() if n != victim)
        # The page order follows the change: the down probe (and its group) first.
        snap = await page.snapshot()
        assert snap.ordered[0].info.name == victim
        tracker.observe(make_result(victim, NOW), policy)
        snap = await page.snapshot()
        assert snap.ordered[0].info.name != victim or len(PROBES) == 1
        assert {i.status for i in snap.summaries} == {Status.UP}
    finally:
        await store.close()
