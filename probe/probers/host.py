"""Host probes: log in over SSH (as the ssh probes do) and check the host's CPU, memory, disk
and load against thresholds; down naming each resource over its threshold, with the values.

EaseProbe's section: `host: {bastion: {...}, servers: [...]}` with `threshold: {cpu, mem,
disk, load: {m1, m5, m15}}` (fractions: 0.8 is 80%) and `disks` (mount points; `/` when
none). As in EaseProbe: an unset (or 0) threshold takes the default (cpu 0.8, mem 0.8, disk
0.95, each load 0.8); cpu, memory and disk are over when usage >= threshold; the load
averages are divided by the number of CPUs and over when above their threshold.

EaseProbe runs `top`, `free` and `df -h`; we run one POSIX shell command that reads the kernel's
own figures (two samples of /proc/stat 0.2 s apart, /proc/meminfo, /proc/loadavg, the CPU count)
and `df -P -k` per disk, so the numbers do not depend on the locale or top's version. Memory
in use is MemTotal - MemAvailable; a disk's usage is used / (used + available), as df's
Capacity shows it. Conditions read [CPU], [MEM], [DISK] (the fullest disk), [LOAD1], [LOAD5]
and [LOAD15] (per CPU), all fractions.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, field_validator

from probe.config.models import ProbeSpec, StrictModel
from probe.core.check import CheckContext, Outcome
from probe.errors import ProbeError
from probe.probers._ssh import SSHServerKeys, run_command
from probe.probers.base import Prober, SharedResources
from probe.subprocesses import status_text
from probe.text import printable

__all__ = ["HostProber", "HostSpec", "Readings", "Threshold", "parse_readings"]

DEFAULT_CPU = 0.8
DEFAULT_MEM = 0.8
DEFAULT_DISK = 0.95
DEFAULT_LOAD = 0.8
_LOADS = ("m1", "m5", "m15")
# Seconds between the two /proc/stat samples the CPU usage is measured over.
CPU_SAMPLE = 0.2

_FRACTION = "a fraction of 1 (0.8 is 80%); 0 or unset takes the default"


class Threshold(StrictModel):
    """EaseProbe's `threshold:`; 0 means the default, as in EaseProbe."""

    cpu: float = Field(default=0.0, ge=0.0, le=1.0, description=_FRACTION)
    mem: float = Field(default=0.0, ge=0.0, le=1.0, description=_FRACTION)
    disk: float = Field(default=0.0, ge=0.0, le=1.0, description=_FRACTION)
    # Load averages per CPU: m1, m5, m15 (any case, as EaseProbe reads them).
    load: dict[str, float] = Field(default_factory=dict)

    @field_validator("load")
    @classmethod
    def _load_keys(cls, value: dict[str, float]) -> dict[str, float]:
        lowered: dict[str, float] = {}
        for key, number in value.items():
            name = key.lower()
            if name not in _LOADS:
                raise ValueError(f'unknown load average "{key}" (known: m1, m5, m15)')
            if number < 0:
                raise ValueError(f"load.{key} must not be negative")
            lowered[name] = number
        return lowered

    def limits(self) -> dict[str, float]:
        """Every threshold in force, defaults filled in: cpu, mem, disk, m1, m5, m15."""
        limits = {
            "cpu": self.cpu or DEFAULT_CPU,
            "mem": self.mem or DEFAULT_MEM,
            "disk": self.disk or DEFAULT_DISK,
        }
        for name in _LOADS:
            limits[name] = self.load.get(name) or DEFAULT_LOAD
        return limits


def _mount_point(value: str) -> str:
    # Spaces would split the df line the parser reads; no real mount point needs them.
    if not value.startswith("/") or re.search(r"[\s\0]", value):
        raise ValueError("expected an absolute path without spaces, as /data")
    return value


class HostSpec(SSHServerKeys, ProbeSpec):
    """One entry of `host: servers:`: EaseProbe's keys."""

    kind: ClassVar[str] = "host"
    # EaseProbe's host servers embed its ssh server, keys and all, then replace the command
    # with their own: these keys load there and do nothing, so here too (with a warning).
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset(
        {"cmd", "args", "env", "contain", "not_contain", "regex"}
    )
    condition_placeholders: ClassVar[frozenset[str]] = frozenset(
        {"CPU", "MEM", "DISK", "LOAD1", "LOAD5", "LOAD15"}
    )

    threshold: Threshold = Threshold()
    disks: list[Annotated[str, AfterValidator(_mount_point)]] = Field(default_factory=list)

    def mounts(self) -> list[str]:
        return list(dict.fromkeys(self.disks)) or ["/"]

    def endpoint(self) -> str:
        return self.shown()


@dataclass(frozen=True)
class Readings:
    """What one check read: fractions of 1 (load: per CPU)."""

    cpu: float
    mem: float
    disks: dict[str, float]
    load: dict[str, float]
    cpus: int


def host_command(mounts: list[str]) -> str:
    """One POSIX shell command printing tagged lines the parser reads."""
    parts = [
        "echo cpu $(head -n 1 /proc/stat)",
        f"sleep {CPU_SAMPLE}",
        "echo cpu $(head -n 1 /proc/stat)",
        "echo mem $(grep -E '^(MemTotal|MemAvailable):' /proc/meminfo)",
        "echo load $(cat /proc/loadavg)",
        "echo cpus $(grep -c ^processor /proc/cpuinfo)",
    ]
    for mount in mounts:
        quoted = shlex.quote(mount)
        # The last line of `df -P -k`: the figures, or df's error.
        parts.append(f"echo disk {quoted} $(df -P -k -- {quoted} 2>&1 | tail -n 1)")
    return "; ".join(parts)


def parse_readings(text: str, mounts: list[str]) -> Readings:
    """Readings from host_command()'s output; ValueError saying what is missing."""
    cpu_samples: list[list[int]] = []
    mem: dict[str, int] = {}
    load: list[float] = []
    cpus = 0
    disks: dict[str, float] = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        tag, rest = words[0], words[1:]
        if tag == "cpu" and len(rest) >= 5 and rest[0] == "cpu":
            cpu_samples.append([int(v) for v in rest[1:]])
        elif tag == "mem":
            for name, value in zip(rest[0::3], rest[1::3], strict=False):
                mem[name.rstrip(":")] = int(value)
        elif tag == "load" and len(rest) >= 3:
            load = [float(v) for v in rest[:3]]
        elif tag == "cpus" and rest:
            cpus = int(rest[0])
        elif tag == "disk" and rest:
            disks[rest[0]] = _disk_usage(rest[0], rest[1:])
    if len(cpu_samples) != 2:
        raise ValueError("the host sent no CPU figures (/proc/stat)")
    if "MemTotal" not in mem or "MemAvailable" not in mem or mem["MemTotal"] <= 0:
        raise ValueError("the host sent no memory figures (/proc/meminfo)")
    if len(load) != 3 or cpus <= 0:
        raise ValueError("the host sent no load averages (/proc/loadavg)")
    for mount in mounts:
        if mount not in disks:
            raise ValueError(f"the host sent no figures for disk {mount}")
    return Readings(
        cpu=_cpu_usage(cpu_samples[0], cpu_samples[1]),
        mem=(mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"],
        disks=disks,
        load={name: value / cpus for name, value in zip(_LOADS, load, strict=True)},
        cpus=cpus,
    )


def _cpu_usage(before: list[int], after: list[int]) -> float:
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice).
    delta = [b - a for a, b in zip(before[:8], after[:8], strict=False)]
    total = sum(delta)
    if total <= 0:
        return 0.0
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
    return max(0.0, min(1.0, (total - idle) / total))


def _disk_usage(mount: str, words: list[str]) -> float:
    # `FILESYSTEM 1024-BLOCKS USED AVAILABLE CAPACITY MOUNTPOINT`, or df's error message.
    try:
        used, available = int(words[2]), int(words[3])
    except (IndexError, ValueError):
        text = " ".join(words).removeprefix("df: ").removeprefix(f"{mount}: ")
        reason = printable(text[:1].lower() + text[1:], 120) or "no output"
        raise ValueError(f"cannot read disk {mount}: {reason}") from None
    return used / (used + available) if used + available > 0 else 0.0


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _limit(value: float) -> str:
    """A threshold as written (0.8 -> "80%", 0.0001 -> "0.01%")."""
    return f"{value * 100:.4g}%"


class HostProber(Prober[HostSpec]):
    spec_type: ClassVar[type[ProbeSpec]] = HostSpec

    def __init__(self, spec: HostSpec, resources: SharedResources) -> None:
        super().__init__(spec, resources)
        self._mounts = spec.mounts()
        self._command = host_command(self._mounts)
        self._limits = spec.threshold.limits()

    async def check(self, ctx: CheckContext) -> Outcome:
        run = await run_command(self.spec, self.spec.bastion, self._command, ctx)
        if run.status != 0:
            first = printable(bytes(run.stderr).decode(errors="replace").strip(), 200)
            message = (
                "the server sent no exit status"
                if run.status is None
                else (f"reading the host's figures failed: {status_text(run.status)}")
            )
            raise ProbeError(f"{message}: {first}" if first else message, **ctx.details)
        ctx.phase = "reading the figures"
        try:
            readings = parse_readings(bytes(run.stdout).decode(errors="replace"), self._mounts)
        except ValueError as exc:
            raise ProbeError(str(exc), **ctx.details) from None
        self._facts(readings, ctx)
        return self._judge(readings, ctx)

    def _facts(self, readings: Readings, ctx: CheckContext) -> None:
        ctx.facts["CPU"] = readings.cpu
        ctx.facts["MEM"] = readings.mem
        ctx.facts["DISK"] = max(readings.disks.values())
        ctx.facts["LOAD1"] = readings.load["m1"]
        ctx.facts["LOAD5"] = readings.load["m5"]
        ctx.facts["LOAD15"] = readings.load["m15"]

    def _judge(self, readings: Readings, ctx: CheckContext) -> Outcome:
        limits = self._limits
        over: list[str] = []
        if readings.cpu >= limits["cpu"]:
            over.append(f"cpu {_percent(readings.cpu)} >= {_limit(limits['cpu'])}")
        if readings.mem >= limits["mem"]:
            over.append(f"mem {_percent(readings.mem)} >= {_limit(limits['mem'])}")
        for mount, usage in readings.disks.items():
            if usage >= limits["disk"]:
                over.append(f"disk {mount} {_percent(usage)} >= {_limit(limits['disk'])}")
        for name in _LOADS:
            if readings.load[name] > limits[name]:
                over.append(f"load {name} {readings.load[name]:.2f} per CPU > {limits[name]:.2f}")
        shown = ", ".join(
            [
                f"cpu {_percent(readings.cpu)}",
                f"mem {_percent(readings.mem)}",
                *(f"disk {m} {_percent(u)}" for m, u in readings.disks.items()),
                "load " + "/".join(f"{readings.load[n]:.2f}" for n in _LOADS) + " per CPU",
            ]
        )
        details: dict[str, Any] = {
            **ctx.details,
            "cpu": readings.cpu,
            "mem": readings.mem,
            "disks": dict(readings.disks),
            "load": dict(readings.load),
            "cpus": readings.cpus,
        }
        if over:
            return Outcome(ok=False, message="over threshold: " + "; ".join(over), details=details)
        return Outcome(ok=True, message=shown, details=details)
