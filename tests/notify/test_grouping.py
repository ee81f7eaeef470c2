"""Grouped notifications (settings.notify.group): the config keys."""

from __future__ import annotations

from pathlib import Path

from probe.config.models import GroupSettings
from tests.config.conftest import ConfigFiles


def test_group_settings_defaults_and_keys(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    assert files.load("settings: {}\n").settings.notify.group == GroupSettings()
    assert (GroupSettings().wait, GroupSettings().threshold) == (5.0, 5)
    text = "settings:\n  notify:\n    group: {wait: 300ms, threshold: 20}\n"
    group = files.load(text).settings.notify.group
    assert (group.wait, group.threshold) == (0.3, 20)
    assert files.load("settings: {notify: {group: {wait: 0s}}}\n").settings.notify.group.wait == 0


def test_bad_group_settings_are_located_errors(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    text = "settings:\n  notify:\n    group: {wait: -1s, threshold: 0, size: 3}\n"
    assert files.errors(text) == [
        'probes.yaml:3:19: settings.notify.group.wait: invalid duration "-1s": must not be'
        " negative",
        "probes.yaml:3:35: settings.notify.group.threshold: must be at least 1, got 0",
        'probes.yaml:3:38: settings.notify.group.size: unknown key "size"',
    ]
