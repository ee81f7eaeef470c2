"""What changed between two loaded configs: the plan a reload applies in place.

Probes and notifiers are matched by name (the store keys a probe's history by it). One is
"changed" when its spec differs or when a file it names (a CA, a client certificate, a
message template) has other contents than when it was applied: the spec then holds the
same path, but the prober or notifier built from it would not be the same. Settings are
grouped by the part of the running App they are applied to; the groups that cannot be
applied without a restart are listed so the reload can say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from probe.config.folder import config_names_in
from probe.config.loader import Config
from probe.config.models import NotifierSpec, ProbeSpec

__all__ = [
    "ConfigDiff",
    "Fingerprints",
    "ReloadReport",
    "diff_configs",
    "fingerprints",
    "input_files",
    "kept_notifiers",
]

# A file's fingerprint: its content's digest, or why it has none ("missing", "unreadable").
Fingerprints = Mapping[Path, str]

# Settings a running App cannot take without starting again, by their key in the file.
_RESTART_ONLY = ("store", "log", "probe.concurrency", "probe.workers")


def _paths_in(value: object) -> Iterator[Path]:
    """Every Path held in `value`: a model's fields, and lists and mappings within them."""
    if isinstance(value, Path):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _paths_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _paths_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _paths_in(item)


def _spec_files(spec: BaseModel) -> list[Path]:
    return list(dict.fromkeys(_paths_in(spec)))


def input_files(config: Config) -> list[Path]:
    """The files `config` reads: the file itself (for a folder: the folder, whose
    fingerprint is its list of config files, and each of them), its `*_file` secrets and the
    files its probes and notifiers name. Not the ones it writes (store, status page, logs)."""
    files = [config.path, *(file.path for file in config.files), *config.secret_files]
    for spec in [*config.probes, *config.notifiers]:
        files.extend(_spec_files(spec))
    return list(dict.fromkeys(files))


def _digest(path: Path) -> str:
    try:
        if path.is_dir():
            # A config folder: a file added, removed or renamed changes what is loaded.
            names = "\n".join(config_names_in(path))
            return "folder " + hashlib.sha256(names.encode("utf-8", "surrogateescape")).hexdigest()
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"


def fingerprints(paths: Iterable[Path]) -> dict[Path, str]:
    """Each file's fingerprint, read now (blocking: run it in a thread)."""
    return {path: _digest(path) for path in dict.fromkeys(paths)}


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What applying `new` over `old` means, by part of the running App."""

    added: list[ProbeSpec] = field(default_factory=list)
    changed: list[ProbeSpec] = field(default_factory=list)  # the new specs
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    notifiers: bool = False  # the notifiers (or what they are built with) changed
    web: bool = False  # the web server's settings changed
    reports: bool = False  # the SLA report schedule changed
    watch: bool = False  # settings.reload changed
    maintenance: bool = False  # the top-level maintenance windows changed
    restart_needed: list[str] = field(default_factory=list)  # settings kept until a restart

    @property
    def probes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} probe(s) added",
            f"{len(self.changed)} changed",
            f"{len(self.removed)} removed",
            f"{self.unchanged} unchanged",
        ]
        if self.notifiers:
            parts.append("notifiers replaced")
        if self.web:
            parts.append("web server restarted")
        if self.maintenance:
            parts.append("maintenance windows changed")
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "added": [s.name for s in self.added],
            "changed": [s.name for s in self.changed],
            "removed": list(self.removed),
            "unchanged": self.unchanged,
            "notifiers_replaced": self.notifiers,
            "web_restarted": self.web,
            "maintenance_changed": self.maintenance,
            "restart_needed": list(self.restart_needed),
        }


def _same(spec: BaseModel, other: BaseModel, old: Fingerprints, new: Fingerprints) -> bool:
    if spec != other:
        return False
    return all(old.get(path) == new.get(path) for path in _spec_files(other))


def _notifiers_changed(
    old: list[NotifierSpec], new: list[NotifierSpec], before: Fingerprints, now: Fingerprints
) -> bool:
    if [n.name for n in old] != [n.name for n in new]:
        return True
    return not all(_same(a, b, before, now) for a, b in zip(old, new, strict=True))


def kept_notifiers(old: Config, new: Config, before: Fingerprints, now: Fingerprints) -> set[str]:
    """The notifiers a reload keeps running as they are: same name, same spec, same files,
    built with the same settings (settings.notify, the timezone and name their messages
    show)."""
    s, t = old.settings, new.settings
    if (s.notify, s.timezone, s.name) != (t.notify, t.timezone, t.name):
        return set()
    was = {spec.name: spec for spec in old.notifiers}
    return {
        spec.name
        for spec in new.notifiers
        if spec.name in was and _same(was[spec.name], spec, before, now)
    }


def diff_configs(old: Config, new: Config, before: Fingerprints, now: Fingerprints) -> ConfigDiff:
    """The plan that takes a running `old` to `new`; `before` and `now` are the fingerprints
    of the files each names (see `fingerprints`)."""
    was = {spec.name: spec for spec in old.enabled_probes}
    added: list[ProbeSpec] = []
    changed: list[ProbeSpec] = []
    unchanged = 0
    for spec in new.enabled_probes:
        previous = was.pop(spec.name, None)
        if previous is None:
            added.append(spec)
        elif _same(previous, spec, before, now):
            unchanged += 1
        else:
            changed.append(spec)
    s, t = old.settings, new.settings
    notify_inputs = (s.notify, s.sla.channels, s.timezone, s.name)
    restart = [key for key in _RESTART_ONLY if _setting(s, key) != _setting(t, key)]
    return ConfigDiff(
        added=added,
        changed=changed,
        removed=list(was),
        unchanged=unchanged,
        notifiers=_notifiers_changed(old.notifiers, new.notifiers, before, now)
        or notify_inputs != (t.notify, t.sla.channels, t.timezone, t.name),
        web=(s.http, s.name, s.icon, s.timezone) != (t.http, t.name, t.icon, t.timezone),
        reports=(s.sla, s.timezone) != (t.sla, t.timezone),
        watch=s.reload != t.reload,
        maintenance=old.maintenance != new.maintenance,
        restart_needed=[f"settings.{key}" for key in restart],
    )


def _setting(settings: BaseModel, key: str) -> object:
    value: object = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """How the last reload went: applied (with its diff) or refused (with the problems, each
    located `FILE:LINE:COL: key: message`, while the running config stays)."""

    ok: bool
    time: float
    trigger: str  # "signal", "api" or "file change"
    problems: tuple[str, ...] = ()
    diff: ConfigDiff | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ok" if self.ok else "failed",
            "time": datetime.fromtimestamp(self.time, UTC).isoformat().replace("+00:00", "Z"),
            "trigger": self.trigger,
        }
        if self.problems:
            body["errors"] = list(self.problems)
        if self.diff is not None:
            body["changes"] = self.diff.to_json()
        return body
