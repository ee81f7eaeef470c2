"""Persistence: raw results, hourly rollups, transitions and tracker state, and SLA maths.

Imports nothing from probers, notifiers or the web layer (docs/ARCHITECTURE.md, "the store").
"""

from __future__ import annotations

from probe.store.base import ResultStore
from probe.store.schema import SCHEMA_VERSION
from probe.store.sla import (
    BUCKETS_MS,
    WINDOWS,
    HourRollup,
    SLAFigures,
    figures_from_rollups,
    parse_window,
    percentile_from_histogram,
    window_bounds,
)
from probe.store.sqlite import Store
from probe.store.writer import DEFAULT_RETENTION, ROLLUP_RETENTION

__all__ = [
    "BUCKETS_MS",
    "DEFAULT_RETENTION",
    "ROLLUP_RETENTION",
    "SCHEMA_VERSION",
    "WINDOWS",
    "HourRollup",
    "ResultStore",
    "SLAFigures",
    "Store",
    "figures_from_rollups",
    "parse_window",
    "percentile_from_histogram",
    "window_bounds",
]
