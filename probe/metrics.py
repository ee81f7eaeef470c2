"""Prometheus metrics of the probes, under the names blackbox_exporter dashboards expect.

Per probe: `probe_success` (1/0 of the last result), `probe_duration_seconds` (latency of the
last result; absent when it had none), `probe_http_status_code` (the result's `http_status`:
http probes, 0 when nothing answered), `probe_ssl_earliest_cert_expiry` (the result's
`cert_expiry`, Unix time: tls probes that read a certificate), `probe_checks_total{status}`
(results since start), `probe_sla_ratio{window}` (0..1 over 24h / 7d / 30d / 90d, absent
without measured time) and `probe_maintenance` (1 inside a maintenance window, else 0; only
when the App attaches its maintenance gate) and `probe_degraded` (1 when the last result is up
but fails the probe's `degraded` conditions, else 0; `probe_success` alone cannot tell). The
typed readings come from the probers; `details` is never parsed.

Every series carries the same labels: `name`, `kind`, `endpoint`, then one label per key of
any probe's `labels` (the union over the config; empty where a probe lacks the key), with the
key sanitised for Prometheus (`label_names`).

One custom collector builds the families at scrape time, instead of a labelled child per probe
and metric: cheaper with 1,000+ probes, and a probe removed on reload simply disappears. It
keeps no values of its own: the App `attach`es its StatusTracker (the one owner of each
probe's last result and check counts) and the shared SLACache, and a scrape reads both as
they are, never waiting for and never touching the store.

`REGISTRY` is the one registry /metrics serves; the notification counters
(`probe.notify.metrics`) live in it too.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from probe.core.result import Status
from probe.core.tracker import ProbeNow
from probe.store.sla_cache import SUMMARY_WINDOWS, SLASnapshot

__all__ = [
    "REGISTRY",
    "SLA_WINDOWS",
    "LiveReader",
    "MaintenanceReader",
    "ProbeMetrics",
    "SLAReader",
    "SeriesLabels",
    "exposition",
    "label_names",
    "probe_metrics",
]


# The registry /metrics serves. Not prometheus_client's global one: that one also carries the
# process and platform collectors, which the web layer decides about.
REGISTRY = CollectorRegistry()

# The windows of `probe_sla_ratio` (the rolling windows the status page shows).
SLA_WINDOWS: tuple[str, ...] = SUMMARY_WINDOWS

BASE_LABELS: tuple[str, ...] = ("name", "kind", "endpoint")
# Label names our own series use; a probe label key equal to one of these is prefixed.
RESERVED_LABELS: frozenset[str] = frozenset({*BASE_LABELS, "status", "window"})
CHECK_STATUSES: tuple[str, ...] = (Status.UP.value, Status.DOWN.value)

_INVALID = re.compile(r"[^a-zA-Z0-9_]")

# name -> (type, help) of every family the collector yields, in the order it yields them.
FAMILIES: dict[str, tuple[str, str]] = {
    "probe_success": ("gauge", "1 if the last check succeeded, 0 if it failed."),
    "probe_duration_seconds": (
        "gauge",
        "How long the last check took, in seconds (absent when nothing answered).",
    ),
    "probe_http_status_code": (
        "gauge",
        "HTTP status code of the last check of an http probe (0 when nothing answered).",
    ),
    "probe_ssl_earliest_cert_expiry": (
        "gauge",
        "Earliest expiry of the certificates seen by the last check, in Unix time.",
    ),
    "probe_checks": ("counter", "Checks since start, by result status."),
    "probe_sla_ratio": (
        "gauge",
        "Share of measured time the probe was up over the window (0 to 1).",
    ),
    "probe_maintenance": ("gauge", "1 while the probe is in a maintenance window, else 0."),
    "probe_degraded": (
        "gauge",
        "1 if the last check was up but failed a degraded condition, else 0.",
    ),
}


class SeriesLabels(NamedTuple):
    """The labels every series of one configured probe carries: its name, kind and endpoint,
    and its own `labels` (sanitised into label names by `label_names`)."""

    name: str
    kind: str
    endpoint: str
    labels: Mapping[str, str]


class LiveReader(Protocol):
    """Where each probe's last result and check counts are read (the App's StatusTracker)."""

    def now(self, name: str) -> ProbeNow: ...


class MaintenanceReader(Protocol):
    """Which maintenance window each probe is in now (the App's MaintenanceGate)."""

    def window(self, name: str) -> tuple[str, float | None] | None: ...


class SLAReader(Protocol):
    """Where the SLA figures are read, without waiting (the App's SLACache)."""

    def latest(self) -> SLASnapshot | None: ...


def _sanitise(key: str) -> str:
    name = _INVALID.sub("_", key)
    if not name:
        return "label_"
    if name[0].isdigit():
        name = "_" + name
    if name in RESERVED_LABELS or name.startswith("__"):
        # `__` names are reserved for Prometheus' own use.
        name = "label_" + name
    return name


def label_names(keys: Iterable[str]) -> dict[str, str]:
    """Probe label key -> Prometheus label name, for the union of `keys`.

    Characters outside `[a-zA-Z0-9_]` become `_`, a leading digit gets a `_` in front, a key
    that would be one of our own label names (`name`, `kind`, `endpoint`, `status`, `window`)
    or starts with `__` gets `label_` in front. Two keys that still end up with the same name
    are told apart by a `_2`, `_3` ... suffix, given in sorted key order so that the names
    do not depend on the order of probes in the config.
    """
    out: dict[str, str] = {}
    used: set[str] = set(RESERVED_LABELS)
    for key in sorted(set(keys)):
        base = _sanitise(key)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out[key] = name
    return out


class _Latest(NamedTuple):
    """The last result of one probe as the metrics show it, plus the check counts."""

    success: float
    degraded: float
    duration: float | None
    status_code: float | None  # None: the check was not an HTTP exchange
    cert_expiry: float | None
    checks: Mapping[str, int]


def _latest(now: ProbeNow) -> _Latest | None:
    last = now.last
    if last is None:
        return None
    code, expiry = last.http_status, last.cert_expiry
    return _Latest(
        success=1.0 if last.status is Status.UP else 0.0,
        degraded=1.0 if last.status is Status.UP and last.degraded else 0.0,
        duration=last.latency,
        status_code=None if code is None else float(code),
        cert_expiry=None if expiry is None else float(expiry),
        checks=now.checks,
    )


def _ratios(snapshot: SLASnapshot | None, names: Iterable[str]) -> dict[str, dict[str, float]]:
    """probe -> window -> share of measured time up (0..1); windows without measured time
    are left out, probes without any too."""
    if snapshot is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name in names:
        ratios = {}
        for window in SLA_WINDOWS:
            percent = snapshot.of(name, window).sla
            if percent is not None:
                ratios[window] = percent / 100.0
        if ratios:
            out[name] = ratios
    return out


@dataclass(frozen=True, slots=True)
class _Layout:
    """The label names and per-probe label values, fixed for one config."""

    names: tuple[str, ...]  # BASE_LABELS + sanitised probe label names
    values: Mapping[str, tuple[str, ...]]  # probe name -> label values in `names` order
    # probe name -> the label text of its series in the exposition format, sorted by label
    # name as prometheus-client writes it; "status"/"window" -> (before, after) around it.
    text: Mapping[str, str]
    around: Mapping[str, Mapping[str, tuple[str, str]]]


# What one scrape reads: the layout, the last results, the SLA ratios, and 1/0 per probe for
# its maintenance window (None without a gate attached).
_Reading = tuple[
    _Layout, list[tuple[str, _Latest]], dict[str, dict[str, float]], dict[str, float] | None
]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(
    names: Sequence[str], values: Sequence[str]
) -> tuple[str, dict[str, tuple[str, str]]]:
    pairs = sorted(zip(names, values, strict=True))
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    around: dict[str, tuple[str, str]] = {}
    for extra in ("status", "window"):
        left = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs if k < extra)
        right = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs if k > extra)
        around[extra] = (left + "," if left else "", "," + right if right else "")
    return text, around


def _layout(probes: Sequence[SeriesLabels]) -> _Layout:
    mapping = label_names(key for probe in probes for key in probe.labels)
    keys = sorted(mapping, key=lambda k: mapping[k])
    values = {
        probe.name: (
            probe.name,
            probe.kind,
            probe.endpoint,
            *(probe.labels.get(key, "") for key in keys),
        )
        for probe in probes
    }
    names = (*BASE_LABELS, *(mapping[key] for key in keys))
    text: dict[str, str] = {}
    around: dict[str, Mapping[str, tuple[str, str]]] = {}
    for name, vals in values.items():
        text[name], around[name] = _label_text(names, vals)
    return _Layout(names, values, text, around)


class ProbeMetrics(Collector):
    """The probes' metrics, built at each scrape from what is attached.

    `collect()` may run on any thread: it reads the tracker's per-probe values, which the
    tracker replaces whole, and the cache's immutable snapshots.
    """

    def __init__(self, probes: Sequence[SeriesLabels] = ()) -> None:
        self._lock = threading.Lock()
        self._layout = _layout(probes)
        self._live: LiveReader | None = None
        self._sla: SLAReader | None = None
        self._maintenance: MaintenanceReader | None = None

    def configure(self, probes: Sequence[SeriesLabels]) -> None:
        """Take a (new) set of probes: label names are recomputed from their label keys,
        probes no longer configured disappear."""
        layout = _layout(probes)
        with self._lock:
            self._layout = layout

    def attach(
        self,
        live: LiveReader | None,
        sla: SLAReader | None = None,
        maintenance: MaintenanceReader | None = None,
    ) -> None:
        """Read each probe's last result and counts from `live`, the SLA ratios from `sla`
        and its maintenance windows from `maintenance` from now on (None: none of them; the
        App detaches at stop)."""
        with self._lock:
            self._live, self._sla, self._maintenance = live, sla, maintenance

    @property
    def label_names(self) -> tuple[str, ...]:
        return self._layout.names

    def _read(self) -> _Reading:
        with self._lock:
            layout, live, sla = self._layout, self._live, self._sla
            maintenance = self._maintenance
        latest: list[tuple[str, _Latest]] = []
        if live is not None:
            for name in layout.values:
                last = _latest(live.now(name))
                if last is not None:
                    latest.append((name, last))
        inside: dict[str, float] | None = None
        if maintenance is not None:
            inside = {name: float(maintenance.window(name) is not None) for name in layout.values}
        ratios = _ratios(None if sla is None else sla.latest(), layout.values)
        return layout, latest, ratios, inside

    # ----------------------------------------------------------------- exposition

    def describe(self) -> Iterator[Metric]:
        # Names only, so that the registry refuses a second collector with the same ones.
        yield from self._families(())

    def collect(self) -> Iterator[Metric]:
        if getattr(_silenced, "on", False):
            return  # `exposition()` writes these itself
        layout, latest, sla, inside = self._read()
        yield from self._families(layout.names, layout, latest, sla, inside)

    def render(self) -> str:
        """The probes' families in the text format, exactly as `generate_latest` writes what
        `collect()` yields, about ten times faster (label texts are made once per config)."""
        layout, latest, sla, inside = self._read()
        text, around = layout.text, layout.around
        fmt: Callable[[float], str] = floatToGoString
        out: list[str] = []

        def header(name: str) -> str:
            kind, doc = FAMILIES[name]
            shown = f"{name}_total" if kind == "counter" else name
            return f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n"

        rows = [(name, text[name], last) for name, last in latest if name in text]
        out.append(header("probe_success"))
        out.extend(f"probe_success{{{t}}} {fmt(last.success)}\n" for _, t, last in rows)
        out.append(header("probe_duration_seconds"))
        out.extend(
            f"probe_duration_seconds{{{t}}} {fmt(last.duration)}\n"
            for _, t, last in rows
            if last.duration is not None and math.isfinite(last.duration)
        )
        out.append(header("probe_http_status_code"))
        out.extend(
            f"probe_http_status_code{{{t}}} {fmt(last.status_code)}\n"
            for _, t, last in rows
            if last.status_code is not None
        )
        out.append(header("probe_ssl_earliest_cert_expiry"))
        out.extend(
            f"probe_ssl_earliest_cert_expiry{{{t}}} {fmt(last.cert_expiry)}\n"
            for _, t, last in rows
            if last.cert_expiry is not None
        )
        counts = dict(latest)
        out.append(header("probe_checks"))
        for name in layout.values:
            left, right = around[name]["status"]
            last_counts = counts[name].checks if name in counts else {}
            for status in (*CHECK_STATUSES, *sorted(set(last_counts) - set(CHECK_STATUSES))):
                value = fmt(last_counts.get(status, 0))
                out.append(f'probe_checks_total{{{left}status="{status}"{right}}} {value}\n')
        out.append(header("probe_sla_ratio"))
        for name in layout.values:
            left, right = around[name]["window"]
            for window, ratio in sla.get(name, {}).items():
                out.append(f'probe_sla_ratio{{{left}window="{window}"{right}}} {fmt(ratio)}\n')
        out.append(header("probe_maintenance"))
        for name, flag in (inside or {}).items():
            if name in text:
                out.append(f"probe_maintenance{{{text[name]}}} {fmt(flag)}\n")
        out.append(header("probe_degraded"))
        out.extend(f"probe_degraded{{{t}}} {fmt(last.degraded)}\n" for _, t, last in rows)
        return "".join(out)

    @staticmethod
    def _families(
        names: Sequence[str],
        layout: _Layout | None = None,
        latest: Sequence[tuple[str, _Latest]] = (),
        sla: Mapping[str, Mapping[str, float]] | None = None,
        inside: Mapping[str, float] | None = None,
    ) -> Iterator[Metric]:
        labels = list(names)
        gauges = {
            name: GaugeMetricFamily(name, FAMILIES[name][1], labels=labels)
            for name in FAMILIES
            if name not in ("probe_checks", "probe_sla_ratio")
        }
        success = gauges["probe_success"]
        duration = gauges["probe_duration_seconds"]
        http_code = gauges["probe_http_status_code"]
        expiry = gauges["probe_ssl_earliest_cert_expiry"]
        maintenance = gauges["probe_maintenance"]
        degraded = gauges["probe_degraded"]
        checks = CounterMetricFamily(
            "probe_checks", FAMILIES["probe_checks"][1], labels=[*labels, "status"]
        )
        ratio = GaugeMetricFamily(
            "probe_sla_ratio", FAMILIES["probe_sla_ratio"][1], labels=[*labels, "window"]
        )
        if layout is not None:
            values = layout.values
            for name, last in latest:
                vals = values.get(name)
                if vals is None:
                    continue
                lv = list(vals)
                success.add_metric(lv, last.success)
                degraded.add_metric(lv, last.degraded)
                if last.duration is not None and math.isfinite(last.duration):
                    duration.add_metric(lv, last.duration)
                if last.status_code is not None:
                    http_code.add_metric(lv, last.status_code)
                if last.cert_expiry is not None:
                    expiry.add_metric(lv, last.cert_expiry)
            counts = dict(latest)
            for name, vals in values.items():
                last_counts = counts[name].checks if name in counts else {}
                for status in (*CHECK_STATUSES, *sorted(set(last_counts) - set(CHECK_STATUSES))):
                    checks.add_metric([*vals, status], float(last_counts.get(status, 0)))
                for window, value in (sla or {}).get(name, {}).items():
                    ratio.add_metric([*vals, window], value)
            for name, flag in (inside or {}).items():
                if name in values:
                    maintenance.add_metric(list(values[name]), flag)
        yield success
        yield duration
        yield http_code
        yield expiry
        yield checks
        yield ratio
        yield maintenance
        yield degraded


_silenced = threading.local()


def exposition(registry: CollectorRegistry | None = None) -> bytes:
    """`prometheus_client.generate_latest(registry)` (default `REGISTRY`), with the probes'
    families written by `ProbeMetrics.render()`: the same samples, several times faster
    with 1,000+ probes. What GET /metrics should serve (content type
    `prometheus_client.CONTENT_TYPE_LATEST`)."""
    registry = REGISTRY if registry is None else registry
    with _registry_lock:
        entry = _by_registry.get(id(registry))
    if entry is None or entry[0] is not registry:
        return generate_latest(registry)
    _silenced.on = True
    try:
        rest = generate_latest(registry)
    finally:
        _silenced.on = False
    return rest + entry[1].render().encode()


_by_registry: dict[int, tuple[CollectorRegistry, ProbeMetrics]] = {}
_registry_lock = threading.Lock()


def probe_metrics(
    registry: CollectorRegistry | None = None, probes: Sequence[SeriesLabels] | None = None
) -> ProbeMetrics:
    """The ProbeMetrics of `registry` (default `REGISTRY`), made and registered on first use;
    with `probes`, (re)configured for them. Several Apps in one process (tests, a reload)
    share one collector per registry instead of failing on duplicate names."""
    registry = REGISTRY if registry is None else registry
    with _registry_lock:
        entry = _by_registry.get(id(registry))
        if entry is None or entry[0] is not registry:
            metrics = ProbeMetrics(probes or ())
            registry.register(metrics)
            _by_registry[id(registry)] = (registry, metrics)
        else:
            metrics = entry[1]
            if probes is not None:
                metrics.configure(probes)
    return metrics
