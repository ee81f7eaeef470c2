"""A notification as the notifier tests send it: a probe `api` gone down (or back up)."""

from __future__ import annotations

import time
from typing import Any

from probe.notify.base import Event, Notification


def notification(event: Event = Event.DOWN, **fields: Any) -> Notification:
    """The sample, with `fields` in place of its defaults."""
    values: dict[str, Any] = {
        "event": event,
        "time": time.time(),
        "probe": "api",
        "kind": "http",
        "endpoint": "https://api.example.test/health",
        "status": "down" if event is Event.DOWN else "up",
        "message": "status 503 not in 200-399",
        "position": 1,
    }
    values.update(fields)
    return Notification(**values)
