"""Pydantic models of the config: settings and the keys every probe shares.

Each prober kind declares its own spec (a subclass of `ProbeSpec`) next to its code, in
probe/probers/<kind>.py. Durations are float seconds; the loader (loader.py) fills each probe's
unset `interval`/`timeout`/`failure`/`success`/`alert` from `settings.probe` before validation.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from probe.config.durations import parse_duration

__all__ = [
    "AlertSpec",
    "ConfigPath",
    "Duration",
    "HTTPServerSettings",
    "LogSettings",
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


Duration = Annotated[float, BeforeValidator(_to_seconds), Field(ge=0)]
"""A duration in seconds, written `250ms`, `30s`, `1m30s`, `1.5h`, `7d`."""


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value.expanduser()
    return value.expanduser()


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path; relative ones are relative to the config file's directory."""


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


class AlertSpec(StrictModel):
    strategy: Literal["regular", "increment", "exponent"] = "regular"
    factor: int = Field(default=1, ge=1)
    max: int = Field(default=1, ge=1)


class ProbeDefaults(StrictModel):
    """`settings.probe`: defaults every probe inherits unless it sets its own."""

    interval: Duration = 60.0
    timeout: Duration = 30.0
    failure: int = Field(default=1, ge=1)
    success: int = Field(default=1, ge=1)
    concurrency: int = Field(default=256, ge=1)
    alert: AlertSpec = AlertSpec()


class ProbeSpec(StrictModel):
    """Keys every probe has. Subclasses set `kind` and add their own keys."""

    kind: ClassVar[str] = ""

    name: str = Field(min_length=1)
    enabled: bool = True
    interval: Duration = 60.0
    timeout: Duration = 30.0
    failure: int = Field(default=1, ge=1)
    success: int = Field(default=1, ge=1)
    channels: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    alert: AlertSpec = AlertSpec()

    def endpoint(self) -> str:
        """What the probe checks, as shown to users, with credentials removed."""
        raise NotImplementedError


class RetrySettings(StrictModel):
    times: int = Field(default=3, ge=0)
    interval: Duration = 5.0


class NotifySettings(StrictModel):
    dry: bool = False
    timeout: Duration = 10.0
    retry: RetrySettings = RetrySettings()
    max_age: Duration = 86400.0


def _hh_mm(value: str) -> str:
    # HH:MM or HH:MM:SS: EaseProbe configs often say "23:59:59" so that a report closes the day.
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", value):
        shown = json.dumps(value[:40], ensure_ascii=False)
        raise ValueError(
            f'expected a time of day "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59), got {shown}'
        )
    return value


class SLASettings(StrictModel):
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset({"data", "backups"})

    schedule: Literal["none", "minutely", "hourly", "daily", "weekly", "monthly"] = "daily"
    time: Annotated[str, AfterValidator(_hh_mm)] = "00:00"
    channels: list[str] = Field(default_factory=list)


class HTTPServerSettings(StrictModel):
    ip: str = "127.0.0.1"
    port: int = Field(default=8181, ge=0, le=65535)
    refresh: Duration = 60.0
    # Either or both protect everything but /healthz and the badges: the token for API
    # clients (Authorization: Bearer), username/password for people with a browser (Basic).
    token: SecretStr | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None

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
    retention: Duration = 7 * 86400.0


class StatusSettings(StrictModel):
    path: ConfigPath = Field(default=Path("public/index.html"), validate_default=True)


class LogSettings(StrictModel):
    easeprobe_ignored: ClassVar[frozenset[str]] = frozenset(
        {"self_stat", "size", "age", "backups", "compress"}
    )

    level: Literal["debug", "info", "warning", "warn", "error"] = "info"
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
    # Built from {} (not a ready instance) so their relative default paths are resolved.
    store: StoreSettings = Field(default_factory=dict, validate_default=True)
    status: StatusSettings = Field(default_factory=dict, validate_default=True)
    log: LogSettings = LogSettings()

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
