"""Shell notifier: run a command for each event, the event in its environment and on stdin.

EaseProbe's keys: `cmd`, `args`, `env` (["NAME=value"]), `clean_env` (start from an empty
environment instead of this process's).

The command gets:
- `PROBE_ID` (the notification's id, the same on every retry), `PROBE_EVENT` (down, recovery,
  sla, test), `PROBE_NAME`, `PROBE_KIND`, `PROBE_ENDPOINT`, `PROBE_STATUS`, `PROBE_MESSAGE`,
  `PROBE_TIME` (UTC ISO 8601), `PROBE_OUTAGE_START` (UTC ISO 8601, empty if unknown),
  `PROBE_DURATION` (the outage's length in seconds, on recovery), `PROBE_POSITION` (which
  failure of the outage fired a down alert), `PROBE_LABELS` (JSON object);
- EaseProbe's names, so existing scripts keep working: `EASEPROBE_TYPE` (Status, or SLA),
  `EASEPROBE_TITLE` ("<name> Failure", "<name> Recovery"), `EASEPROBE_NAME`,
  `EASEPROBE_ENDPOINT`, `EASEPROBE_STATUS`, `EASEPROBE_TIMESTAMP` (Unix milliseconds),
  `EASEPROBE_TIME` ("2006-01-02 15:04:05 Z", EaseProbe's default format, UTC),
  `EASEPROBE_MESSAGE`, `EASEPROBE_JSON` (the JSON event) and `EASEPROBE_CSV` (EaseProbe's CSV
  columns). `EASEPROBE_RTT` is set but empty: an alert carries no round-trip time.
- the JSON event (the `webhook` template; a `template:` override applies) on stdin. EaseProbe
  wrote its CSV there; scripts that read it find it in `EASEPROBE_CSV`.

The event's variables win over `env` entries of the same name. Very long values (a message
over 8 KiB, a JSON event over 64 KiB) are cut or left empty in the environment, which the
kernel limits; stdin always has the whole event.

The command runs without a shell (unless `cmd` is one), in a session and process group of its
own, with stdout and stderr read together (the last 4 KiB kept). On the notifier's timeout the
whole group is killed. Exit status 0 is success; any other status is a temporary DeliveryError
quoting the last line of output, with the values of `env` masked (they may be secrets). A
command that cannot be started (not found, not executable) is a permanent one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from typing import Any, ClassVar

from probe.commands import (
    CommandSpec,
    OutputCollector,
    SecretMasker,
    last_line,
    output_closed,
    release,
    short,
    start_failure,
    status_text,
)
from probe.core.result import utc_iso
from probe.notify.base import (
    DeliveryError,
    Event,
    Notification,
    Notifier,
    NotifierSpec,
    NotifyContext,
)
from probe.notify.templates import TemplatedSpec, render_json

__all__ = ["ShellNotifier", "ShellNotifySpec", "event_environment"]

# Environment values are limited by the kernel (128 KiB each on Linux): long ones are cut.
_MAX_MESSAGE_ENV = 8 * 1024
_MAX_JSON_ENV = 64 * 1024


class ShellNotifySpec(CommandSpec, TemplatedSpec):
    """A `shell:` entry under `notify:`."""

    # `cmd`, `args`, `env` and `clean_env` come from CommandSpec, as for the shell prober.

    kind: ClassVar[str] = "shell"

    def target(self) -> str:
        return f"shell: {short(self.cmd)}"


class ShellNotifier(Notifier[ShellNotifySpec]):
    spec_type: ClassVar[type[NotifierSpec]] = ShellNotifySpec
    format: ClassVar[str] = "webhook"

    def __init__(self, spec: ShellNotifySpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        self._mask = SecretMasker(spec.env)

    def render(self, notification: Notification) -> dict[str, Any]:
        """{"env": the event's variables, "stdin": the JSON event}. No `env:` entry is in
        it (they may be secrets), so it is safe to log."""
        templates = self.context.templates
        event = notification.event
        if templates is None:
            document = notification.to_json()
        else:
            document = render_json(
                templates, self.format, event, notification, override=self.spec.override(event)
            )
        stdin = json.dumps(document, ensure_ascii=False)
        return {"env": event_environment(notification, stdin), "stdin": stdin}

    def _executable(self) -> str:
        found = self.spec.executable()
        if found is None:
            raise DeliveryError(f"command not found: {short(self.spec.cmd)}", permanent=True)
        return found

    async def send(self, payload: Any) -> None:
        event_env = {str(k): _env_value(str(v)) for k, v in dict(payload["env"]).items()}
        stdin = str(payload["stdin"]).encode("utf-8")
        executable = self._executable()
        loop = asyncio.get_running_loop()
        try:
            transport, collector = await loop.subprocess_exec(
                lambda: OutputCollector(loop),
                executable,
                *self.spec.args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**self.spec.environment(), **event_env},
                start_new_session=True,
            )
        except OSError as exc:
            raise _describe_start(exc, self.spec.cmd) from None
        must_kill = True
        try:
            pipe = transport.get_pipe_transport(0)
            if isinstance(pipe, asyncio.WriteTransport):
                # Buffered by the transport: a command that does not read stdin cannot
                # block us; the pipe closes once the buffer is written.
                pipe.write(stdin)
                pipe.close()
            try:
                async with asyncio.timeout(self.timeout):
                    # asyncio.wait, not `await collector.exited`: a timeout would cancel the
                    # future itself, and the reaping below would no longer wait for it.
                    await asyncio.wait({collector.exited})
                    closed = await output_closed(collector)
            except TimeoutError:
                raise DeliveryError(
                    f"{short(self.spec.cmd)} timed out after {self.timeout:g}s (killed)"
                ) from None
            must_kill = not closed
        finally:
            await release(transport, collector, kill=must_kill)
        status = transport.get_returncode()
        if status != 0:
            message = f"{short(self.spec.cmd)}: {status_text(status)}"
            last = last_line(self._mask(bytes(collector.tail).decode("utf-8", "replace")))
            if last:
                message += f": {last}"
            raise DeliveryError(message)


def event_environment(notification: Notification, json_event: str) -> dict[str, str]:
    """The PROBE_* and EASEPROBE_* variables for `notification`."""
    n = notification
    moment = datetime.fromtimestamp(n.time, UTC)
    name = n.probe or ""
    message = _cut(n.message, _MAX_MESSAGE_ENV)
    duration = _seconds(n.duration)
    env = {
        "PROBE_ID": n.id,
        "PROBE_EVENT": n.event.value,
        "PROBE_NAME": name,
        "PROBE_KIND": n.kind or "",
        "PROBE_ENDPOINT": n.endpoint or "",
        "PROBE_STATUS": n.status,
        "PROBE_MESSAGE": message,
        "PROBE_TIME": utc_iso(moment),
        "PROBE_OUTAGE_START": (
            utc_iso(datetime.fromtimestamp(n.outage_start, UTC)) if n.outage_start else ""
        ),
        "PROBE_DURATION": duration,
        "PROBE_POSITION": str(n.position),
        "PROBE_LABELS": json.dumps(dict(n.labels), ensure_ascii=False, sort_keys=True),
    }
    title = _easeprobe_title(n)
    easeprobe_time = moment.strftime("%Y-%m-%d %H:%M:%S Z")
    timestamp = str(int(n.time * 1000))
    env.update(
        {
            "EASEPROBE_TYPE": "SLA" if n.event is Event.SLA else "Status",
            "EASEPROBE_TITLE": title,
            "EASEPROBE_NAME": name,
            "EASEPROBE_ENDPOINT": n.endpoint or "",
            "EASEPROBE_STATUS": n.status,
            "EASEPROBE_TIMESTAMP": timestamp,
            "EASEPROBE_TIME": easeprobe_time,
            "EASEPROBE_RTT": "",
            "EASEPROBE_MESSAGE": message,
            "EASEPROBE_JSON": json_event if len(json_event) <= _MAX_JSON_ENV else "",
            "EASEPROBE_CSV": _easeprobe_csv(n, title, easeprobe_time, timestamp, message),
        }
    )
    return {key: _env_value(value) for key, value in env.items()}


def _easeprobe_title(n: Notification) -> str:
    name = n.probe or ""
    if n.event is Event.DOWN:
        return f"{name} Failure"
    if n.event is Event.RECOVERY:
        return f"{name} Recovery"
    if n.event is Event.SLA:
        return "Overall SLA Report"
    return f"{name} Test"


def _easeprobe_csv(n: Notification, title: str, when: str, timestamp: str, message: str) -> str:
    # EaseProbe's columns; PreStatus is what the probe was before (known on recovery only),
    # RoundTripTime is not part of an alert.
    previous = "down" if n.event is Event.RECOVERY else ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "Title",
            "Name",
            "Endpoint",
            "Status",
            "PreStatus",
            "RoundTripTime",
            "Time",
            "Timestamp",
            "Message",
        ]
    )
    writer.writerow(
        [title, n.probe or "", n.endpoint or "", n.status, previous, "", when, timestamp, message]
    )
    return out.getvalue()


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env_value(value: str) -> str:
    # exec refuses a NUL in the environment; text from probed servers may hold one.
    return value.replace("\0", "")


def _describe_start(exc: OSError, cmd: str) -> DeliveryError:
    """A command that could not be started: permanent unless the system is short of
    processes or files for a moment."""
    message, transient = start_failure(exc, cmd)
    return DeliveryError(message, permanent=not transient)
