"""probe.config.diff: what a reload applies, from two configs loaded for real from files."""

from __future__ import annotations

from pathlib import Path

import trustme

from probe.assembly import load_config
from probe.config.diff import diff_configs, fingerprints, input_files, kept_notifiers
from probe.config.loader import Config


def write_ca(path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(path))


def load(path: Path, text: str) -> tuple[Config, dict[Path, str]]:
    path.write_text(text)
    config = load_config(path)
    return config, fingerprints(input_files(config))


BASE = """
settings:
  store: {path: data/p.db}
tcp:
  - {name: a, host: "127.0.0.1:1"}
  - {name: b, host: "127.0.0.1:2", enabled: false}
tls:
  - {name: t, host: "127.0.0.1:3", root_ca_pem_path: ca.pem}
notify:
  webhook:
    - {name: hook, url: "http://127.0.0.1:9/h", template_file: {down: down.j2}}
    - {name: other, url: "http://127.0.0.1:9/o"}
"""


def test_the_same_file_changes_nothing(tmp_path: Path) -> None:
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("down {{ probe }}")
    old, before = load(tmp_path / "p.yaml", BASE)
    new, now = load(tmp_path / "p.yaml", BASE)
    diff = diff_configs(old, new, before, now)
    assert not diff.probes and not diff.notifiers and not diff.web and not diff.restart_needed
    assert diff.unchanged == 2
    assert kept_notifiers(old, new, before, now) == {"hook", "other"}
    assert set(input_files(old)) == {
        tmp_path / "p.yaml",
        tmp_path / "ca.pem",
        tmp_path / "down.j2",
    }


def test_a_file_a_probe_or_notifier_names_changes_it(tmp_path: Path) -> None:
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("down {{ probe }}")
    old, before = load(tmp_path / "p.yaml", BASE)
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("DOWN {{ probe }}")
    new, now = load(tmp_path / "p.yaml", BASE)
    diff = diff_configs(old, new, before, now)
    assert [s.name for s in diff.changed] == ["t"]
    assert diff.notifiers
    assert kept_notifiers(old, new, before, now) == {"other"}


def test_enabling_is_adding_and_settings_kept_until_restart_are_named(tmp_path: Path) -> None:
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("d")
    old, before = load(tmp_path / "p.yaml", BASE)
    text = (
        BASE.replace("enabled: false", "enabled: true")
        .replace("store: {path: data/p.db}", "store: {path: data/q.db}\n  probe: {workers: 2}")
        .replace('  - {name: a, host: "127.0.0.1:1"}\n', "")
        .replace("settings:", "settings:\n  http: {port: 9999}\n  reload: {watch: true}")
    )
    new, now = load(tmp_path / "p.yaml", text)
    diff = diff_configs(old, new, before, now)
    assert [s.name for s in diff.added] == ["b"] and diff.removed == ["a"]
    assert diff.restart_needed == ["settings.store", "settings.probe.workers"]
    assert diff.web and diff.watch and not diff.notifiers
    assert diff.to_json()["added"] == ["b"]


def test_notify_settings_rebuild_every_notifier(tmp_path: Path) -> None:
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("d")
    old, before = load(tmp_path / "p.yaml", BASE)
    new, now = load(
        tmp_path / "p.yaml", BASE.replace("settings:", "settings:\n  timezone: Asia/Tokyo")
    )
    diff = diff_configs(old, new, before, now)
    assert diff.notifiers and diff.web and diff.reports
    assert kept_notifiers(old, new, before, now) == set()


def test_top_level_maintenance_windows_are_a_change_of_their_own(tmp_path: Path) -> None:
    write_ca(tmp_path / "ca.pem")
    (tmp_path / "down.j2").write_text("down {{ probe }}")
    old, before = load(tmp_path / "p.yaml", BASE)
    window = 'maintenance:\n  - {every: daily, start: "02:00", duration: 1h}\n'
    new, now = load(tmp_path / "p.yaml", BASE + window)
    diff = diff_configs(old, new, before, now)
    assert diff.maintenance and not diff.probes
    assert diff.summary().endswith("maintenance windows changed")
    assert diff.to_json()["maintenance_changed"] is True
    assert not diff_configs(new, new, now, now).maintenance
