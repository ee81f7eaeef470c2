"""Relative paths, the defaults included, are relative to the config file's directory."""

from __future__ import annotations

import os

from probe.assembly import load_config


def test_default_store_and_status_paths_follow_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "p.yaml").write_text("tcp:\n  - {name: c, host: '127.0.0.1:1'}\n")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config("conf/p.yaml")
    assert config.settings.store.path == folder / "data" / "probe.db"
    assert config.settings.status.path == folder / "public" / "index.html"


def test_written_relative_paths_follow_the_config_file(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "settings:\n  store: {path: db/x.db, retention: 1d}\n  log: {file: logs/p.log}\n"
    )
    config = load_config(tmp_path / "p.yaml")
    assert config.settings.store.path == tmp_path / "db" / "x.db"
    assert config.settings.log.file == tmp_path / "logs" / "p.log"
    assert os.path.isabs(config.settings.store.path)


def test_unknown_timezone_is_a_located_error(tmp_path):
    import pytest

    from probe.errors import ConfigError

    (tmp_path / "p.yaml").write_text("settings:\n  timezone: Mars/Olympus\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "p.yaml")
    assert str(err.value).endswith(
        'p.yaml:2:13: settings.timezone: unknown time zone "Mars/Olympus"'
        " (an IANA name such as UTC or Europe/Berlin)"
    )
