"""Shell notifier: run a command for each event, the event in its environment and on stdin.

EaseProbe's keys: `cmd`, `args`, `env` (["NAME=value"]), `clean_env` (start from an empty
environment instead of this process's). Ours: `format`, what stdin carries: `csv` (default,
as EaseProbe) or `json` (the JSON event, the `webhook` template; a `template:` override
applies).

Stdin, by default, is EaseProbe's CSV (what `EASEPROBE_CSV` holds), so that scripts written
for EaseProbe keep reading it: a header line and one record, LF-terminated, quoted as Go's
encoding/csv quotes (a field holding `,` `"` CR or LF, or starting with white space):
    Title,Name,Endpoint,Status,PreStatus,RoundTripTime,Time,Timestamp,Message
- Title: "<name> Failure" (down), "<name> Recovery - ( 5m30s Downtime )" (recovery; the
  outage's length as Go prints a duration, to the second), "<name> Test" (test);
- Status / PreStatus: up, down; PreStatus is "up" on an outage's first alert (also when the
  status was unknown before), "down" on its repeats and on recovery;
- RoundTripTime: EaseProbe prints Go's nanoseconds there; an alert carries no round-trip
  time, so it is 0 (also in EASEPROBE_RTT and EASEPROBE_JSON's "rtt");
- Time: "2006-01-02 15:04:05 Z" (EaseProbe's default format, UTC); Timestamp: Unix ms.
For an SLA report: Name,Endpoint,UpTime,DownTime,SLA,ProbeSummary,LatestProbe,LatestStatus,
Message, one record per probe: up and down time as EaseProbe prints them ("1d2h0m0s"), SLA
"99.95%" (empty without data), ProbeSummary the number of checks; the last three are empty
(a report row has no latest result).

The environment:
- `PROBE_ID` (the notification's id, the same on every retry), `PROBE_EVENT` (down, recovery,
  sla, test), `PROBE_NAME`, `PROBE_KIND`, `PROBE_ENDPOINT`, `PROBE_STATUS`, `PROBE_MESSAGE`,
  `PROBE_TIME` (UTC ISO 8601), `PROBE_OUTAGE_START` (UTC ISO 8601, empty if unknown),
  `PROBE_DURATION` (the outage's length in seconds, on recovery), `PROBE_POSITION` (which
  failure of the outage fired a down alert), `PROBE_LABELS` (JSON object), `PROBE_JSON` (the
  JSON event);
- EaseProbe's: `EASEPROBE_TYPE` (Status, or SLA), `EASEPROBE_TITLE`, `EASEPROBE_NAME`,
  `EASEPROBE_ENDPOINT`, `EASEPROBE_STATUS`, `EASEPROBE_TIMESTAMP`, `EASEPROBE_TIME`,
  `EASEPROBE_RTT`, `EASEPROBE_MESSAGE` (as in the CSV), `EASEPROBE_CSV` and `EASEPROBE_JSON`
  (EaseProbe's object: name (the title), endpoint, time (RFC 3339), timestamp, rtt, status,
  prestatus, message; for an SLA report, the JSON event).

The event's variables win over `env` entries of the same name. Very long values (a message
over 8 KiB, a JSON event or CSV over 64 KiB) are cut or left empty in the environment, which
the kernel limits; stdin always has the whole event.

The command runs without a shell (unless `cmd` is one), in a session and process group of its
own, with stdout and stderr read together (the last 4 KiB kept). On the notifier's timeout the
whole group is killed. Exit status 0 is success; any other status is a temporary DeliveryError
quoting the last line of output, with the values of `env` masked (they may be secrets). A
command that cannot be started (not found, not executable) is a permanent one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

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
from probe.subprocesses import (
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

__all__ = ["ShellNotifier", "ShellNotifySpec", "easeprobe_csv", "event_environment", "go_duration"]

# Environment values are limited by the kernel (128 KiB each on Linux): long ones are cut.
_MAX_MESSAGE_ENV = 8 * 1024
_MAX_JSON_ENV = 64 * 1024

_STATUS_HEADER = (
    "Title",
    "Name",
    "Endpoint",
    "Status",
    "PreStatus",
    "RoundTripTime",
    "Time",
    "Timestamp",
    "Message",
)
_SLA_HEADER = (
    "Name",
    "Endpoint",
    "UpTime",
    "DownTime",
    "SLA",
    "ProbeSummary",
    "LatestProbe",
    "LatestStatus",
    "Message",
)


class ShellNotifySpec(CommandSpec, TemplatedSpec):
    """A `shell:` entry under `notify:`."""

    # `cmd`, `args`, `env` and `clean_env` come from CommandSpec, as for the shell prober.
    # What stdin carries: EaseProbe's CSV (its scripts read it), or our JSON event.
    format: Literal["csv", "json"] = "csv"

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
        """{"env": the event's variables, "stdin": EaseProbe's CSV or the JSON event}. No
        `env:` entry is in it (they may be secrets), so it is safe to log."""
        templates = self.context.templates
        event = notification.event
        if templates is None:
            document = notification.to_json()
        else:
            document = render_json(
                templates, self.format, event, notification, override=self.spec.override(event)
            )
        json_event = json.dumps(document, ensure_ascii=False)
        stdin = json_event if self.spec.format == "json" else easeprobe_csv(notification)
        return {"env": event_environment(notification, json_event), "stdin": stdin}

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
    json_env = json_event if len(json_event) <= _MAX_JSON_ENV else ""
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
        "PROBE_JSON": json_env,
    }
    record = _status_record(n)
    csv_text = easeprobe_csv(n)
    if n.event is Event.SLA:
        easeprobe_json = json_env
    else:
        easeprobe_json = json.dumps(
            {
                "name": record["Title"],
                "endpoint": record["Endpoint"],
                "time": _go_rfc3339(moment),
                "timestamp": int(record["Timestamp"]),
                "rtt": 0,
                "status": record["Status"],
                "prestatus": record["PreStatus"],
                "message": n.message,
            },
            ensure_ascii=False,
        )
    env.update(
        {
            "EASEPROBE_TYPE": "SLA" if n.event is Event.SLA else "Status",
            "EASEPROBE_TITLE": record["Title"],
            "EASEPROBE_NAME": name,
            "EASEPROBE_ENDPOINT": n.endpoint or "",
            "EASEPROBE_STATUS": n.status,
            "EASEPROBE_TIMESTAMP": record["Timestamp"],
            "EASEPROBE_TIME": record["Time"],
            "EASEPROBE_RTT": record["RoundTripTime"],
            "EASEPROBE_MESSAGE": message,
            "EASEPROBE_JSON": easeprobe_json if len(easeprobe_json) <= _MAX_JSON_ENV else "",
            "EASEPROBE_CSV": csv_text if len(csv_text) <= _MAX_JSON_ENV else "",
        }
    )
    return {key: _env_value(value) for key, value in env.items()}


def easeprobe_csv(notification: Notification) -> str:
    """What EaseProbe writes to a shell notifier's stdin (and EASEPROBE_CSV): a header line
    and one record per result, or per probe for an SLA report."""
    n = notification
    if n.event is Event.SLA:
        rows: list[Sequence[str]] = [_SLA_HEADER]
        rows.extend(_sla_record(row) for row in n.report.get("rows") or [])
    else:
        record = _status_record(n)
        rows = [_STATUS_HEADER, [record[column] for column in _STATUS_HEADER]]
    return "".join(_csv_line(row) for row in rows)


def _status_record(n: Notification) -> dict[str, str]:
    """EaseProbe's CSV fields for a down / recovery / test notification, by column."""
    name = n.probe or ""
    if n.event is Event.DOWN:
        title, previous = f"{name} Failure", "up" if n.position <= 1 else "down"
    elif n.event is Event.RECOVERY:
        downtime = go_duration(_half_up(n.duration or 0.0))
        title, previous = f"{name} Recovery - ( {downtime} Downtime )", "down"
    elif n.event is Event.SLA:
        title, previous = "Overall SLA Report", ""
    elif n.event is Event.FLAPPING:
        title, previous = f"{name} Flapping", ""
    elif n.event is Event.STABLE:
        title, previous = f"{name} Stable ({n.status})", ""
    elif n.event is Event.EXPIRY:
        title, previous = f"{name} Certificate Expiry", ""
    elif n.event is Event.DEGRADED:
        title, previous = f"{name} {n.status.capitalize()}", ""
    elif n.event is Event.GROUP:
        title, previous = n.message, ""
    else:
        title, previous = f"{name} Test", ""
    moment = datetime.fromtimestamp(n.time, UTC)
    return {
        "Title": title,
        "Name": name,
        "Endpoint": n.endpoint or "",
        "Status": n.status,
        "PreStatus": previous,
        "RoundTripTime": "0",
        "Time": moment.strftime("%Y-%m-%d %H:%M:%S Z"),
        "Timestamp": str(round(n.time * 1000)),
        "Message": n.message,
    }


def _sla_record(row: Mapping[str, Any]) -> list[str]:
    sla = row.get("sla")
    return [
        str(row.get("name") or ""),
        str(row.get("endpoint") or ""),
        _go_days(row.get("up_s")),
        _go_days(row.get("down_s")),
        "" if sla is None else f"{float(sla):.2f}%",
        str(row.get("checks") or 0),
        "",
        "",
        "",
    ]


def go_duration(seconds: int) -> str:
    """A whole number of seconds as Go's time.Duration prints it: "0s", "45s", "5m30s",
    "26h0m5s" (hours never roll over into days)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _go_days(value: object) -> str:
    """EaseProbe's SLA durations: Go's duration with whole days in front ("1d2h0m0s",
    "3d"), to the second."""
    seconds = _half_up(float(value)) if isinstance(value, int | float) else 0
    days, rest = divmod(abs(seconds), 86400)
    if not days:
        return go_duration(rest)
    return f"{days}d" if rest == 0 else f"{days}d{go_duration(rest)}"


def _half_up(seconds: float) -> int:
    # Go's Duration.Round(time.Second) rounds halves away from zero; Python's round() would
    # round them to even (330.5 s -> 330 s where EaseProbe says 5m31s).
    whole = int(abs(seconds) + 0.5)
    return -whole if seconds < 0 else whole


def _go_rfc3339(moment: datetime) -> str:
    """A UTC time as Go's JSON has it: RFC 3339, fractional seconds without trailing zeros."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _csv_line(fields: Sequence[str]) -> str:
    # Go's encoding/csv quoting (EaseProbe's writer), so the bytes are the ones its scripts
    # saw: quote a field holding the separator, a quote, CR or LF, or starting with white
    # space; double the quotes inside; end the record with "\n".
    out = []
    for field in fields:
        needs = field == "\\." or any(c in field for c in ',"\r\n') or field[:1].isspace()
        out.append('"' + field.replace('"', '""') + '"' if needs else field)
    return ",".join(out) + "\n"


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
