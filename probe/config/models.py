"""Pydantic models of the config: settings, and the keys every probe and every notifier shares.

Each prober kind declares its own spec (a subclass of `ProbeSpec`) next to its code, in
probe/probers/<kind>.py, and each notifier kind its own `NotifierSpec` in
probe/notify/<kind>.py. Durations are float seconds; the loader (loader.py) fills each probe's
unset `interval`/`timeout`/`failure`/`success`/`alert` from `settings.probe` before validation.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Hashable, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from probe.conditions import Condition, ConditionError, check_placeholders, parse_condition
from probe.config.urls import icon_url
from probe.durations import DURATION_PATTERN, format_duration, parse_duration
from probe.text import quoted

if TYPE_CHECKING:
    # Built on StrictModel and Duration below: probe.config.maintenance completes ProbeSpec
    # (model_rebuild) once it has defined WindowSpec, before any prober subclasses it.
    from probe.config.maintenance import WindowSpec

__all__ = [
    "AlertSpec",
    "ConfigPath",
    "Duration",
    "Event",
    "GroupSettings",
    "HTTPServerSettings",
    "LogSettings",
    "NotifierSpec",
    "NotifySettings",
    "ProbeDefaults",
    "ProbeSpec",
    "RetrySettings",
    "SLASettings",
    "Settings",
    "StatusSettings",
    "StoreSettings",
    "StrictModel",
]


def _to_seconds(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s")
    if isinstance(value, int | float):
        raise ValueError(f'a bare number is not a duration; write "{value}s"')
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as 10s")


Duration = Annotated[
    float,
    BeforeValidator(_to_seconds),
    Field(ge=0),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["250ms", "30s", "1m30s"]}
    ),
]
"""A duration in seconds, written `250ms`, `30s`, `1m30s`, `1.5h`, `7d`."""

# Below this (0s, 1ns) the scheduler would spin; ten checks a second of one endpoint is already
# a load test rather than a health check. (Not 1s: sub-second runs are what the tests use to
# drive a real `probe run` through many checks quickly.) A timeout must be longer than 0s.
MIN_INTERVAL = 0.1


def _at_least(floor: float, what: str) -> AfterValidator:
    def check(value: float) -> float:
        if value < floor:
            raise ValueError(f"{what} must be at least {format_duration(floor)}")
        return value

    return AfterValidator(check)


def _at_most(ceiling: float, what: str) -> AfterValidator:
    def check(value: float) -> float:
        if value > ceiling:
            raise ValueError(f"{what} must be at most {format_duration(ceiling)}")
        return value

    return AfterValidator(check)


def _positive(what: str) -> AfterValidator:
    def check(value: float) -> float:
        if value <= 0:
            raise ValueError(f"{what} must be longer than 0s")
        return value

    return AfterValidator(check)


Interval = Annotated[Duration, _at_least(MIN_INTERVAL, "an interval")]
Timeout = Annotated[Duration, _positive("a timeout")]

# Upper bounds for counts: far above any real use, low enough that every value (and what the
# alert strategy derives from it) stays storable and cheap. Without them `factor: 10^30`
# made the alert state unstorable and a restart repeated the alert.
MAX_THRESHOLD = 10_000  # failure, success: consecutive results
MAX_ALERT_FACTOR = 10_000
MAX_ALERTS = 10_000
MAX_RETRIES = 100
MAX_CONCURRENCY = 65_536
# Worker processes: one per core is the point; past that they only compete.
MAX_WORKERS = 64


def _label_value(value: Any) -> Any:
    # EaseProbe (Go's yaml.v3) reads `critical: true` or `tier: 1` into a string label as
    # written; YAML 1.2 gives us the bool or number, so they are written back as text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


LabelValue = Annotated[
    str,
    BeforeValidator(_label_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]


def usable_path(text: str) -> Path:
    """`text` as a path with `~` expanded; ValueError (a message for the user) for what no
    system call could take: a NUL byte, a lone surrogate, `~user` of an unknown user."""
    if "\0" in text:
        raise ValueError("a path cannot contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a path cannot contain a lone surrogate character") from None
    try:
        return Path(text).expanduser()
    except RuntimeError:  # pathlib's word for "no such user" (or no home directory)
        user = text[1:].split("/", 1)[0]
        who = f"user {quoted(user)}" if user else "home directory"
        raise ValueError(f"cannot expand {text.split('/', 1)[0][:40]}: unknown {who}") from None


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    path = usable_path(str(value))
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        return Path(base) / path
    return path


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


def _condition_syntax(text: str) -> str:
    try:
        parse_condition(text)
    except ConditionError as exc:
        raise ValueError(str(exc)) from None
    return text


# One of a probe's `conditions`: its syntax is checked here, at the item, and which
# placeholders the probe's kind can fill by ProbeSpec.condition_problems (the loader's).
ConditionText = Annotated[str, AfterValidator(_condition_syntax)]
"""A path; relative ones are relative to the config file's directory."""


@functools.cache
def _takes_numbers(annotation: object) -> bool:
    """Whether a field of this type takes int or float values and no booleans."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _takes_numbers(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(members) and all(_takes_numbers(a) for a in members)
    return False


class StrictModel(BaseModel):
    """Unknown keys are errors (the loader adds "did you mean"). Frozen: config is a value."""

    # coerce_numbers_to_str: Go's yaml.v3 (EaseProbe) reads `name: 2024` or `chat_id: -100123`
    # into a string field as written; an EaseProbe file must load unchanged here too.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        coerce_numbers_to_str=True,
        # A printed ValidationError must never carry the raw input (a DSN, a password).
        hide_input_in_errors=True,
    )

    # Keys EaseProbe defines for this section that we accept and do not act on: the loader
    # removes them with one warning each, so an EaseProbe file loads unchanged.
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads `true` as 1 where a number is expected: `factor: true` would load as
        # 1 (and `probe schema` refuse it; found by tests/config/test_fuzz.py). A number's
        # place takes numbers, and text holding one (`${VAR}`), never a boolean.
        name = info.field_name
        field = cls.model_fields.get(name) if name else None
        if isinstance(value, bool) and field and _takes_numbers(cast(Hashable, field.annotation)):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


class AlertSpec(StrictModel):
    strategy: Literal["regular", "increment", "exponent"] = "regular"
    factor: int = Field(default=1, ge=1, le=MAX_ALERT_FACTOR)
    max: int = Field(default=1, ge=1, le=MAX_ALERTS)


def _distinct_thresholds(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError("a threshold is listed twice")
    return sorted(values, reverse=True)


# Certificate expiry warnings (tls and https probes): durations before expiry, largest first.
ExpiryWarnings = Annotated[
    list[Annotated[Duration, _positive("an expiry warning")]],
    AfterValidator(_distinct_thresholds),
]


class FlapSpec(StrictModel):
    """Flapping: more than `changes` status changes within `window` (0 changes: never)."""

    changes: int = Field(default=5, ge=0, le=10_000)
    window: Annotated[
        Duration, _positive("the flap window"), _at_most(7 * 86400.0, "the flap window")
    ] = 600.0


class ProbeDefaults(StrictModel):
    """`settings.probe`: defaults every probe inherits unless it sets its own."""

    interval: Interval = 60.0
    timeout: Timeout = 30.0
    failure: int = Field(default=1, ge=1, le=MAX_THRESHOLD)
    success: int = Field(default=1, ge=1, le=MAX_THRESHOLD)
    concurrency: int = Field(default=256, ge=1, le=MAX_CONCURRENCY)
    # Processes that check (probe.shards): 1 checks in the main process alone.
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    alert: AlertSpec = AlertSpec()
    flap: FlapSpec = FlapSpec()


class ProbeSpec(StrictModel):
    """Keys every probe has. Subclasses set `kind` and add their own keys."""

    kind: ClassVar[str] = ""
    # The placeholders this kind's prober fills for `conditions`, beyond [CONNECTED],
    # [RESPONSE_TIME] and [IP] (probe.conditions.placeholders).
    condition_placeholders: ClassVar[frozenset[str]] = frozenset()
    # Named entries a section of this kind may hold beside its list (EaseProbe's ssh and host
    # sections: `{bastion: {NAME: endpoint}, servers: [...]}`): key -> the model of an entry.
    # With any, the section may be such a mapping; the loader validates the entries and hands
    # them to each probe's validators in the validation context, under "named".
    section_entries: ClassVar[Mapping[str, type[BaseModel]]] = {}
    # False for kinds whose results come from elsewhere (push probes: their jobs' calls):
    # the scheduler never checks them, in this process or a worker.
    scheduled: ClassVar[bool] = True
    # Secret keys no two probes of this kind may share (the loader says which two do).
    unique_secrets: ClassVar[tuple[str, ...]] = ()
    # Keys of `settings.probe` this kind does not inherit: each probe says its own.
    not_inherited: ClassVar[frozenset[str]] = frozenset()

    name: str = Field(min_length=1)
    enabled: bool = True
    interval: Interval = 60.0
    timeout: Timeout = 30.0
    failure: int = Field(default=1, ge=1, le=MAX_THRESHOLD)
    success: int = Field(default=1, ge=1, le=MAX_THRESHOLD)
    channels: list[str] = Field(default_factory=list)
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    alert: AlertSpec = AlertSpec()
    flap: FlapSpec = FlapSpec()
    conditions: list[ConditionText] = Field(default_factory=list)
    # What full health needs beyond `conditions` (same syntax): an up probe failing one is
    # degraded (shown yellow, notified to degraded_channels, counted up in the SLA).
    degraded: list[ConditionText] = Field(default_factory=list)
    degraded_channels: list[str] | None = None
    # The probe's own maintenance windows (probe.config.maintenance; top-level ones are the
    # loader's): alerts muted, time counted for no SLA.
    maintenance: list[WindowSpec] = Field(default_factory=list)
    # Probes this one needs (a router, a database): while one of them is down, this probe's
    # alerts are folded into that one's. Names are checked against the file by the loader.
    depends_on: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @field_validator("depends_on")
    @classmethod
    def _distinct_dependencies(cls, names: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f'"{name}" is listed twice')
            seen.add(name)
        return names

    @model_validator(mode="after")
    def _not_its_own_dependency(self) -> ProbeSpec:
        if self.name in self.depends_on:
            raise ValueError("depends_on: a probe cannot depend on itself")
        return self

    def endpoint(self) -> str:
        """What the probe checks, as shown to users, with credentials removed."""
        raise NotImplementedError

    def result_interval(self) -> float:
        """How far apart this probe's results come when all is well: a longer gap between
        two (the prober was not running) counts for no SLA (the tracker's gap rule)."""
        return self.interval

    def expiry_warning_thresholds(self) -> tuple[float, ...]:
        """Seconds before a certificate's expiry at which to warn, largest first (kinds that
        read certificates: tls, http)."""
        return ()

    def parsed_conditions(self) -> tuple[Condition, ...]:
        """The conditions, parsed (once: the parser caches by text)."""
        return tuple(parse_condition(text) for text in self.conditions)

    def parsed_degraded(self) -> tuple[Condition, ...]:
        """The `degraded` conditions, parsed."""
        return tuple(parse_condition(text) for text in self.degraded)

    def condition_problems(self) -> list[tuple[int, str]]:
        """(index, message) of each condition reading a placeholder this kind cannot fill."""
        problems = []
        for index, condition in enumerate(self.parsed_conditions()):
            try:
                check_placeholders(condition, self.kind, self.condition_placeholders)
            except ConditionError as exc:
                problems.append((index, str(exc)))
        return problems

    def degraded_problems(self) -> list[tuple[int, str]]:
        """(index, message) of each `degraded` condition reading a placeholder this kind
        cannot fill."""
        problems = []
        for index, condition in enumerate(self.parsed_degraded()):
            try:
                check_placeholders(condition, self.kind, self.condition_placeholders)
            except ConditionError as exc:
                problems.append((index, str(exc)))
        return problems


class RetrySettings(StrictModel):
    times: int = Field(default=3, ge=0, le=MAX_RETRIES)
    interval: Duration = 5.0


class GroupSettings(StrictModel):
    """`settings.notify.group`: down and recovery notifications wait `wait` per notifier (from
    the first one waiting); more than `threshold` waiting then go out as one summary. `wait: 0s`
    sends each at once (no grouping). probe/notify/grouping.py applies it."""

    wait: Duration = 5.0
    threshold: int = Field(default=5, ge=1, le=1_000_000)


class NotifySettings(StrictModel):
    dry: bool = False
    timeout: Duration = 10.0
    retry: RetrySettings = RetrySettings()
    max_age: Duration = 86400.0
    group: GroupSettings = GroupSettings()


class Event(StrEnum):
    """What a notification is about; a notifier's `template:` keys name one."""

    DOWN = "down"
    RECOVERY = "recovery"
    FLAPPING = "flapping"  # a probe began to flap: its down/recovery alerts are silenced
    STABLE = "stable"  # a flapping probe held one status for its flap window
    EXPIRY = "expiry"  # a certificate's remaining time crossed an expiry warning threshold
    DEGRADED = "degraded"  # an up probe failing (status "degraded") or passing (status "up")
    # its `degraded` conditions again
    SLA = "sla"
    TEST = "test"
    GROUP = "group"  # one summary of several downs and recoveries (probe/notify/grouping.py)


class NotifierSpec(StrictModel):
    """Keys every notifier has. Unset `dry`/`timeout`/`retry` come from `settings.notify`."""

    kind: ClassVar[str] = ""

    name: str = Field(min_length=1)
    channels: list[str] = Field(default_factory=list)
    dry: bool | None = None
    timeout: Duration | None = None
    retry: RetrySettings | None = None
    # Per-event template overrides: inline jinja2 source, or a file holding it.
    template: dict[Event, str] = Field(default_factory=dict)
    template_file: dict[Event, ConfigPath] = Field(default_factory=dict)

    def target(self) -> str:
        """Where messages go, as shown to users: no token, no webhook path or query."""
        return self.kind


def _hh_mm(value: str) -> str:
    # HH:MM or HH:MM:SS: EaseProbe configs often say "23:59:59" so that a report closes the day.
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", value):
        shown = quoted(value)
        raise ValueError(
            f'expected a time of day "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59), got {shown}'
        )
    return value


class SLASettings(StrictModel):
    # EaseProbe's SLA data file (`data`, `backups`): our results are in the store.
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"data", "backups"})

    schedule: Literal["none", "minutely", "hourly", "daily", "weekly", "monthly"] = "daily"
    time: Annotated[str, AfterValidator(_hh_mm)] = "00:00"
    channels: list[str] = Field(default_factory=list)
    # EaseProbe's `debug: true`: a report every minute whatever `schedule` says (minutely).
    debug: bool = False

    @model_validator(mode="before")
    @classmethod
    def _debug_is_minutely(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("debug") is True:
            return {**data, "schedule": "minutely"}
        return data


class HTTPAccessLogSettings(StrictModel):
    """`settings.http.log`: the web server's access log, one line per request (EaseProbe's
    keys). `size` is in MB; `self_rotate: false` leaves rotation to an outside tool such as
    logrotate (the file is reopened when it is moved away)."""

    # EaseProbe deletes old files by age and gzips them; we keep `backups` files instead.
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"age", "compress"})

    file: ConfigPath
    self_rotate: bool = True
    size: int = Field(default=10, ge=1, le=1024 * 1024)
    backups: int = Field(default=5, ge=1, le=1000)


class HTTPServerSettings(StrictModel):
    ip: str = "127.0.0.1"
    port: int = Field(default=8181, ge=0, le=65535)
    refresh: Duration = 60.0
    # Either or both protect everything but /healthz and the badges: the token for API
    # clients (Authorization: Bearer), username/password for people with a browser (Basic).
    token: SecretStr | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    log: HTTPAccessLogSettings | None = None
    # Clients connected at once; more are closed as they arrive, so clients can never use up
    # the descriptors the checks need (lowered further under a small RLIMIT_NOFILE).
    max_connections: int = Field(default=100, ge=1, le=100_000)

    @field_validator("ip")
    @classmethod
    def _some_address(cls, value: str) -> str:
        if not value.strip():
            # An empty host binds every interface: the opposite of what leaving it out means.
            raise ValueError(
                "empty: it would listen on every interface; write 127.0.0.1 (the default),"
                " or 0.0.0.0 for every interface"
            )
        return value

    @field_validator("token", "password")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            # `${PROBE_TOKEN:-}` with the variable unset: an empty secret anyone can send.
            raise ValueError("empty (an unset environment variable?); set it or remove the key")
        return value

    @model_validator(mode="after")
    def _basic_pair(self) -> HTTPServerSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("set username and password together (basic auth), or neither")
        if self.username is not None and ":" in self.username:
            raise ValueError("username: a ':' cannot be sent in basic auth")
        return self

    def basic_auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password.get_secret_value()


class StoreSettings(StrictModel):
    # validate_default: the default is relative too, so it must be resolved against the
    # config file's directory like a path the user wrote.
    path: ConfigPath = Field(default=Path("data/probe.db"), validate_default=True)
    # Raw results older than this are deleted; the SLA figures come from hourly rollups, so a
    # retention under an hour would lose results before they were rolled up.
    retention: Annotated[Duration, _at_least(3600.0, "retention")] = 7 * 86400.0
    # How long the writer gathers results before one commit: the most a crash (kill -9, the
    # OOM killer, power loss) can lose. 0s commits as soon as the writer gets to a result
    # (more CPU and disk writes). SIGINT/SIGTERM always flush, whatever this says.
    flush: Annotated[Duration, _at_most(60.0, "flush")] = 0.25


class ReloadSettings(StrictModel):
    """`settings.reload`: reloading the config while running (SIGHUP and POST /-/reload
    always work; `watch` adds reloading when the file, or a file it names, changes)."""

    watch: bool = False
    # How often the watched files' mtimes are looked at (their content hash only on change).
    every: Annotated[Duration, _at_least(0.1, "reload.every")] = 2.0


class StatusSettings(StrictModel):
    path: ConfigPath = Field(default=Path("public/index.html"), validate_default=True)


def _log_level(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("panic", "fatal"):
        return "critical"
    return value.lower() if isinstance(value, str) else value


class LogSettings(StrictModel):
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset(
        {"self_rotate", "size", "age", "backups", "compress"}
    )

    # panic and fatal are EaseProbe's (logrus) highest levels: both log only the most severe.
    level: Annotated[
        Literal["debug", "info", "warning", "warn", "error", "critical"],
        BeforeValidator(_log_level),
        WithJsonSchema(
            {"enum": ["debug", "info", "warning", "warn", "error", "critical", "fatal", "panic"]}
        ),
    ] = "info"
    file: ConfigPath | None = None
    format: Literal["text", "json"] = "text"


class Settings(StrictModel):
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"timeformat", "pid"})

    name: str = "probe"
    timezone: str = "UTC"
    probe: ProbeDefaults = ProbeDefaults()
    notify: NotifySettings = NotifySettings()
    sla: SLASettings = SLASettings()
    http: HTTPServerSettings = HTTPServerSettings()
    # EaseProbe's `icon`: the status page's favicon and header logo (http(s) or relative).
    icon: Annotated[str, AfterValidator(icon_url)] | None = None
    # Built from {} (not a ready instance) so their relative default paths are resolved.
    store: StoreSettings = Field(default_factory=dict, validate_default=True)
    status: StatusSettings = Field(default_factory=dict, validate_default=True)
    log: LogSettings = LogSettings()
    reload: ReloadSettings = ReloadSettings()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone "{value[:60]}" (an IANA name such as UTC or Europe/Berlin)'
            ) from None
        return value
