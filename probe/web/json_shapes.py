"""The JSON shapes of the API: an /api/v1/sla item, a probe's results and incidents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from probe.core.result import Result, Status, utc_iso
from probe.core.tracker import Transition
from probe.store.sla import SLAFigures
from probe.web.data import WINDOWS, ProbeSummary

__all__ = ["incidents", "iso", "pct", "result_item", "sla_item"]


def pct(figures: SLAFigures) -> float | None:
    return None if figures.sla is None else round(figures.sla, 4)


def _latest(result: Result | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"time": utc_iso(result.time), "status": result.status.value, "message": result.message}


def sla_item(item: ProbeSummary) -> dict[str, Any]:
    """EaseProbe's /api/v1/sla item, plus kind, status and the SLA per window."""
    total = item.total
    shape = {
        "name": item.info.name,
        "kind": item.info.kind,
        "endpoint": item.info.endpoint,
        "status": item.status.value,
        "flapping": item.flapping,
        "degraded": item.degraded,
        "sla": {"up": round(total.up_s, 3), "down": round(total.down_s, 3), "sla": pct(total)},
        "probe_summary": {
            "total": total.checks,
            "up": total.checks - total.checks_down,
            "down": total.checks_down,
        },
        "latest_probe": _latest(item.last),
        "windows": {window: pct(item.windows[window]) for window in WINDOWS},
    }
    if item.maintenance is not None:
        # Inside a maintenance window: checked as usual, alerts muted, time not counted.
        name, end = item.maintenance
        shape["status"] = "maintenance"
        shape["checked_status"] = item.status.value
        shape["maintenance"] = {"name": name, "end": None if end is None else iso(end)}
    return shape


def result_item(result: Result) -> dict[str, Any]:
    """One of a probe's results: what `probe once --format json` prints, plus the typed
    readings (null when the check had none), the expiry in the API's one time format."""
    expiry = result.cert_expiry
    return {
        **result.to_json(),
        "http_status": result.http_status,
        "cert_expiry": None if expiry is None else iso(expiry),
    }


def incidents(changes: list[Transition], now: float) -> list[dict[str, Any]]:
    """Outages from status changes: start, end (None while ongoing) and duration."""
    found: list[dict[str, Any]] = []
    start: float | None = None
    for change in changes:
        if change.current is Status.DOWN and start is None:
            start = change.time
        elif change.current is not Status.DOWN and start is not None:
            found.append({"start": start, "end": change.time})
            start = None
    if start is not None:
        found.append({"start": start, "end": None})
    return [
        {
            "start": iso(item["start"]),
            "end": None if item["end"] is None else iso(item["end"]),
            "duration_s": round((item["end"] or now) - item["start"], 3),
        }
        for item in reversed(found)
    ]


def iso(moment: float) -> str:
    return utc_iso(datetime.fromtimestamp(moment, UTC))
