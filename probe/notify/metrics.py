"""Prometheus metrics of the alerting: what happened to each notification, and the backlog.

`probe_notifications_total{notifier, result}` counts notifications by how they ended: `sent`
(the service accepted it), `failed` (refused for good: a 4xx other than 429, or a message that
cannot be rendered), `dropped` (still undelivered `settings.notify.max_age` after it was made),
`dry` (logged instead of sent). A transient failure that a retry later fixes is not counted
apart: it ends as `sent`. `probe_outbox_pending` is the number of notifications not yet
delivered, failed or dropped. `probe_notifications_grouped_total{notifier}` counts the
notifications delivered inside a summary (settings.notify.group); each is also counted in
probe_notifications_total as the summary ended (`sent` or `dry`).

The metrics live in a registry handed in (tests build a fresh one); by default
`probe.metrics.REGISTRY` (re-exported here), which the web layer serves on /metrics.
"""

from __future__ import annotations

import threading
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

# The one registry /metrics serves, shared with the probes' metrics (probe.metrics).
from probe.metrics import REGISTRY

__all__ = ["REGISTRY", "DeliveryOutcome", "NotifyMetrics", "notify_metrics"]

# How one notification ended: the `result` label of probe_notifications_total.
DeliveryOutcome = Literal["sent", "failed", "dropped", "dry"]


class NotifyMetrics:
    """The alerting's metrics in one registry. Build it once per registry: prometheus-client
    refuses a second metric of the same name (use `notify_metrics(registry)`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.notifications = Counter(
            "probe_notifications",
            "Notifications by notifier and how they ended (sent, failed, dropped, dry).",
            ["notifier", "result"],
            registry=registry,
        )
        self.grouped = Counter(
            "probe_notifications_grouped",
            "Notifications delivered inside one summary message (settings.notify.group).",
            ["notifier"],
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "probe_outbox_pending",
            "Notifications in the outbox not yet delivered, failed or dropped.",
            registry=registry,
        )

    def count(self, notifier: str, result: DeliveryOutcome) -> None:
        self.notifications.labels(notifier=notifier, result=result).inc()

    def count_grouped(self, notifier: str, members: int) -> None:
        self.grouped.labels(notifier=notifier).inc(members)

    def grouped_value(self, notifier: str) -> float:
        sample = self.registry.get_sample_value(
            "probe_notifications_grouped_total", {"notifier": notifier}
        )
        return sample or 0.0

    def value(self, notifier: str, result: DeliveryOutcome) -> float:
        """The current count (for tests and `probe` itself; Prometheus scrapes the registry)."""
        sample = self.registry.get_sample_value(
            "probe_notifications_total", {"notifier": notifier, "result": result}
        )
        return sample or 0.0


_by_registry: dict[int, NotifyMetrics] = {}
_lock = threading.Lock()


def notify_metrics(registry: CollectorRegistry | None = None) -> NotifyMetrics:
    """The NotifyMetrics of `registry` (default `REGISTRY`), made on first use.

    Several Apps in one process (tests, a reload) share the metrics of one registry instead of
    failing on duplicate names.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(id(registry))
        if metrics is None or metrics.registry is not registry:
            metrics = _by_registry[id(registry)] = NotifyMetrics(registry)
        return metrics
