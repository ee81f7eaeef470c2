from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from probe.config import Config, load_config
from probe.errors import ConfigError
from tests.config.specs import KINDS


class ConfigFiles:
    """Writes `probes.yaml` (or another name) in a temporary directory and loads it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, text: str | bytes, name: str = "probes.yaml") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def load(self, text: str, env: Mapping[str, str] | None = None, **kw: Any) -> Config:
        """Loads with `KINDS` (tests/config/specs.py), or what `kw` says instead."""
        return load_config(self.write(text), environ=env or {}, **{**KINDS, **kw})

    def errors(self, text: str | bytes, env: Mapping[str, str] | None = None) -> list[str]:
        """The problems as `probes.yaml:LINE:COL: path: message` lines."""
        path = self.write(text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=env or {}, **KINDS)
        return [self.short(str(p)) for p in info.value.problems]

    def short(self, line: str) -> str:
        return line.removeprefix(f"{self.root}/")


@pytest.fixture
def files(tmp_path: Path) -> ConfigFiles:
    return ConfigFiles(tmp_path)
