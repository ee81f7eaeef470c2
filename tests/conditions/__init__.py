"""Conditions (Gatus) and EaseProbe's eval."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError


def load_problems(tmp_path: Path, text: str) -> list[str]:
    """The problems `probes.yaml` holding `text` loads with, as `probes.yaml:LINE:COL: ...`."""
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]


def has_problem(problems: list[str], where: str, *words: str) -> bool:
    """Whether one problem starts with `where` and says every one of `words`."""
    return any(p.startswith(where) and all(w in p for w in words) for p in problems)
