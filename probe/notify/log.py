"""The `log` notifier: one JSON line per notification, appended to a file (or stderr).

The line is the notification's JSON document (templates/webhook/, the same one the webhook
sends), compacted to one line, so `jq` and log shippers read the file as JSON Lines. A
`template` per event replaces it; what it renders is written as it is (JSON is compacted to one
line too).

Keys: EaseProbe's `file`: a path (relative to the config file) or `stderr`. EaseProbe's syslog
keys (`host`, `network`) are accepted with a warning and not used.

The file is opened, appended to and closed for each line, in a thread (never on the event
loop), so rotating it needs no signal; lines from one process never interleave.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationInfo, field_validator

from probe.notify.base import DeliveryError, Notification, Notifier, NotifierSpec
from probe.notify.templates import TemplatedSpec
from probe.notify.webhook import render_document

__all__ = ["STDERR", "LogNotifier", "LogSpec"]

STDERR = "stderr"

# One lock for every log notifier: two of them may share a file.
_write_lock = threading.Lock()


class LogSpec(TemplatedSpec):
    """An entry under `notify: log:`."""

    kind: ClassVar[str] = "log"
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"host", "network"})

    file: str

    @field_validator("file")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value.lower() == STDERR:
            return STDERR
        if not value:
            raise ValueError('expected a file path or "stderr"')
        if value.lower() == "syslog":
            raise ValueError('syslog is not supported; use a file path or "stderr"')
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        return str(path)

    def target(self) -> str:
        return self.file


class LogNotifier(Notifier[LogSpec]):
    spec_type: ClassVar[type[NotifierSpec]] = LogSpec
    format: ClassVar[str] = "webhook"

    def render(self, notification: Notification) -> str:
        # JSON on one line; an override that is not JSON is the user's own format.
        text = render_document(
            self.context.templates, notification, self.spec.override(notification.event)
        )
        return text.rstrip("\n")

    async def send(self, payload: Any) -> None:
        line = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        try:
            await asyncio.to_thread(self._write, line + "\n")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DeliveryError(f"cannot write {self.spec.file}: {reason}") from None

    def _write(self, text: str) -> None:
        with _write_lock:
            if self.spec.file == STDERR:
                sys.stderr.write(text)
                sys.stderr.flush()
                return
            with open(self.spec.file, "a", encoding="utf-8") as fh:
                fh.write(text)
