"""Prometheus metrics: fed real Results and a store with known history, read back through
prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from probe.core.result import Result, Status
from probe.core.tracker import Policy, StatusTracker
from probe.metrics import (
    REGISTRY,
    ProbeMetrics,
    SeriesLabels,
    exposition,
    label_names,
    probe_metrics,
)
from probe.notify.metrics import REGISTRY as NOTIFY_REGISTRY
from probe.notify.metrics import notify_metrics
from probe.store import SLAFigures, Store
from probe.store.sla_cache import SLACache, SLASnapshot
from tests.store.helpers import NOW, Clock, Feeder, every
from tests.support.config import free_http_port

DAY = 86400.0
BASE = {"name", "kind", "endpoint"}
PROBE_FAMILIES = {
    "probe_success",
    "probe_duration_seconds",
    "probe_http_status_code",
    "probe_ssl_earliest_cert_expiry",
    "probe_checks",
    "probe_sla_ratio",
    "probe_degraded",
}

PROBES = [
    SeriesLabels("web", "http", "https://example.test/", {"team": "core", "env-name": "prod"}),
    SeriesLabels("cert", "tls", "example.test:443", {"1zone": "eu", "name": "dup"}),
    SeriesLabels("db", "tcp", "127.0.0.1:5432", {}),
    SeriesLabels("api", "http", "http://127.0.0.1:9/", {"team": "edge"}),
]
# What the http prober's details say of a 200 (not what the metrics read: `http_status`).
WEB_200 = {"status_code": 200}
EXPIRY_2027 = datetime(2027, 1, 1, tzinfo=UTC).timestamp()


def result(
    name: str,
    kind: str,
    status: Status = Status.UP,
    *,
    latency: float | None = 0.125,
    details: dict[str, Any] | None = None,
    t: float = NOW,
    http_status: int | None = None,
    cert_expiry: float | None = None,
) -> Result:
    return Result(
        name=name,
        kind=kind,
        endpoint="x",
        status=status,
        latency=latency,
        message=status.value,
        time=datetime.fromtimestamp(t, UTC),
        details=details or {},
        http_status=http_status,
        cert_expiry=cert_expiry,
    )


def attached(metrics: ProbeMetrics) -> StatusTracker:
    """A tracker the metrics read from, as the App attaches its own."""
    tracker = StatusTracker()
    metrics.attach(tracker)
    return tracker


def feed(tracker: StatusTracker, *results: Result) -> None:
    for r in results:
        tracker.observe(r, Policy(interval=60))


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(samples: list[tuple[dict[str, str], float]], **labels: str) -> float:
    found = [v for lv, v in samples if all(lv.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_label_names_sanitised() -> None:
    got = label_names(
        ["team", "env-name", "1zone", "name", "status", "window", "a.b", "a-b", "__x", "é", ""]
    )
    assert got["team"] == "team"
    assert got["env-name"] == "env_name"
    assert got["1zone"] == "_1zone"
    assert got["name"] == "label_name"
    assert got["status"] == "label_status"
    assert got["window"] == "label_window"
    assert got["__x"] == "label___x"
    assert got["é"] == "_"
    assert got[""] == "label_"
    # Two keys with the same sanitised name stay apart, in sorted key order.
    assert (got["a-b"], got["a.b"]) == ("a_b", "a_b_2")
    # A user key that is literally one of our prefixed names does not collide either.
    clash = label_names(["name", "label_name"])
    assert len(set(clash.values())) == 2


def fed_registry() -> tuple[CollectorRegistry, ProbeMetrics]:
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, PROBES)
    tracker = attached(metrics)
    feed(tracker, result("web", "http", details=WEB_200, latency=0.25, http_status=200))
    feed(tracker, result("web", "http", details=WEB_200, latency=0.125, http_status=200))
    feed(
        tracker,
        result(
            "cert",
            "tls",
            details={"not_after": "2027-01-01T00:00:00Z", "days_left": 300},
            latency=0.05,
            cert_expiry=EXPIRY_2027,
        ),
    )
    feed(tracker, result("db", "tcp", Status.DOWN, latency=None))
    down = {"error": "refused"}
    feed(tracker, result("api", "http", Status.DOWN, latency=None, details=down, http_status=0))
    feed(tracker, result("gone", "http", http_status=200))  # not configured: ignored
    return registry, metrics


def test_values_and_identical_label_sets() -> None:
    registry, metrics = fed_registry()
    samples = scrape(registry)
    common = {"name", "kind", "endpoint", "team", "env_name", "_1zone", "label_name"}
    assert set(metrics.label_names) == common
    for sample_name, rows in samples.items():
        for labels, _ in rows:
            extra = {"probe_checks_total": {"status"}, "probe_sla_ratio": {"window"}}
            assert set(labels) == common | extra.get(sample_name, set()), sample_name

    success = samples["probe_success"]
    assert value(success, name="web") == 1.0
    assert value(success, name="cert") == 1.0
    assert value(success, name="db") == 0.0
    assert value(success, name="api") == 0.0
    assert not any(lv["name"] == "gone" for lv, _ in success)

    web = next(lv for lv, _ in success if lv["name"] == "web")
    assert web == {
        "name": "web",
        "kind": "http",
        "endpoint": "https://example.test/",
        "team": "core",
        "env_name": "prod",
        "_1zone": "",
        "label_name": "",
    }
    cert = next(lv for lv, _ in success if lv["name"] == "cert")
    assert (cert["label_name"], cert["_1zone"], cert["team"]) == ("dup", "eu", "")

    duration = samples["probe_duration_seconds"]
    assert value(duration, name="web") == 0.125  # the last result
    assert value(duration, name="cert") == 0.05
    assert {lv["name"] for lv, _ in duration} == {"web", "cert"}  # none when nothing answered

    codes = samples["probe_http_status_code"]
    assert value(codes, name="web") == 200
    assert value(codes, name="api") == 0  # no answer
    assert {lv["name"] for lv, _ in codes} == {"web", "api"}  # http probes only

    expiry = samples["probe_ssl_earliest_cert_expiry"]
    assert value(expiry, name="cert") == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert {lv["name"] for lv, _ in expiry} == {"cert"}

    checks = samples["probe_checks_total"]
    assert value(checks, name="web", status="up") == 2
    assert value(checks, name="web", status="down") == 0
    assert value(checks, name="db", status="down") == 1
    assert value(checks, name="api", status="up") == 0
    assert "probe_sla_ratio" not in samples  # no store data yet


def test_https_probe_with_certificate_details_has_expiry() -> None:
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, [SeriesLabels("web", "http", "https://x/", {})])
    tracker = attached(metrics)
    feed(
        tracker,
        result(
            "web",
            "http",
            details={"status_code": 204, "not_after": "2030-01-01T00:00:00Z"},
            http_status=204,
            cert_expiry=datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
        ),
    )
    samples = scrape(registry)
    assert value(samples["probe_ssl_earliest_cert_expiry"], name="web") == (
        datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    )
    assert value(samples["probe_http_status_code"], name="web") == 204


def test_gauges_come_from_the_typed_readings_never_from_details() -> None:
    registry = CollectorRegistry()
    probes = [
        SeriesLabels("web", "http", "https://x/", {}),
        SeriesLabels("cert", "tls", "x:443", {}),
        SeriesLabels("old", "http", "https://y/", {}),
        SeriesLabels("etcd", "etcd", "z:2379", {}),
    ]
    metrics = probe_metrics(registry, probes)
    tracker = attached(metrics)
    expiry = datetime(2031, 5, 4, tzinfo=UTC).timestamp()
    # Readings without the details that used to carry them.
    feed(tracker, result("web", "http", Status.DOWN, http_status=503))
    feed(tracker, result("cert", "tls", cert_expiry=expiry))
    # Details alone, as before typed readings: not parsed, so no series.
    old = {"status_code": 200, "not_after": "2030-01-01T00:00:00Z"}
    feed(tracker, result("old", "http", details=old))
    # Whatever the kind, a reading gives the series.
    feed(tracker, result("etcd", "etcd", http_status=200, cert_expiry=expiry))
    samples = scrape(registry)
    codes, expiries = samples["probe_http_status_code"], samples["probe_ssl_earliest_cert_expiry"]
    assert value(codes, name="web") == 503
    assert value(codes, name="etcd") == 200
    assert {lv["name"] for lv, _ in codes} == {"web", "etcd"}
    assert value(expiries, name="cert") == expiry
    assert value(expiries, name="etcd") == expiry
    assert {lv["name"] for lv, _ in expiries} == {"cert", "etcd"}


def test_degraded_is_its_own_gauge_beside_success() -> None:
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, PROBES)
    tracker = attached(metrics)
    slow = replace(result("web", "http", http_status=200), degraded="[RESPONSE_TIME] < 1")
    feed(tracker, slow, result("cert", "tls"), result("db", "tcp", Status.DOWN, latency=None))
    samples = scrape(registry)
    assert value(samples["probe_success"], name="web") == 1.0  # degraded is still up
    degraded = samples["probe_degraded"]
    assert value(degraded, name="web") == 1.0
    assert value(degraded, name="cert") == 0.0
    assert value(degraded, name="db") == 0.0
    assert {lv["name"] for lv, _ in degraded} == {"web", "cert", "db"}  # checked ones only
    assert metrics.render().encode() in exposition(registry)


def test_reconfigure_drops_removed_probes_and_relabels() -> None:
    registry, metrics = fed_registry()
    same = probe_metrics(registry, [PROBES[2], SeriesLabels("new", "tcp", "h:1", {"zone": "a"})])
    assert same is metrics
    samples = scrape(registry)
    assert {lv["name"] for lv, _ in samples["probe_success"]} == {"db"}
    assert set(samples["probe_success"][0][0]) == {"name", "kind", "endpoint", "zone"}
    # A configured probe without results yet still has its (zero) check counters.
    assert value(samples["probe_checks_total"], name="new", status="up") == 0


def test_one_registry_holds_notification_counters_too() -> None:
    assert NOTIFY_REGISTRY is REGISTRY
    registry = CollectorRegistry()
    notify_metrics(registry).count("slack", "sent")
    metrics = probe_metrics(registry, PROBES)
    tracker = attached(metrics)
    feed(tracker, result("web", "http", details=WEB_200, http_status=200))
    samples = scrape(registry)
    assert value(samples["probe_notifications_total"], notifier="slack", result="sent") == 1
    assert samples["probe_outbox_pending"] == [({}, 0.0)]
    assert value(samples["probe_success"], name="web") == 1


def test_second_collector_with_same_names_is_refused() -> None:
    registry = CollectorRegistry()
    probe_metrics(registry, PROBES)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(ProbeMetrics(PROBES))


# --------------------------------------------------------------------------- SLA from the store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.open(tmp_path / "probe.db", clock=Clock(), retention=100 * DAY)
    await s.start()
    yield s
    await s.close()


async def fill(store: Store) -> None:
    """`web`: checked every 10 min for the last 8 days, down for 12 h from 2 days ago.
    `db`: checked for the last 2 hours, always down. `api`: no data."""
    feeder = Feeder(Policy(interval=600))
    down_from, down_to = NOW - 2 * DAY, NOW - 1.5 * DAY

    def status_at(t: float) -> Status:
        return Status.DOWN if down_from <= t < down_to else Status.UP

    for obs in feeder.series("web", every(NOW - 8 * DAY, NOW, 600), status_at):
        store.submit(obs)
    for obs in feeder.series("db", every(NOW - 7200, NOW, 600), lambda t: Status.DOWN):
        store.submit(obs)
    await store.flush()


async def test_sla_ratios_from_store(store: Store) -> None:
    await fill(store)
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, PROBES)
    cache = SLACache(store, [p.name for p in PROBES], clock=lambda: NOW)
    metrics.attach(StatusTracker(), cache)
    assert "probe_sla_ratio" not in scrape(registry)  # nothing computed yet: a scrape never waits
    await cache.figures()
    samples = scrape(registry)["probe_sla_ratio"]
    assert value(samples, name="web", window="24h") == pytest.approx(1.0)
    assert value(samples, name="web", window="7d") == pytest.approx(1 - 0.5 / 7)
    assert value(samples, name="web", window="30d") == pytest.approx(1 - 0.5 / 8)
    assert value(samples, name="web", window="90d") == pytest.approx(1 - 0.5 / 8)
    for window in ("24h", "7d", "30d", "90d"):
        assert value(samples, name="db", window=window) == 0.0
    names = {lv["name"] for lv, _ in samples}
    assert names == {"web", "db"}  # absent without data
    for labels, ratio in samples:
        assert 0.0 <= ratio <= 1.0
        assert set(labels) == {*metrics.label_names, "window"}


async def test_after_a_restart_the_last_stored_result_is_shown(store: Store) -> None:
    """The App seeds its tracker from the store: until the next check, a scrape shows each
    probe's last stored result with its typed readings (and zero checks since start)."""
    from probe.web.data import read_now
    from tests.store.helpers import make_result

    feeder = Feeder(Policy(interval=60))
    store.submit(feeder.observe(make_result("web", NOW - 60, http_status=200)))
    store.submit(
        feeder.observe(make_result("api", NOW, Status.DOWN, latency=None, http_status=503))
    )
    await store.flush()
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, PROBES)
    metrics.attach(await asyncio.to_thread(read_now, store, [p.name for p in PROBES]))
    samples = scrape(registry)
    assert value(samples["probe_success"], name="web") == 1
    assert value(samples["probe_success"], name="api") == 0
    assert value(samples["probe_http_status_code"], name="api") == 503
    assert {lv["name"] for lv, _ in samples["probe_success"]} == {"web", "api"}
    assert value(samples["probe_checks_total"], name="api", status="down") == 0


def test_duration_nan_is_not_exposed() -> None:
    registry = CollectorRegistry()
    metrics = probe_metrics(registry, [SeriesLabels("a", "tcp", "h:1", {})])
    tracker = attached(metrics)
    feed(tracker, result("a", "tcp", latency=math.nan))
    assert "probe_duration_seconds" not in scrape(registry)


# --------------------------------------------------------------------------- fed by the App


@pytest.mark.slow
async def test_app_feeds_metrics_and_refreshes_sla(tmp_path: Path) -> None:
    from probe.app import App
    from probe.assembly import load_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "p.yaml"
    config.write_text(
        f"tcp:\n  - {{name: closed, host: '127.0.0.1:{port}', interval: 100ms, timeout: 90ms,"
        " labels: {team: core, 'tier.name': gold}}\n"
        f"  - {{name: other, host: '127.0.0.1:{port}', interval: 100ms, timeout: 90ms}}\n"
        "settings:\n  http: {refresh: 200ms}\n"
    )
    registry = CollectorRegistry()
    app = App(free_http_port(load_config(config)), registry=registry)

    async def stop_when_ready() -> None:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if "probe_sla_ratio" in scrape(registry):
                break
        app.request_stop()

    stopper = asyncio.create_task(stop_when_ready())
    assert await app.run() == 0
    await stopper
    samples = scrape(registry)
    assert value(samples["probe_success"], name="closed") == 0
    assert value(samples["probe_checks_total"], name="closed", status="down") >= 2
    ratio = value(samples["probe_sla_ratio"], name="closed", window="24h")
    assert ratio == 0.0
    labels = next(lv for lv, _ in samples["probe_success"] if lv["name"] == "other")
    assert labels == {
        "name": "other",
        "kind": "tcp",
        "endpoint": f"127.0.0.1:{port}",
        "team": "",
        "tier_name": "",
    }
    assert "probe_outbox_pending" in samples  # the notification metrics share the registry


def test_fast_exposition_is_byte_identical_to_generate_latest() -> None:
    hostile = SeriesLabels('we"ird\\name\n', "http", 'http://x/?q="1"', {"zz": "é\\", "a": "1"})
    registry = CollectorRegistry()
    notify_metrics(registry).count("slack", "sent")
    metrics = probe_metrics(registry, [*PROBES, hostile])
    tracker = attached(metrics)
    for r in (
        result("web", "http", details=WEB_200, latency=1e-7, http_status=200),
        replace(result("api", "http", http_status=200), degraded="[STATUS] == 204"),
        result(
            "cert", "tls", details={"not_after": "2027-01-01T00:00:00Z"}, cert_expiry=EXPIRY_2027
        ),
        result("db", "tcp", Status.DOWN, latency=None),
        result('we"ird\\name\n', "http", Status.UNKNOWN, latency=12345678.5, http_status=0),
    ):
        feed(tracker, r)
    figures = {
        "web": {"24h": SLAFigures(up_s=60.0), "7d": SLAFigures(up_s=1.0, down_s=3.0)},
        'we"ird\\name\n': {"90d": SLAFigures(up_s=1.0, down_s=2.0)},
    }

    class Fixed:
        def latest(self) -> SLASnapshot:
            return SLASnapshot(NOW, 1, figures)

    metrics.attach(tracker, Fixed())

    only = CollectorRegistry()
    only.register(metrics)
    assert metrics.render().encode() == generate_latest(only)

    fast = exposition(registry)
    assert fast.startswith(b"# HELP probe_notifications_total")
    assert sorted(fast.splitlines()) == sorted(generate_latest(registry).splitlines())
    parsed = {f.name for f in text_string_to_metric_families(fast.decode())}
    assert parsed >= PROBE_FAMILIES
    # Still the same after a scrape through exposition() (the silencing is scoped).
    assert sorted(generate_latest(registry).splitlines()) == sorted(fast.splitlines())


def test_exposition_of_a_registry_without_probe_metrics() -> None:
    registry = CollectorRegistry()
    notify_metrics(registry)
    assert exposition(registry) == generate_latest(registry)
