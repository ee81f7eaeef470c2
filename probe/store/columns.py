"""How values are written into the store's columns, and the histogram text read back.

Text goes in as valid UTF-8, result details and latency histograms as compact JSON. Shared by
the writer (rows), the outbox (texts), the migrations (daily rows summed from hourly ones) and
the SLA reads (histograms summed per probe).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from probe.core.tracker import ProbeState
from probe.store.sla import BUCKETS_MS

__all__ = [
    "alert_state_text",
    "details_json",
    "histogram_text",
    "read_alert_state",
    "sum_histograms",
    "valid_text",
]

# default=str: a prober may put a datetime or an exception in details; storing its text beats
# losing the whole result. One encoder for all: json.dumps with options builds one per call.
_DETAILS_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
# The writer encodes two histograms per probe and batch (its hourly and daily row).
_HISTOGRAM_ENCODER = json.JSONEncoder(separators=(",", ":"))


def details_json(details: Mapping[str, Any]) -> str:
    """A result's details as the JSON text of its `details` column."""
    return _DETAILS_ENCODER.encode(dict(details)) if details else "{}"


def valid_text(s: str) -> str:
    """`s` as valid UTF-8. Output decoded with surrogateescape (a shell probe's stderr) holds
    lone surrogates, which SQLite cannot store; each undecodable byte becomes U+FFFD."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return s.encode("utf-8", "replace").decode("utf-8")
    return s


def histogram_text(counts: list[int]) -> str:
    """A latency histogram (one count per bucket of BUCKETS_MS) as its column's JSON text."""
    return _HISTOGRAM_ENCODER.encode(counts)


def sum_histograms(joined: str) -> list[int]:
    """The bucket-wise sum of histograms joined by commas; buckets past BUCKETS_MS ignored."""
    size = len(BUCKETS_MS)
    try:
        lists = json.loads(f"[{joined}]")
    except ValueError:
        lists = []
    counts = [0] * size
    even = [h for h in lists if isinstance(h, list) and len(h) == size]
    if even:
        counts = [sum(column) for column in zip(*even, strict=True)]
    for h in lists:
        if isinstance(h, list) and len(h) != size:
            for i, c in enumerate(h[:size]):
                counts[i] += int(c)
    return counts


def alert_state_text(state: ProbeState) -> str | None:
    """A state's alerting part beyond up/down (flapping, certificate expiry warnings) as the
    `alert_state` column holds it; None when there is nothing."""
    if (
        not state.flapping
        and not state.flap_times
        and state.expiry_warned is None
        and state.degraded is None
    ):
        return None
    value: dict[str, Any] = {"flapping": state.flapping, "times": state.flap_times}
    if state.expiry_warned is not None:
        value["expiry_warned"] = state.expiry_warned
    if state.degraded is not None:
        value["degraded"] = state.degraded
    return _HISTOGRAM_ENCODER.encode(value)


def read_alert_state(text: Any) -> tuple[bool, tuple[float, ...], float | None, str | None]:
    """The `alert_state` column back: (flapping, flap times, expiry warned, degraded);
    anything unreadable is "nothing" (not flapping, no warning sent, not degraded)."""
    if not isinstance(text, str):
        return False, (), None, None
    try:
        value = json.loads(text)
        times = tuple(float(t) for t in value["times"])
        warned = value.get("expiry_warned")
        warned = float(warned) if warned is not None else None
        if warned is not None and not (math.isfinite(warned) and warned > 0):
            warned = None
        degraded = value.get("degraded")
        degraded = degraded if isinstance(degraded, str) else None
        finite = tuple(t for t in times if math.isfinite(t))
        return bool(value["flapping"]), finite, warned, degraded
    except (ValueError, TypeError, KeyError, AttributeError):
        return False, (), None, None
