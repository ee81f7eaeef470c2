"""The config file: loading (YAML, env, positions) and models.

`load_config(path, sections=..., ...)` (a file, or with `folder=True` a folder of files)
returns a validated `Config` or raises `ConfigError` with one located line
(`FILE:LINE:COL: key.path: message`) per problem. The package is a leaf: it knows no prober
or notifier; the caller names the sections, drivers and notifier kinds a file may hold
(probe.assembly.load_config passes the real registries).
"""

from __future__ import annotations

from probe.config.loader import (
    Config,
    ConfigFile,
    NotifierSpecFactory,
    SpecFactory,
    find_config_path,
    load_config,
)
from probe.config.models import ProbeSpec, Settings
from probe.durations import format_duration, parse_duration

__all__ = [
    "Config",
    "ConfigFile",
    "NotifierSpecFactory",
    "ProbeSpec",
    "Settings",
    "SpecFactory",
    "find_config_path",
    "format_duration",
    "load_config",
    "parse_duration",
]
