"""The web server over real HTTP, reading a real store filled with known history."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import quote

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource, refresh_pause
from probe.web.server import create_app, start_server
from tests.store.helpers import NOW, Feeder, every

HOSTILE = '<script>alert(1)</script> "q" & ünïcode 🚀'
PROBES = [
    ConfiguredProbe("api", "http", "https://api.example.com/health", {"group": "web"}),
    ConfiguredProbe("db", "postgres", "10.0.0.5:5432"),
    ConfiguredProbe(HOSTILE, "tcp", "127.0.0.1:1"),
    ConfiguredProbe("fresh", "tcp", "127.0.0.1:2"),  # configured, no data yet
]


async def fill(store: Store) -> None:
    feeder = Feeder(Policy(interval=300))
    day = 86400.0
    # api: up every minute for 30 days except a 2-hour outage yesterday
    outage = (NOW - day - 3 * 3600, NOW - day - 3600)
    for obs in feeder.series(
        "api",
        every(NOW - 30 * day, NOW - 300, 300),
        lambda t: Status.DOWN if outage[0] <= t < outage[1] else Status.UP,
    ):
        store.submit(obs)
    for obs in feeder.series("db", every(NOW - 2 * day, NOW - 300, 300)):
        store.submit(obs)
    for obs in feeder.series(
        HOSTILE, every(NOW - 3600, NOW - 300, 300), lambda t: Status.DOWN, latency=None
    ):
        store.submit(obs)
    await store.flush()


@pytest.fixture
async def serve(store):
    runners = []

    async def start(**kwargs) -> httpx.AsyncClient:
        source = StatusSource(store, PROBES, clock=lambda: NOW)
        app = create_app(source, **kwargs)
        runner, port = await start_server(app, "127.0.0.1", 0)
        runners.append(runner)
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_sla_api_shape_and_figures(serve):
    async with await serve() as client:
        response = await client.get("/api/v1/sla")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    items = {item["name"]: item for item in response.json()}
    assert set(items) == {p.name for p in PROBES}
    api = items["api"]
    assert set(api) >= {"name", "endpoint", "sla", "probe_summary", "latest_probe", "windows"}
    # 2 hours down out of ~30 days measured
    assert api["windows"]["30d"] == pytest.approx(100 * (1 - 2 / (30 * 24)), abs=0.02)
    assert api["windows"]["24h"] == 100.0
    assert api["probe_summary"]["down"] == 24 and api["probe_summary"]["total"] > 8600
    assert api["sla"]["down"] == pytest.approx(7200, abs=301)
    assert api["latest_probe"]["status"] == "up"
    assert api["latest_probe"]["time"].endswith("Z")
    assert items[HOSTILE]["status"] == "down" and items[HOSTILE]["sla"]["sla"] == 0.0
    fresh = items["fresh"]
    assert fresh["status"] == "unknown" and fresh["latest_probe"] is None
    assert fresh["sla"]["sla"] is None and fresh["windows"]["24h"] is None


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("name=ap", ["api"]),
        ("kind=postgres", ["db"]),
        ("ep=example", ["api"]),
        ("status=down", [HOSTILE]),
        ("gte=99.5", ["api", "db"]),
        ("lte=50", [HOSTILE]),
        ("sz=2&pg=2", [HOSTILE, "fresh"]),
        ("sz=2&pg=9", []),
    ],
)
async def test_sla_filters(serve, query, names):
    async with await serve() as client:
        response = await client.get(f"/api/v1/sla?{query}")
    assert response.status_code == 200
    assert [item["name"] for item in response.json()] == names


@pytest.mark.parametrize(
    "query",
    [
        "gte=abc",
        "lte=101",
        "pg=0",
        "sz=5000",
        "sz=x",
        "status=sideways",
        "gte=nan",
        "name=" + "x" * 500,
    ],
)
@pytest.mark.slow
async def test_bad_parameters_are_400_json(serve, query):
    async with await serve() as client:
        response = await client.get(f"/api/v1/sla?{query}")
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.slow
async def test_probe_detail_and_unknown_probe(serve):
    async with await serve() as client:
        detail = await client.get("/api/v1/probes/api")
        missing = await client.get("/api/v1/probes/nope")
        nowhere = await client.get("/no/such/route")
    body = detail.json()
    assert body["labels"] == {"group": "web"}
    assert body["windows"]["30d"]["incidents"] == 1
    assert body["incidents"][0]["duration_s"] == pytest.approx(7200, abs=301)
    assert len(body["results"]) == 50 and body["results"][0]["status"] == "up"
    assert missing.status_code == 404 and missing.json() == {"error": "no such probe"}
    assert nowhere.status_code == 404 and "error" in nowhere.json()


async def test_hostile_name_round_trips_as_data(serve):
    async with await serve() as client:
        quoted = quote(HOSTILE, safe="")
        response = await client.get(f"/api/v1/probes/{quoted}")
        badge = await client.get(f"/badge/{quoted}/status.svg")
    assert response.status_code == 200 and response.json()["name"] == HOSTILE
    assert badge.status_code == 200 and "<script>" not in badge.text


@pytest.mark.slow
async def test_badges(serve):
    async with await serve() as client:
        status = await client.get("/badge/api/status.svg")
        uptime = await client.get("/badge/api/uptime/30d.svg")
        latency = await client.get("/badge/api/response-time/24h.svg")
        bad_window = await client.get("/badge/api/uptime/1y.svg")
        unknown = await client.get("/badge/nope/status.svg")
    assert status.headers["Content-Type"].startswith("image/svg+xml")
    assert ">up<" in status.text
    assert "99.7" in uptime.text
    assert "50 ms" in latency.text
    assert bad_window.status_code == 404 and unknown.status_code == 404


async def test_token_protects_everything_but_healthz_and_badges(serve):
    async with await serve(token="s3cret") as client:
        assert (await client.get("/api/v1/sla")).status_code == 401
        assert (
            await client.get("/api/v1/sla", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        ok = await client.get("/api/v1/sla", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/badge/api/status.svg")).status_code == 200


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def test_basic_auth_for_browsers(serve):
    async with await serve(basic=("ops", "pa:ss wörd")) as client:
        asked = await client.get("/")
        assert asked.status_code == 401
        assert asked.headers["WWW-Authenticate"].startswith('Basic realm="probe"')
        assert (await client.get("/", headers=basic("ops", "pa:ss wörd"))).status_code == 200
        for wrong in (basic("ops", "nope"), basic("root", "pa:ss wörd"), basic("ops", "")):
            assert (await client.get("/api/v1/sla", headers=wrong)).status_code == 401
        for garbage in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic"):
            answer = await client.get("/metrics", headers={"Authorization": garbage})
            assert answer.status_code == 401
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/badge/api/status.svg")).status_code == 200
        bearer = await client.get("/", headers={"Authorization": "Bearer ops"})
        assert bearer.status_code == 401  # no token configured: no bearer opens it


async def test_token_and_basic_together(serve):
    async with await serve(token="t0k", basic=("ops", "pw")) as client:
        assert (await client.get("/", headers={"Authorization": "bearer t0k"})).status_code == 200
        assert (await client.get("/", headers=basic("ops", "pw"))).status_code == 200
        assert (await client.get("/", headers=basic("ops", "t0k"))).status_code == 401
        assert (await client.get("/")).headers["WWW-Authenticate"].startswith("Basic")


async def test_healthz_says_degraded_without_config_details(serve):
    healthy = {"value": True}
    async with await serve(healthy=lambda: healthy["value"]) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        healthy["value"] = False
        assert (await client.get("/healthz")).json() == {"status": "degraded"}


async def test_metrics_parse(serve):
    registry = CollectorRegistry()
    Counter("probe_example_total", "an example", registry=registry).inc(3)
    async with await serve(registry=registry) as client:
        response = await client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["probe_example"].samples[0].value == 3


async def test_port_taken_raises_oserror(serve, store):
    async with await serve() as client:
        port = client.base_url.port
    source = StatusSource(store, PROBES, clock=lambda: NOW)
    with pytest.raises(OSError):
        await start_server(create_app(source), "127.0.0.1", port)


@pytest.mark.slow
async def test_summaries_kept_fresh_for_readers_only(store, caplog):
    # A clock that stands still: the cache never expires for readers, so every computation
    # after the first is the background task's (it polls every 0.5 s here).
    source = StatusSource(store, PROBES, clock=lambda: NOW, max_age=0.5)
    task = asyncio.create_task(source.keep_fresh())
    try:
        await asyncio.sleep(1.5)
        assert source.generation == 1  # one computation at start; nobody asked since
        await source.summaries()
        assert source.generation == 1  # the reader was answered from the cache...
        await asyncio.sleep(1.0)
        assert source.generation == 2  # ...and the task recomputed because it was read
        await asyncio.sleep(1.0)
        assert source.generation == 2  # no reader since: no work
        await store.close()  # a failing store: logged, and the task goes on
        await source.summaries()
        await asyncio.sleep(1.2)
        assert not task.done()
        assert "status summaries not refreshed" in caplog.text
    finally:
        task.cancel()


@pytest.mark.parametrize(
    ("took", "max_age", "pause"),
    [
        (0.005, 60.0, 2.0),  # a small store: every 2 s
        (0.2, 60.0, 20.0),  # 1% of the time
        (1.2, 60.0, 48.0),  # 1,000 probes x 90 days: before readers find it max_age old
        (0.005, 0.5, 0.5),  # a tiny max_age: never busier than twice a second
    ],
)
def test_refresh_pause(took, max_age, pause):
    assert refresh_pause(took, max_age) == pytest.approx(pause)


async def test_a_result_during_a_merge_is_not_lost(store):
    from probe.core.tracker import ProbeState
    from tests.store.helpers import make_result

    source = StatusSource(store, PROBES, clock=lambda: NOW, max_age=3600)
    await source.summaries()
    source.record(make_result("api", NOW + 1), ProbeState("api", Status.UP, since=NOW + 1))
    reader = asyncio.create_task(source.summaries())
    await asyncio.sleep(0)  # the reader has copied the live results and is merging them
    down = make_result("api", NOW + 2, Status.DOWN)
    source.record(down, ProbeState("api", Status.DOWN, since=NOW + 2))
    await reader  # its answer may predate the down result; the next one may not
    items = {i.info.name: i for i in await source.summaries()}
    assert items["api"].status is Status.DOWN and items["api"].last == down
