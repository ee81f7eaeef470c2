"""The web server over real HTTP, reading a real store filled with known history."""

from __future__ import annotations

import base64
from urllib.parse import quote

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store
from probe.web.data import ConfiguredProbe, StatusSource
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


async def test_status_is_the_trackers_now_at_every_request(store):
    """The running App's tracker is the one source of each probe's status and last result:
    a result it observes shows at the next request, with no SLA computation in between."""
    from probe.core.tracker import StatusTracker
    from tests.store.helpers import make_result

    tracker = StatusTracker()
    source = StatusSource(store, PROBES, live=tracker, clock=lambda: NOW, max_age=3600)
    items = {i.info.name: i for i in await source.summaries()}
    assert items["api"].status is Status.UNKNOWN and items["api"].last is None
    generation = source.generation
    policy = Policy(interval=60)
    tracker.observe(make_result("api", NOW + 1), policy)
    items = {i.info.name: i for i in await source.summaries()}
    assert items["api"].status is Status.UP and items["api"].since == NOW + 1
    down = make_result("api", NOW + 2, Status.DOWN)
    tracker.observe(down, policy)
    again = await source.summaries()
    items = {i.info.name: i for i in again}
    assert items["api"].status is Status.DOWN and items["api"].last == down
    assert await source.summaries() is again  # nothing new: the same view, not rebuilt
    assert source.generation == generation
