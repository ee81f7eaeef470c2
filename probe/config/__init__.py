"""The config file: loading (YAML, env, positions), models and durations.

`load_config(path)` returns a validated `Config` or raises `ConfigError` with one located line
(`FILE:LINE:COL: key.path: message`) per problem.
"""

from __future__ import annotations

from probe.config.loader import Config, SpecFactory, find_config_path, load_config
from probe.config.models import ProbeSpec, Settings
from probe.durations import format_duration, parse_duration

__all__ = [
    "Config",
    "ProbeSpec",
    "Settings",
    "SpecFactory",
    "find_config_path",
    "format_duration",
    "load_config",
    "parse_duration",
]
