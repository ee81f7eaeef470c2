"""Configs for tests that run the whole App: its web server must take a free port, never
8181, which a developer's own `make run` may hold while the tests run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from probe.config import Config

__all__ = ["free_http_port", "use_free_http_port"]


def free_http_port(config: Config) -> Config:
    settings = config.settings
    http = settings.http.model_copy(update={"port": 0})
    return dataclasses.replace(config, settings=settings.model_copy(update={"http": http}))


def use_free_http_port(path: Path) -> None:
    """Rewrite the YAML file at `path` with settings.http.port: 0 (for `probe run` in a
    subprocess). Only for valid configs: comments and layout are not kept."""
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("settings", {}).setdefault("http", {})["port"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
