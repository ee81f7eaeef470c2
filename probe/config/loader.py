"""Load a config file: YAML with positions, env substitution, secrets from files, validation.

Every problem is reported as `FILE:LINE:COL: key.path: message`, and all of a file's problems
are reported together (one `ConfigError`), so a user fixes a file in one pass. The steps:

1. read the file into plain values, each with its position (yaml_reader.py);
2. per section: substitute `${VAR}` in string values (substitution.py), drop EaseProbe keys we
   do not act on (a warning each), read `*_file` secrets, fill probe defaults from
   `settings.probe`, validate with pydantic and map each error's `loc` back to a position
   (messages.py).

The loader knows no prober or notifier: the caller says which sections, `client` drivers and
notifier kinds exist, each with a factory of its spec model (called only for what a file
uses), and which EaseProbe names to refuse with a message. probe.assembly passes the real
registries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from probe.config.folder import config_files_in
from probe.config.maintenance import SharedWindowSpec, WindowSpec
from probe.config.messages import (
    descend,
    describe,
    did_you_mean,
    model_class,
    report_validation_error,
)
from probe.config.models import NotifierSpec, ProbeDefaults, ProbeSpec, Settings, usable_path
from probe.config.references import (
    Place,
    check_dependencies,
    check_unique_secrets,
    duplicate_name,
)
from probe.config.source import Loc, Source
from probe.config.substitution import substitute
from probe.config.yaml_reader import parse_file
from probe.durations import format_duration
from probe.errors import ConfigError, ConfigProblem
from probe.text import quoted

__all__ = [
    "Config",
    "ConfigFile",
    "NotifierSpecFactory",
    "SpecFactory",
    "find_config_path",
    "load_config",
]

SpecFactory = Callable[[], type[ProbeSpec]]
"""Returns the spec model of one section's (or `client` driver's) probes; called only for the
sections and drivers a file uses."""

NotifierSpecFactory = Callable[[], type[NotifierSpec]]
"""Returns the spec model of one notifier kind; called only for the kinds a file uses."""

# The section whose entries pick their spec with a `driver:` key.
_CLIENT = "client"

DEFAULT_CONFIG_NAME = "probes.yaml"
_ENV_CONFIG = "PROBE_CONFIG"

# Keys a probe inherits from `settings.probe` when it does not set them itself.
_INHERITED = ("interval", "timeout", "failure", "success", "alert", "flap")
_MAX_SECRET_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One file a config was loaded from, and what it holds."""

    path: Path
    probes: int
    notifiers: int


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded, validated config. `probes` keeps disabled probes (with `enabled=False`).
    `path` is the file, or the folder for a folder of files (`folder`; `files` lists them)."""

    path: Path
    settings: Settings
    probes: list[ProbeSpec]
    notifiers: list[NotifierSpec] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)
    # The `*_file` secrets read while loading (absolute): a reload watches them with the file.
    secret_files: tuple[Path, ...] = ()
    # The top-level `maintenance:` windows (each probe's own are in its spec).
    maintenance: list[SharedWindowSpec] = field(default_factory=list)
    # The config files read, in the order they were merged (one for a config file).
    files: tuple[ConfigFile, ...] = ()
    folder: bool = False

    @property
    def enabled_probes(self) -> list[ProbeSpec]:
        return [p for p in self.probes if p.enabled]

    @property
    def probe_counts(self) -> dict[str, int]:
        """Number of probes per kind, in the order kinds first appear."""
        counts: dict[str, int] = {}
        for p in self.probes:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts

    @property
    def notifier_count(self) -> int:
        return len(self.notifiers)

    @property
    def notifier_counts(self) -> dict[str, int]:
        """Number of notifiers per kind (`webhook` counts as `http`), in first-seen order."""
        counts: dict[str, int] = {}
        for n in self.notifiers:
            counts[n.kind] = counts.get(n.kind, 0) + 1
        return counts


def find_config_path(cli_value: str | None) -> Path:
    """The config file (or folder) to use: the CLI's `-c`, else `$PROBE_CONFIG`, else
    `probes.yaml`."""
    if cli_value is not None:
        if not cli_value.strip():
            # Path("") is ".": an unset variable in `-c "$CONF"` would load every YAML file
            # of the working directory as a config folder.
            message = "an empty path (an unset variable?); name a config file or folder"
            raise ConfigError([ConfigProblem("-c", None, None, "", message)])
        return Path(cli_value)
    from_env = os.environ.get(_ENV_CONFIG)
    if from_env:
        try:
            return usable_path(from_env)
        except ValueError as exc:
            problem = ConfigProblem(f"${_ENV_CONFIG}", None, None, "", str(exc))
            raise ConfigError([problem]) from None
    return Path(DEFAULT_CONFIG_NAME)


def load_config(
    path: str | os.PathLike[str],
    *,
    sections: Mapping[str, SpecFactory],
    drivers: Mapping[str, SpecFactory] | None = None,
    notifiers: Mapping[str, NotifierSpecFactory] | None = None,
    unsupported_sections: Mapping[str, str] | None = None,
    unsupported_drivers: Mapping[str, str] | None = None,
    unsupported_notifiers: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    folder: bool = False,
) -> Config:
    """Load and validate `path`; raise `ConfigError` listing every problem found.

    `sections` maps a top-level section to a factory of its spec model, `drivers` maps a
    `client:` entry's `driver:` to one (none: `client:` is an unknown section), and `notifiers`
    maps a kind under `notify:` to one (an alias is one more name for the same factory). The
    `unsupported_*` maps name EaseProbe sections, drivers and notifier kinds refused with
    their message rather than as unknown. `environ` is what `${VAR}` reads (default:
    `os.environ`). probe.assembly.load_config passes the real registries.

    With `folder`, `path` is a folder whose config files (folder.py says which) are loaded
    as one config: probe sections, each notifier kind and `maintenance:` follow each other
    in file order; probe and notifier names are unique across the files; `settings:` may be
    in one file only. Every problem is located in its own file. Without it, a folder is
    refused as the file it is not.
    """
    loader = _Loader(
        Path(path),
        sections=sections,
        drivers=drivers or {},
        notifiers=notifiers or {},
        unsupported_sections=unsupported_sections or {},
        unsupported_drivers=unsupported_drivers or {},
        unsupported_notifiers=unsupported_notifiers or {},
        environ=os.environ if environ is None else environ,
    )
    return loader.load_folder() if folder else loader.load()


@dataclass(slots=True)
class _Document:
    """One config file's top level, and what its validation found."""

    path: Path
    src: Source
    root: dict[str, Any]
    sections: list[str] = field(default_factory=list)  # its probe sections
    probes: int = 0
    notifiers: int = 0


class _Loader:
    def __init__(
        self,
        path: Path,
        *,
        sections: Mapping[str, SpecFactory],
        drivers: Mapping[str, SpecFactory],
        notifiers: Mapping[str, NotifierSpecFactory],
        unsupported_sections: Mapping[str, str],
        unsupported_drivers: Mapping[str, str],
        unsupported_notifiers: Mapping[str, str],
        environ: Mapping[str, str],
    ) -> None:
        self.path = path
        self.sections = sections
        self.drivers = drivers
        self.notifiers = notifiers
        self.unsupported_sections = unsupported_sections
        self.unsupported_drivers = unsupported_drivers
        self.unsupported_notifiers = unsupported_notifiers
        self.environ = environ
        # Spec models of the drivers a file uses (None: the driver's module failed to load).
        self._driver_specs: dict[str, type[ProbeSpec] | None] = {}
        # The same for notifier kinds (by the name as written: an alias is reported as such).
        self._notifier_specs: dict[str, type[NotifierSpec] | None] = {}
        self.base_dir = path.absolute().parent
        self.src = Source(str(path))
        self.secret_files: list[Path] = []

    def load(self) -> Config:
        """The config file at `self.path`."""
        return self._merge([self._document(self.path, in_folder=False)])

    def load_folder(self) -> Config:
        """The config files of the folder at `self.path`, merged. Files that cannot be read
        or parsed are reported together, before anything is validated (a probe of a file
        that failed would otherwise show up as "no probe is named" in another)."""
        documents: list[_Document] = []
        problems: list[ConfigProblem] = []
        for file in config_files_in(self.path):
            try:
                documents.append(self._document(file, in_folder=True))
            except ConfigError as err:
                problems.extend(err.problems)
        if problems:
            raise ConfigError(problems)
        return self._merge(documents, folder=True)

    def _document(self, path: Path, *, in_folder: bool) -> _Document:
        """One file's top-level mapping (raises ConfigError when there is none to use)."""
        src = Source(str(path))
        root = parse_file(path, src)
        if src.problems and not isinstance(root, dict):
            raise ConfigError(src.problems)  # the top level itself is unusable, and said so
        if root is None:
            if not in_folder:
                raise src.fatal("empty config")
            # A file of a folder emptied (or commented out) on purpose: nothing to load.
            src.warn((), "the file is empty; nothing is loaded from it")
            root = {}
        if not isinstance(root, dict):
            src.error(
                (),
                "the top level must be a mapping of sections "
                f"({', '.join(self._known_sections())}), not {describe(root)}",
            )
            raise ConfigError(src.problems)
        return _Document(path, src, root)

    def _use(self, document: _Document) -> None:
        """Report what follows in `document`'s file, and read its relative paths from its
        folder."""
        self.src = document.src
        self.base_dir = document.path.absolute().parent

    def _merge(self, documents: list[_Document], *, folder: bool = False) -> Config:
        """Validate the documents as one config: probe and notifier lists and maintenance
        windows follow each other in file order; names are unique across all of them."""
        for document in documents:
            self._use(document)
            document.sections = self._probe_sections(document.root)
        settings_document = self._settings_document(documents)
        self._use(settings_document)
        settings = self._settings(settings_document.root.get("settings"))

        placed: list[tuple[ProbeSpec, Place]] = []
        probe_names: dict[str, Place] = {}
        for document in documents:
            self._use(document)
            found = self._probes(document.root, document.sections, settings.probe, probe_names)
            document.probes = len(found)
            placed.extend(found)
        check_dependencies(placed, probe_names)
        check_unique_secrets(placed)
        probes = [spec for spec, _ in placed]

        notifiers: list[NotifierSpec] = []
        notifier_names: dict[str, Place] = {}
        maintenance: list[SharedWindowSpec] = []
        probe_set = {p.name for p in probes}
        for document in documents:
            self._use(document)
            found_notifiers = self._notifiers(document.root.get("notify"), notifier_names)
            document.notifiers = len(found_notifiers)
            notifiers.extend(found_notifiers)
            windows = self._maintenance(document.root.get("maintenance"), probe_set)
            maintenance.extend(windows)
        self._use(settings_document)
        settings = self._cut_default_timeout(settings)

        # Each file's problems in its order, the files in theirs.
        problems = [p for d in documents for p in _tidy(d.src.problems)]
        warnings = [w for d in documents for w in _tidy(d.src.warnings)]
        if problems:
            raise ConfigError(problems, warnings=warnings)
        return Config(
            path=self.path,
            settings=settings,
            probes=probes,
            notifiers=notifiers,
            warnings=warnings,
            secret_files=tuple(dict.fromkeys(self.secret_files)),
            maintenance=maintenance,
            files=tuple(ConfigFile(d.path, d.probes, d.notifiers) for d in documents),
            folder=folder,
        )

    def _probe_sections(self, root: dict[str, Any]) -> list[str]:
        """The probe sections of a file's top level (any other key is checked here)."""
        probe_sections: list[str] = []
        for key in root:
            if key in self.sections or (key == _CLIENT and self.drivers):
                probe_sections.append(key)
            elif key in ("settings", "notify", "maintenance") or key.startswith("x-"):
                # `x-...` holds YAML anchors for reuse, as in docker-compose files.
                continue
            elif key == "version":
                # EaseProbe's files may carry the version they were written for.
                self.src.warn((key,), "accepted for EaseProbe compatibility; not used", key=True)
            elif key in self.unsupported_sections:
                self.src.error((key,), self.unsupported_sections[key], key=True)
            else:
                hint = did_you_mean(key, self._known_sections())
                if not hint:
                    hint = f" (known: {', '.join(self._known_sections())})"
                self.src.error((key,), f"unknown section {quoted(key)}{hint}", key=True)
        return probe_sections

    def _settings_document(self, documents: list[_Document]) -> _Document:
        """The one document with `settings:` (else the first): merging settings key by key
        would leave a reader of one file unsure which value holds, so a second is an error."""
        holders = [d for d in documents if "settings" in d.root]
        for document in holders[1:]:
            first = holders[0].src.where(("settings",), key=True)
            at = f"{holders[0].src.file}:{first[0]}:{first[1]}" if first else holders[0].src.file
            document.src.error(
                ("settings",),
                f"settings are already given in {at}; only one file of a folder may hold them",
                key=True,
            )
        return holders[0] if holders else documents[0]

    def _known_sections(self) -> list[str]:
        client = [_CLIENT] if self.drivers else []
        return sorted({*self.sections, *client, "maintenance", "notify", "settings"})

    # -- settings

    def _settings(self, raw: Any) -> Settings:
        loc: Loc = ("settings",)
        raw = {} if raw is None else substitute(raw, loc, self.environ, self.src)
        self._prepare(Settings, raw, loc)
        settings = self._validate(Settings, raw, loc)
        return settings if isinstance(settings, Settings) else Settings()

    def _cut_default_timeout(self, settings: Settings) -> Settings:
        defaults = settings.probe
        if defaults.timeout <= defaults.interval:
            return settings
        loc: Loc = ("settings", "probe")
        at = (*loc, "timeout") if (*loc, "timeout") in self.src.values else (*loc, "interval")
        self.src.warn(at, _cut_message(defaults.timeout, defaults.interval))
        probe = defaults.model_copy(update={"timeout": defaults.interval})
        return settings.model_copy(update={"probe": probe})

    # -- probes

    def _probes(
        self,
        root: dict[str, Any],
        names: list[str],
        defaults: ProbeDefaults,
        seen_names: dict[str, Place],
    ) -> list[tuple[ProbeSpec, Place]]:
        """The probes of one file, each with where it is; `seen_names` holds the names
        taken (and where), across the files of a folder, and gains this file's."""
        # Cut here too, so probes that inherit both values need no warning of their own.
        if defaults.timeout > defaults.interval:
            defaults = defaults.model_copy(update={"timeout": defaults.interval})
        probes: list[tuple[ProbeSpec, Place]] = []
        for section in names:
            raw = root[section]
            if raw is None:
                continue  # `http:` with nothing under it: no probes of that kind
            spec_type: type[ProbeSpec] | None = None
            client = section == _CLIENT and bool(self.drivers)
            if not client:
                try:
                    spec_type = self.sections[section]()
                except Exception as exc:  # a broken prober module is reported, not raised
                    self.src.error(
                        (section,),
                        f"{section} probes are unavailable ({type(exc).__name__}: {exc})",
                        key=True,
                    )
                    continue
            at: Loc = (section,)
            named: dict[str, dict[str, Any]] = {}
            if spec_type is not None and spec_type.section_entries and isinstance(raw, dict):
                raw, named = self._section_mapping(section, raw, spec_type)
                at = (section, "servers")
            if not isinstance(raw, list):
                self.src.error(at, f"expected a list of probes, not {describe(raw)}")
                continue
            for index, item in enumerate(raw):
                loc: Loc = (*at, index)
                if spec_type is None:
                    spec = self._client_probe(item, loc, defaults)
                else:
                    spec = self._probe(spec_type, item, loc, defaults, named=named)
                name = spec.name if spec is not None else _raw_name(item)
                if name is None:
                    continue
                if name in seen_names:
                    duplicate_name("probe", name, (self.src, loc), seen_names[name])
                else:
                    seen_names[name] = (self.src, loc)
                if spec is not None:
                    probes.append((spec, (self.src, loc)))
        return probes

    def _section_mapping(
        self, section: str, raw: dict[str, Any], spec_type: type[ProbeSpec]
    ) -> tuple[Any, dict[str, dict[str, Any]]]:
        """A section written as `{servers: [...], <entry key>: {NAME: entry}}` (EaseProbe's
        ssh and host): the servers, and the named entries validated, by key and name."""
        named: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            if key == "servers" or value is None:
                continue
            kloc: Loc = (section, key)
            entry_type = spec_type.section_entries.get(key)
            if entry_type is None:
                known = ["servers", *spec_type.section_entries]
                hint = did_you_mean(key, known) or f" (known: {', '.join(known)})"
                self.src.error(kloc, f"unknown key {quoted(key)}{hint}", key=True)
                continue
            if not isinstance(value, dict):
                self.src.error(kloc, f"expected a mapping of name to entry, not {describe(value)}")
                continue
            value = substitute(value, kloc, self.environ, self.src)
            entries: dict[str, Any] = {}
            for name, item in value.items():
                eloc: Loc = (*kloc, name)
                if not isinstance(item, dict):
                    self.src.error(eloc, f"expected a mapping, not {describe(item)}")
                    continue
                self._prepare(entry_type, item, eloc)
                entry = self._validate(entry_type, item, eloc)
                if entry is not None:
                    entries[str(name)] = entry
            named[key] = entries
        if "servers" not in raw:
            self.src.error((section, "servers"), "missing required key (the list of probes)")
            return [], named
        return raw["servers"] or [], named

    def _client_probe(self, raw: Any, loc: Loc, defaults: ProbeDefaults) -> ProbeSpec | None:
        """A `client:` entry: its `driver:` picks the spec model, then as any other probe."""
        if not isinstance(raw, dict):
            self.src.error(loc, f"expected a mapping (one probe), not {describe(raw)}")
            return None
        raw = substitute(raw, loc, self.environ, self.src)
        spec_type = self._driver_spec(raw, loc)
        if spec_type is None:
            return None
        return self._probe(spec_type, raw, loc, defaults, substituted=True)

    def _driver_spec(self, raw: dict[str, Any], loc: Loc) -> type[ProbeSpec] | None:
        """The spec model for the entry's `driver:`, or None (and a located problem)."""
        dloc = (*loc, "driver")
        known = ", ".join(sorted(self.drivers))
        if "driver" not in raw:
            # Located at the entry: the mapping that lacks the key.
            self.src.error(dloc, f"missing required key (the client driver: one of {known})")
            return None
        value = raw["driver"]
        if dloc in self.src.broken:
            return None  # an unset ${VAR}, already reported
        if not isinstance(value, str) or not value.strip():
            self.src.error(dloc, f"expected a driver name ({known}), got {describe(value)}")
            return None
        # EaseProbe reads the driver name case-insensitively.
        driver = value.strip().lower()
        if driver not in self.drivers:
            if driver in self.unsupported_drivers:
                self.src.error(dloc, self.unsupported_drivers[driver])
            else:
                hint = did_you_mean(driver, self.drivers) or f" (known: {known})"
                self.src.error(dloc, f"unknown driver {quoted(value)}{hint}")
            return None
        raw["driver"] = driver
        if driver not in self._driver_specs:
            try:
                self._driver_specs[driver] = self.drivers[driver]()
            except Exception as exc:  # a broken or missing driver module: reported, not raised
                self._driver_specs[driver] = None
                self.src.error(
                    dloc, f"{driver} probes are unavailable ({type(exc).__name__}: {exc})"
                )
        return self._driver_specs[driver]

    def _probe(
        self,
        spec_type: type[ProbeSpec],
        raw: Any,
        loc: Loc,
        defaults: ProbeDefaults,
        *,
        substituted: bool = False,
        named: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ProbeSpec | None:
        if not isinstance(raw, dict):
            self.src.error(loc, f"expected a mapping (one probe), not {describe(raw)}")
            return None
        if not substituted:
            raw = substitute(raw, loc, self.environ, self.src)
        self._prepare(spec_type, raw, loc)
        # An empty `timeout:` means "the default", as in EaseProbe (Go's zero value).
        for key in _INHERITED:
            if key in raw and raw[key] is None:
                del raw[key]
        own_interval = "interval" in raw
        own_timeout = "timeout" in raw
        inherited: dict[str, Any] = {
            "interval": timedelta(seconds=defaults.interval),
            "timeout": timedelta(seconds=defaults.timeout),
            "failure": defaults.failure,
            "success": defaults.success,
            "alert": defaults.alert,
            "flap": defaults.flap,
        }
        for key, value in inherited.items():
            if key in spec_type.not_inherited:
                continue  # this kind's own, to be written (a push probe's interval)
            if key not in raw:
                raw[key] = value
            elif key == "alert" and isinstance(raw[key], dict):
                # A probe's alert overrides settings.probe.alert key by key.
                for sub, sub_value in defaults.alert.model_dump().items():
                    raw[key].setdefault(sub, sub_value)
            elif key == "flap" and isinstance(raw[key], dict):
                # ... and its flap settings.probe.flap (the window as a duration again).
                raw[key].setdefault("changes", defaults.flap.changes)
                raw[key].setdefault("window", timedelta(seconds=defaults.flap.window))
        spec = self._validate(spec_type, raw, loc, named=named)
        if not isinstance(spec, ProbeSpec):
            return None
        for index, problem in spec.condition_problems():
            self.src.error((*loc, "conditions", index), problem)
        for index, problem in spec.degraded_problems():
            self.src.error((*loc, "degraded", index), problem)
        for index, window in enumerate(spec.maintenance):
            self._window_problems(window, (*loc, "maintenance", index))
        if spec.timeout > spec.interval:
            # A probe the scheduler never checks (push) has no use for its timeout.
            if (own_timeout or own_interval) and spec.scheduled:
                at = (*loc, "timeout" if own_timeout else "interval")
                self.src.warn(at, _cut_message(spec.timeout, spec.interval))
            spec = spec.model_copy(update={"timeout": spec.interval})
        return spec

    # -- maintenance windows

    def _maintenance(self, raw: Any, probe_names: set[str]) -> list[SharedWindowSpec]:
        loc: Loc = ("maintenance",)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.src.error(loc, f"expected a list of maintenance windows, not {describe(raw)}")
            return []
        raw = substitute(raw, loc, self.environ, self.src)
        windows: list[SharedWindowSpec] = []
        for index, item in enumerate(raw):
            wloc: Loc = (*loc, index)
            if not isinstance(item, dict):
                self.src.error(wloc, f"expected a mapping (one window), not {describe(item)}")
                continue
            window = self._validate(SharedWindowSpec, item, wloc)
            if not isinstance(window, SharedWindowSpec):
                continue
            self._window_problems(window, wloc)
            for at, name in enumerate(window.probes or []):
                if name not in probe_names:
                    hint = did_you_mean(name, probe_names)
                    self.src.error((*wloc, "probes", at), f"no probe is named {quoted(name)}{hint}")
            windows.append(window)
        return windows

    def _window_problems(self, window: WindowSpec, loc: Loc) -> None:
        for key, problem in window.problems():
            # A missing key is reported at the window, a wrong one at itself.
            at = (*loc, key) if (*loc, key) in self.src.values else loc
            self.src.error(at, problem)

    # -- notifiers

    def _notifiers(self, raw: Any, seen_names: dict[str, Place]) -> list[NotifierSpec]:
        """The notifiers of one file; `seen_names` as for `_probes`."""
        loc: Loc = ("notify",)
        if raw is None:
            return []
        if not isinstance(raw, dict):
            self.src.error(
                loc, f"expected a mapping of notifier kind to a list, not {describe(raw)}"
            )
            return []
        raw = substitute(raw, loc, self.environ, self.src)
        specs: list[NotifierSpec] = []
        for kind, entries in raw.items():
            kloc = (*loc, kind)
            if not self._known_notifier(kind, kloc) or entries is None:
                continue
            if not isinstance(entries, list):
                self.src.error(kloc, f"expected a list of notifiers, not {describe(entries)}")
                continue
            # Imported only now: a kind listed with nothing under it costs no import.
            spec_type = self._notifier_spec(kind, kloc)
            if spec_type is None:
                continue
            for index, entry in enumerate(entries):
                eloc = (*kloc, index)
                if not isinstance(entry, dict):
                    self.src.error(
                        eloc, f"expected a mapping (one notifier), not {describe(entry)}"
                    )
                    continue
                self._prepare(spec_type, entry, eloc)
                spec = self._validate(spec_type, entry, eloc)
                name = spec.name if isinstance(spec, NotifierSpec) else _raw_name(entry)
                if name is None:
                    continue
                if name in seen_names:
                    duplicate_name("notifier", name, (self.src, eloc), seen_names[name])
                else:
                    seen_names[name] = (self.src, eloc)
                if isinstance(spec, NotifierSpec):
                    specs.append(spec)
        return specs

    def _known_notifier(self, kind: str, kloc: Loc) -> bool:
        if kind in self.notifiers:
            return True
        if kind in self.unsupported_notifiers:
            self.src.error(kloc, self.unsupported_notifiers[kind], key=True)
            return False
        known = sorted(self.notifiers)
        hint = did_you_mean(kind, known) or f" (known: {', '.join(known)})"
        self.src.error(kloc, f"unknown notifier kind {quoted(kind)}{hint}", key=True)
        return False

    def _notifier_spec(self, kind: str, kloc: Loc) -> type[NotifierSpec] | None:
        """The spec model of notifier `kind`, or None (and a located problem)."""
        if kind not in self._notifier_specs:
            try:
                self._notifier_specs[kind] = self.notifiers[kind]()
            except Exception as exc:  # a broken or missing notifier module: reported, not raised
                self._notifier_specs[kind] = None
                self.src.error(
                    kloc,
                    f"{kind} notifiers are unavailable ({type(exc).__name__}: {exc})",
                    key=True,
                )
        return self._notifier_specs[kind]

    # -- shared steps

    def _prepare(self, tp: Any, value: Any, loc: Loc) -> None:
        """Walk `value` along model `tp`: drop ignored EaseProbe keys, read `*_file` secrets."""
        model = model_class(tp)
        if model is not None and isinstance(value, dict):
            fields = model.model_fields
            ignored: frozenset[str] = getattr(model, "easeprobe_ignored", frozenset())
            for key in list(value):
                if key in ignored and key not in fields:
                    self.src.warn(
                        (*loc, key), "accepted for EaseProbe compatibility; not used", key=True
                    )
                    del value[key]
                elif key.endswith("_file") and key not in fields and key[:-5] in fields:
                    self._read_secret(value, key, loc)
        children: Iterable[tuple[str | int, Any]]
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            return
        for key, child in children:
            sub = descend(tp, key)
            if sub is not None:
                self._prepare(sub, child, (*loc, key))

    def _read_secret(self, mapping: dict[str, Any], key: str, loc: Loc) -> None:
        target = key.removesuffix("_file")
        kloc = (*loc, key)
        value = mapping.pop(key)
        if target in mapping:
            self.src.error(
                kloc, f"both {quoted(target)} and {quoted(key)} are given; use one", key=True
            )
            return
        # Whatever goes wrong below is reported here, not again as a missing `target`.
        self.src.broken.add((*loc, target))
        if not isinstance(value, str) or not value:
            self.src.error(kloc, f"expected a file path, got {describe(value)}")
            return
        try:
            path = usable_path(value)
        except ValueError as exc:
            self.src.error(kloc, f"cannot read {quoted(value)}: {exc}")
            return
        if not path.is_absolute():
            path = self.base_dir / path
        self.secret_files.append(path)
        try:
            with path.open("rb") as fh:
                data = fh.read(_MAX_SECRET_BYTES + 1)
        except OSError as exc:
            self.src.error(
                kloc, f"cannot read {quoted(value)}: {exc.strerror or type(exc).__name__}"
            )
            return
        if len(data) > _MAX_SECRET_BYTES:
            # `password_file: /dev/zero` must not eat the memory; no secret is this long.
            self.src.error(kloc, f"{quoted(value)} is larger than {_MAX_SECRET_BYTES} bytes")
            return
        try:
            secret = data.decode("utf-8")
        except UnicodeDecodeError:
            self.src.error(kloc, f"cannot read {quoted(value)}: not UTF-8 text")
            return
        # Editors add a final newline; a secret never means it.
        mapping[target] = secret.removesuffix("\n").removesuffix("\r")
        # Read: its value is validated like any other (an empty one is an error, not silence).
        self.src.broken.discard((*loc, target))
        if kloc in self.src.values:
            self.src.values[(*loc, target)] = self.src.values[kloc]
        if kloc in self.src.keys:
            self.src.keys[(*loc, target)] = self.src.keys[kloc]

    def _validate(
        self,
        model: type[BaseModel],
        raw: Any,
        loc: Loc,
        *,
        named: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> BaseModel | None:
        context = {"base_dir": self.base_dir, "named": named or {}}
        try:
            return model.model_validate(raw, context=context)
        except ValidationError as exc:
            report_validation_error(self.src, exc, model, loc)
        except Exception as exc:  # a validator bug must not become a traceback
            self.src.error(loc, f"cannot validate ({type(exc).__name__}); please report this")
        if not self.src.problems:
            # Every complaint fell under a value marked broken without a problem of its own:
            # never let a section silently fall back to its defaults (auth off, say).
            # (Appended directly: `error` would stay silent under the broken mark.)
            problem = self.src.problem(loc, "invalid; please report this", False, None)
            self.src.problems.append(problem)
        return None


def _cut_message(timeout: float, interval: float) -> str:
    t, i = format_duration(timeout), format_duration(interval)
    return f"timeout {t} is longer than the interval {i}; using {i}"


def _raw_name(item: Any) -> str | None:
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        name: str = item["name"]
        return name
    return None


def _tidy(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Unique (aliases can repeat a problem) and in file order."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))
