"""A folder of config files (`-c DIR`): which files, their order, how they merge, and every
problem located in its own file."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from probe.config import Config, ConfigFile, load_config
from probe.config.diff import fingerprints, input_files
from probe.errors import ConfigError
from tests.config.specs import KINDS, web


class Folder:
    """A config folder in a temporary directory: files written by name, loaded as one."""

    def __init__(self, root: Path) -> None:
        self.root = root / "conf.d"
        self.root.mkdir()

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def load(self) -> Config:
        return load_config(self.root, folder=True, environ={}, **KINDS)

    def errors(self) -> list[str]:
        """The problems, with the folder's path left out wherever it is named."""
        with pytest.raises(ConfigError) as info:
            self.load()
        return [str(p).replace(f"{self.root}/", "") for p in info.value.problems]


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def names(config: Config) -> list[str]:
    return [p.name for p in config.probes]


def test_files_merge_in_name_order(folder: Folder) -> None:
    folder.write(
        "b.yaml",
        """
        tcp:
          - {name: b-tcp, host: "127.0.0.1:1"}
        http:
          - {name: b-web, url: "http://127.0.0.1:2/"}
        notify:
          log:
            - {name: b-log, file: b.log}
        maintenance:
          - {start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z", probes: [a-web]}
        """,
    )
    folder.write(
        "a.yml",
        """
        http:
          - {name: a-web, url: "http://127.0.0.1:1/"}
        notify:
          log:
            - {name: a-log, file: a.log}
        maintenance:
          - {start: "2026-02-01T00:00:00Z", end: "2026-02-01T01:00:00Z"}
        """,
    )
    folder.write("10-c.yaml", "http:\n  - {name: c-web, url: 'http://127.0.0.1:3/'}\n")
    config = folder.load()
    # Code point order: "10-c" before "a", "a.yml" before "b.yaml".
    assert names(config) == ["c-web", "a-web", "b-tcp", "b-web"]
    assert [n.name for n in config.notifiers] == ["a-log", "b-log"]
    assert [w.probes for w in config.maintenance] == [None, ["a-web"]]
    assert config.path == folder.root and config.folder
    assert config.files == (
        ConfigFile(folder.root / "10-c.yaml", 1, 0),
        ConfigFile(folder.root / "a.yml", 1, 1),
        ConfigFile(folder.root / "b.yaml", 2, 1),
    )
    # A relative notifier path is relative to the folder, as in any file of it.
    assert [str(n.model_dump()["file"]) for n in config.notifiers] == [
        f"{folder.root}/a.log",
        f"{folder.root}/b.log",
    ]


def test_only_visible_yaml_files_directly_in_the_folder_are_read(folder: Folder) -> None:
    folder.write("probes.yaml", "http:\n  - {name: web, url: 'http://127.0.0.1:1/'}\n")
    # Each of these would be an error if it were read.
    for name in (".#probes.yaml", ".hidden.yaml", "probes.yaml~", "probes.yaml.bak", "notes.txt"):
        folder.write(name, "nope: [\n")
    folder.write("sub/more.yaml", "nope: [\n")
    (folder.root / "dir.yaml").mkdir()
    config = folder.load()
    assert names(config) == ["web"]
    assert [f.path.name for f in config.files] == ["probes.yaml"]


def test_a_folder_without_config_files_is_an_error(folder: Folder) -> None:
    folder.write("README.txt", "config goes here\n")
    folder.write(".probes.yaml", "http: []\n")
    assert folder.errors() == [
        f"{folder.root}: no config files in the folder (it reads *.yaml and *.yml, "
        "not hidden files)"
    ]


def test_a_directory_is_a_folder_only_when_asked(folder: Folder) -> None:
    folder.write("probes.yaml", "http: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(folder.root, environ={}, **KINDS)
    assert str(info.value) == f"{folder.root}: cannot read config: Is a directory"


def test_a_probe_name_is_unique_across_files(folder: Folder) -> None:
    folder.write(
        "a.yaml",
        """
        tcp:
          - {name: db, host: "127.0.0.1:1"}
        http:
          - name: api
            url: http://127.0.0.1:1/
        """,
    )
    folder.write(
        "b.yaml",
        """
        http:
          - name: web
            url: http://127.0.0.1:2/
          - name: api
            url: http://127.0.0.1:3/
          - name: web
            url: http://127.0.0.1:4/
        """,
    )
    assert folder.errors() == [
        'b.yaml:4:11: http[1].name: duplicate probe name "api" (first at a.yaml:4:11)',
        # Within one file, as a single config file says it.
        'b.yaml:6:11: http[2].name: duplicate probe name "web" (first at line 2)',
    ]


def test_a_notifier_name_is_unique_across_files(folder: Folder) -> None:
    folder.write("a.yaml", "notify:\n  log:\n    - {name: ops, file: a.log}\n")
    folder.write("b.yaml", "notify:\n  log:\n    - name: ops\n      file: b.log\n")
    assert folder.errors() == [
        'b.yaml:3:13: notify.log[0].name: duplicate notifier name "ops" (first at a.yaml:3:14)'
    ]


def test_each_problem_is_located_in_its_own_file(folder: Folder) -> None:
    folder.write(
        "a.yaml",
        """
        http:
          - name: a
            url: http://127.0.0.1:1/
            tiemout: 5s
        """,
    )
    folder.write(
        "b.yaml",
        """
        # the second file's lines count from its own top
        tcp:
          - name: b
            host: "127.0.0.1:1"
            depends_on: [a, nope]
        http:
          - name: c
            url: http://127.0.0.1:2/
            failure: zero
        bogus: 1
        """,
    )
    assert folder.errors() == [
        'a.yaml:4:5: http[0].tiemout: unknown key "tiemout" (did you mean "timeout"?)',
        'b.yaml:5:21: tcp[0].depends_on[1]: no probe is named "nope"',
        'b.yaml:9:14: http[0].failure: expected an integer, got "zero"',
        'b.yaml:10:1: bogus: unknown section "bogus" (known: http, maintenance, notify, '
        "settings, tcp)",
    ]


def test_unreadable_files_are_reported_together_before_validation(folder: Folder) -> None:
    folder.write("a.yaml", "http:\n  - {name: a, url: 'http://127.0.0.1:1/'\n")
    folder.write("b.yaml", "- just\n- a list\n")
    folder.write("c.yaml", "http:\n  - {name: c, url: 'http://127.0.0.1:1/', bad: 1}\n")
    errors = folder.errors()
    assert [e.split(":")[0] for e in errors] == ["a.yaml", "b.yaml"]
    assert errors[0].startswith("a.yaml:3:1: invalid YAML:")
    assert errors[1] == (
        "b.yaml:1:1: the top level must be a mapping of sections (http, maintenance, notify, "
        "settings, tcp), not a list"
    )


def test_a_link_that_cannot_be_followed_is_reported_by_its_name(folder: Folder) -> None:
    folder.write("a.yaml", "tcp:\n  - {name: a, host: '127.0.0.1:1'}\n")
    (folder.root / "loop.yaml").symlink_to("loop.yaml")  # a link to itself
    errors = folder.errors()
    assert len(errors) == 1 and errors[0].startswith("loop.yaml: cannot read config: ")


def test_an_empty_file_loads_nothing_and_says_so(folder: Folder) -> None:
    folder.write("a.yaml", "# all commented out\n# http: []\n")
    folder.write("b.yaml", "tcp:\n  - {name: b, host: '127.0.0.1:1'}\n")
    config = folder.load()
    assert names(config) == ["b"]
    assert [str(w).replace(f"{folder.root}/", "") for w in config.warnings] == [
        "a.yaml: the file is empty; nothing is loaded from it"
    ]


def test_settings_may_be_in_one_file_only(folder: Folder) -> None:
    folder.write("a.yaml", "settings:\n  probe: {interval: 30s}\n")
    folder.write("b.yaml", "http: []\nsettings:\n  store: {path: x.db}\n")
    assert folder.errors() == [
        "b.yaml:2:1: settings: settings are already given in a.yaml:1:1; "
        "only one file of a folder may hold them"
    ]


def test_the_settings_of_one_file_are_the_defaults_of_every_file(folder: Folder) -> None:
    folder.write("a.yaml", "http:\n  - {name: a, url: 'http://127.0.0.1:1/'}\n")
    folder.write(
        "b.yaml",
        """
        settings:
          probe: {interval: 30s, timeout: 60s, failure: 4}
          store: {path: state/probe.db}
        tcp:
          - {name: b, host: "127.0.0.1:1", interval: 1m}
        """,
    )
    config = folder.load()
    a, b = config.probes
    assert (a.interval, a.timeout, a.failure) == (30, 30, 4)
    assert (b.interval, b.timeout, b.failure) == (60, 30, 4)
    assert config.settings.store.path == folder.root / "state/probe.db"
    # The cut timeout is said where it is written: in b.yaml.
    assert [str(w).replace(f"{folder.root}/", "") for w in config.warnings] == [
        "b.yaml:2:35: settings.probe.timeout: timeout 1m0s is longer than the interval 30s; "
        "using 30s"
    ]


def test_names_refer_across_files(folder: Folder) -> None:
    folder.write(
        "a.yaml",
        """
        http:
          - {name: app, url: "http://127.0.0.1:1/", depends_on: [db]}
        """,
    )
    folder.write(
        "b.yaml",
        """
        tcp:
          - {name: db, host: "127.0.0.1:1", depends_on: [app]}
        maintenance:
          - {start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z", probes: [app]}
        """,
    )
    # The cycle is reported at its first probe in file order, in its own file.
    assert folder.errors() == [
        'a.yaml:2:57: http[0].depends_on: a cycle of dependencies: "app" -> "db" -> "app"'
    ]
    folder.write("b.yaml", "tcp:\n  - {name: db, host: '127.0.0.1:1'}\n")
    assert folder.load().probes[0].depends_on == ["db"]


def test_relative_secret_files_are_read_from_the_folder(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder.write("secrets/pw", "s3cret\n")
    folder.write(
        "b.yaml",
        """
        http:
          - name: b
            url: http://127.0.0.1:1/
            username: u
            password_file: secrets/pw
            ca: certs/ca.pem
        """,
    )
    folder.write("a.yaml", "http:\n  - {name: a, url: 'http://127.0.0.1:1/'}\n")
    monkeypatch.chdir(folder.root.parent)  # not the folder: paths are relative to it anyway
    config = load_config(Path("conf.d"), folder=True, environ={}, **KINDS)
    b = web(config.probes[1])
    assert b.password == "s3cret"
    assert b.ca == folder.root.absolute() / "certs/ca.pem"
    assert config.secret_files == (folder.root.absolute() / "secrets/pw",)


def test_anchors_belong_to_their_own_file(folder: Folder) -> None:
    folder.write(
        "a.yaml",
        """
        x-web: &web {url: "http://127.0.0.1:1/"}
        http:
          - {<<: *web, name: a}
        """,
    )
    folder.write("b.yaml", "http:\n  - {<<: *web, name: b}\n")
    errors = folder.errors()
    assert len(errors) == 1 and errors[0].startswith("b.yaml:2:10: invalid YAML:")
    assert "undefined alias" in errors[0]


def test_the_fingerprint_of_a_folder_is_its_list_of_config_files(folder: Folder) -> None:
    folder.write("a.yaml", "http:\n  - {name: a, url: 'http://127.0.0.1:1/'}\n")
    config = folder.load()
    files = input_files(config)
    assert files[:2] == [folder.root, folder.root / "a.yaml"]
    before = fingerprints(files)
    folder.write("notes.txt", "not config\n")
    folder.write(".a.yaml.swp", "an editor's\n")
    assert fingerprints(files) == before
    folder.write("b.yaml", "http: []\n")
    added = fingerprints(files)
    assert added[folder.root] != before[folder.root]
    assert added[folder.root / "a.yaml"] == before[folder.root / "a.yaml"]
    os.remove(folder.root / "b.yaml")
    assert fingerprints(files) == before
