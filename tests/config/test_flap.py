"""`flap:` under settings.probe and per probe: merged key by key, bounded, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError


def test_defaults_and_a_probe_s_own_keys_merge(tmp_path: Path):
    path = tmp_path / "probes.yaml"
    path.write_text(
        "settings:\n"
        "  probe: {flap: {changes: 8}}\n"
        "tcp:\n"
        "  - {name: a, host: 'h:1'}\n"
        "  - {name: b, host: 'h:1', flap: {window: 1h}}\n"
        "  - {name: c, host: 'h:1', flap: {changes: 0}}\n"
    )
    specs = {s.name: s.flap for s in load_config(path, environ={}).probes}
    assert (specs["a"].changes, specs["a"].window) == (8, 600.0)
    assert (specs["b"].changes, specs["b"].window) == (8, 3600.0)
    assert specs["c"].changes == 0


@pytest.mark.parametrize(
    ("flap", "where", "words"),
    [
        ("{changes: -1}", "tcp[0].flap.changes", "must be at least 0"),
        ("{window: 0s}", "tcp[0].flap.window", "the flap window"),
        ("{window: 8d}", "tcp[0].flap.window", "the flap window"),
        ("{chnages: 3}", "tcp[0].flap", "chnages"),
    ],
)
def test_bad_values_are_located(tmp_path: Path, flap: str, where: str, words: str):
    path = tmp_path / "probes.yaml"
    path.write_text(f"tcp:\n  - {{name: a, host: 'h:1', flap: {flap}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert f": {where}" in str(problem) and words in str(problem), str(problem)
