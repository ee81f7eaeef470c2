"""What the App's alert decisions say: the notification of a tracker's alert decision (down,
recovery, repeat, flapping, stable), of a certificate expiry warning and of a degradation, and
the tracker's Policy for a probe spec. Pure functions of an Observation and the probe's spec:
the App routes what they make (dependencies, maintenance, the dispatcher)."""

from __future__ import annotations

from datetime import UTC, datetime

from probe.config.models import ProbeSpec
from probe.core.tracker import Observation, Policy
from probe.durations import format_duration
from probe.notify.base import Event, Notification

__all__ = ["degraded_notification", "expiry_notification", "notification_for", "policy_for"]


def notification_for(observation: Observation, spec: ProbeSpec) -> Notification | None:
    """The Notification of an observation's alert decision (None without one)."""
    alert = observation.alert
    if alert is None:
        return None
    result = observation.result
    message = result.message
    window = format_duration(spec.flap.window)
    if alert.event == "flapping":
        changes = len(observation.state.flap_times)
        message = (
            f"{changes} status changes within {window}; down and recovery alerts are silenced"
            f" until it holds one status for {window}. Last check: {message}"
        )
    elif alert.event == "stable":
        status = observation.state.status.value
        message = f"{status} for {window}, after flapping. Last check: {message}"
    return Notification(
        event=Event(alert.event),
        time=alert.time,
        probe=alert.name,
        kind=result.kind,
        endpoint=result.endpoint,
        status=observation.state.status.value,
        message=message,
        outage_start=alert.outage_start,
        duration=alert.duration,
        position=alert.position,
        labels=dict(spec.labels),
    )


def expiry_notification(observation: Observation, spec: ProbeSpec) -> Notification:
    """The notification of a certificate expiry warning (Observation.warning)."""
    warning = observation.warning
    assert warning is not None
    result = observation.result
    left = max(warning.expires - warning.time, 0.0)
    when = datetime.fromtimestamp(warning.expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Notification(
        event=Event.EXPIRY,
        time=warning.time,
        probe=warning.name,
        kind=result.kind,
        endpoint=result.endpoint,
        status=observation.state.status.value,
        message=(
            f"the certificate expires in {format_duration(left)} ({when}): within the"
            f" {_whole_units(warning.threshold)} warning"
        ),
        duration=left,
        labels=dict(spec.labels),
    )


def degraded_notification(observation: Observation, spec: ProbeSpec) -> Notification:
    """The notification of an up probe becoming degraded, or fully healthy again."""
    degradation = observation.degradation
    assert degradation is not None
    result = observation.result
    return Notification(
        event=Event.DEGRADED,
        time=degradation.time,
        probe=degradation.name,
        kind=result.kind,
        endpoint=result.endpoint,
        status="degraded" if degradation.degraded else "up",
        message=(
            f"degraded: {degradation.message}"
            if degradation.degraded
            else f"every degraded condition holds again; {degradation.message}"
        ),
        labels=dict(spec.labels),
    )


def _whole_units(seconds: float) -> str:
    """A threshold as written: 7d, 12h, 90m (format_duration would say 7d0h)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return format_duration(seconds)


def policy_for(spec: ProbeSpec) -> Policy:
    return Policy(
        interval=spec.result_interval(),
        failure=spec.failure,
        success=spec.success,
        strategy=spec.alert.strategy,
        factor=spec.alert.factor,
        max_alerts=spec.alert.max,
        flap_changes=spec.flap.changes,
        flap_window=spec.flap.window,
        expiry_warnings=spec.expiry_warning_thresholds(),
    )
