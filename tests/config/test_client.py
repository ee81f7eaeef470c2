"""The `client:` section: each entry's `driver:` picks its spec model.

Most tests inject the tests' own drivers (tests/config/specs.py), so they do not depend on the
real driver modules; the last ones go through the default registry for what needs no driver
module (unsupported and unknown drivers, laziness).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from probe import assembly
from probe.config import Config, SpecFactory
from probe.config.models import ProbeSpec
from probe.errors import ConfigError
from probe.probers import CLIENT_DRIVERS, SECTIONS
from probe.probers._client import ClientSpec
from tests.config.conftest import ConfigFiles
from tests.config.specs import DRIVERS, CacheSpec, DocDBSpec, PortSpec


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(
    files: ConfigFiles,
    text: str,
    env: Mapping[str, str] | None = None,
    drivers: Mapping[str, SpecFactory] = DRIVERS,
) -> Config:
    return files.load(d(text), env, drivers=drivers)


def errors(
    files: ConfigFiles,
    text: str,
    env: Mapping[str, str] | None = None,
    drivers: Mapping[str, SpecFactory] = DRIVERS,
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(files, text, env, drivers)
    return [files.short(str(p)) for p in info.value.problems]


# --- dispatch --------------------------------------------------------------------------------


def test_client_entries_get_their_driver_spec(files: ConfigFiles) -> None:
    files.write("s3cret\n", name="secrets/db")
    cfg = load(
        files,
        """
        settings:
          probe: {interval: 20s, timeout: 5s}
        client:
          - name: db
            driver: docdb
            host: 127.0.0.1:5432
            username: app
            password_file: secrets/db
          - name: cache
            driver: cache
            host: 127.0.0.1:6379
            data: {k: v}
            timeout: 2s
        tcp:
          - name: port
            host: 127.0.0.1:1
        """,
    )
    db, cache, port = cfg.probes
    assert isinstance(db, DocDBSpec) and isinstance(cache, CacheSpec)
    assert isinstance(port, PortSpec)
    # The kind of a client probe is its driver.
    assert (db.kind, cache.kind, port.kind) == ("docdb", "cache", "tcp")
    assert cfg.probe_counts == {"docdb": 1, "cache": 1, "tcp": 1}
    assert db.password is not None and db.password.get_secret_value() == "s3cret"
    assert (db.interval, db.timeout, cache.timeout) == (20.0, 5.0, 2.0)
    assert cache.data == {"k": "v"}
    assert cfg.warnings == []


def test_driver_name_is_read_case_insensitively(files: ConfigFiles) -> None:
    cfg = load(files, "client:\n  - {name: a, driver: ' DocDB ', host: h:1}\n")
    (spec,) = cfg.probes
    assert isinstance(spec, DocDBSpec)
    assert spec.driver == "docdb"


def test_driver_from_the_environment(files: ConfigFiles) -> None:
    cfg = load(
        files,
        "client:\n  - {name: a, driver: '${DRIVER}', host: '${HOST:-h:1}'}\n",
        env={"DRIVER": "cache"},
    )
    (spec,) = cfg.probes
    assert isinstance(spec, CacheSpec)
    assert spec.host == "h:1"


def test_values_are_substituted_once(files: ConfigFiles) -> None:
    # `$$` is a literal `$`: substituting twice would turn "$$$$" into "$", not "$$".
    cfg = load(files, "client:\n  - {name: a, driver: cache, host: h:1, username: 'u$$$$'}\n")
    (spec,) = cfg.probes
    assert isinstance(spec, CacheSpec)
    assert spec.username == "u$$"


def test_ignored_easeprobe_keys_of_a_driver_warn(files: ConfigFiles) -> None:
    cfg = load(files, "client:\n  - {name: a, driver: cache, host: h:1, legacy: 1}\n")
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:2:41: client[0].legacy: accepted for EaseProbe compatibility; not used"
    ]


def test_empty_client_section(files: ConfigFiles) -> None:
    assert load(files, "client:\n").probes == []
    assert load(files, "client: []\n").probes == []


def test_driver_specs_are_loaded_only_for_used_drivers(files: ConfigFiles) -> None:
    calls: list[str] = []

    def factory(name: str, spec: type[ProbeSpec]) -> SpecFactory:
        def make() -> type[ProbeSpec]:
            calls.append(name)
            return spec

        return make

    drivers = {"docdb": factory("docdb", DocDBSpec), "cache": factory("cache", CacheSpec)}
    with pytest.raises(ConfigError):
        load(
            files,
            """
            client:
              - {name: a, driver: cache, host: h:1}
              - {name: b, driver: cache, host: h:2}
              - {name: c, driver: nope, host: h:3}
            """,
            drivers=drivers,
        )
    assert calls == ["cache"]  # once, however many entries use it
    calls.clear()
    load(files, "client:\n  - {name: a, driver: docdb, host: h:1}\n", drivers=drivers)
    assert calls == ["docdb"]


# --- located errors --------------------------------------------------------------------------

ERROR_CASES = [
    (
        "missing driver: at the entry",
        """
        client:
          - name: a
            host: h:1
        """,
        [
            "probes.yaml:2:5: client[0].driver: missing required key "
            "(the client driver: one of cache, docdb)"
        ],
    ),
    (
        "unsupported EaseProbe driver: at the driver value, with its message",
        """
        client:
          - name: a
            driver: mongo
            host: h:1
        """,
        ["probes.yaml:3:13: client[0].driver: EaseProbe's mongo driver is not supported"],
    ),
    (
        "unknown driver with did-you-mean",
        """
        client:
          - name: a
            driver: docbd
            host: h:1
        """,
        ['probes.yaml:3:13: client[0].driver: unknown driver "docbd" (did you mean "docdb"?)'],
    ),
    (
        "unknown driver without a near one",
        """
        client:
          - {name: a, driver: oracle, host: h:1}
        """,
        ['probes.yaml:2:23: client[0].driver: unknown driver "oracle" (known: cache, docdb)'],
    ),
    (
        "driver that is not a name",
        """
        client:
          - {name: a, driver: [docdb], host: h:1}
          - {name: b, driver: , host: h:1}
        """,
        [
            "probes.yaml:2:23: client[0].driver: expected a driver name (cache, docdb), got a list",
            "probes.yaml:3:22: client[1].driver: expected a driver name (cache, docdb), got null",
        ],
    ),
    (
        "unset variable in the driver: one problem, not two",
        """
        client:
          - {name: a, driver: "${DRV}", host: h:1}
        """,
        [
            "probes.yaml:2:23: client[0].driver: environment variable DRV is not set "
            "(use ${DRV:-default})"
        ],
    ),
    (
        "entry that is not a mapping",
        """
        client:
          - docdb
        """,
        ['probes.yaml:2:5: client[0]: expected a mapping (one probe), not "docdb"'],
    ),
    (
        "section that is not a list",
        """
        client:
          driver: docdb
        """,
        ["probes.yaml:2:3: client: expected a list of probes, not a mapping"],
    ),
    (
        "the driver's own validation is located",
        """
        client:
          - name: a
            driver: cache
            host: nohost
            usrname: app
          - name: b
            driver: docdb
            dsn: "mysql://u:pw@h/db"
        """,
        [
            'probes.yaml:4:11: client[0].host: invalid host "nohost": missing port; '
            'write "nohost:PORT"',
            'probes.yaml:5:5: client[0].usrname: unknown key "usrname" (did you mean "username"?)',
            "probes.yaml:6:5: client[1]: dsn must start with docdb://",
        ],
    ),
    (
        "duplicate names across sections, client included",
        """
        tcp:
          - {name: same, host: h:1}
        client:
          - {name: same, driver: docdb, host: h:1}
          - {name: twice, driver: cache, host: h:1}
          - {name: twice, driver: docdb, host: h:1}
        """,
        [
            'probes.yaml:4:12: client[0].name: duplicate probe name "same" (first at line 2)',
            'probes.yaml:6:12: client[2].name: duplicate probe name "twice" (first at line 5)',
        ],
    ),
    (
        "duplicate name of an entry with a bad driver is still found",
        """
        client:
          - {name: same, driver: docdb, host: h:1}
          - {name: same, driver: mongo, host: h:1}
        """,
        [
            'probes.yaml:3:12: client[1].name: duplicate probe name "same" (first at line 2)',
            "probes.yaml:3:26: client[1].driver: EaseProbe's mongo driver is not supported",
        ],
    ),
    (
        "every entry is checked, in file order",
        """
        client:
          - {name: a, driver: mongo, host: h:1}
          - {name: b, host: h:1}
          - {name: c, driver: docdb}
        """,
        [
            "probes.yaml:2:23: client[0].driver: EaseProbe's mongo driver is not supported",
            "probes.yaml:3:5: client[1].driver: missing required key "
            "(the client driver: one of cache, docdb)",
            "probes.yaml:4:5: client[2]: host is required (host:port), or a dsn",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_client_errors(files: ConfigFiles, text: str, expected: list[str]) -> None:
    assert errors(files, text) == expected


def test_secret_values_are_not_echoed(files: ConfigFiles) -> None:
    lines = errors(
        files,
        """
        client:
          - {name: a, driver: docdb, dsn: [hunter2], password: [hunter2], host: h:1}
        """,
    )
    assert lines
    assert not any("hunter2" in line for line in lines)


def test_a_driver_whose_module_cannot_load_is_an_error(files: ConfigFiles) -> None:
    def broken() -> type[ProbeSpec]:
        raise ModuleNotFoundError("No module named 'asyncpg'")

    text = """
        client:
          - {name: a, driver: docdb, host: h:1}
          - {name: b, driver: docdb, host: h:2}
          - {name: c, driver: cache, host: h:3}
        """
    assert errors(files, text, drivers={"docdb": broken, "cache": DRIVERS["cache"]}) == [
        "probes.yaml:2:23: client[0].driver: docdb probes are unavailable "
        "(ModuleNotFoundError: No module named 'asyncpg')"
    ]


def test_client_is_an_unknown_section_without_drivers(files: ConfigFiles) -> None:
    # Injected sections and no drivers: the loader knows no `client:` (as before this issue).
    assert errors(files, "client: []\n", drivers={}) == [
        'probes.yaml:1:1: client: unknown section "client" (known: http, maintenance,'
        " notify, settings, tcp)"
    ]
    assert errors(files, "clinet: []\n") == [
        'probes.yaml:1:1: clinet: unknown section "clinet" (did you mean "client"?)'
    ]


# --- the default registry --------------------------------------------------------------------


def test_registry_drivers() -> None:
    assert set(CLIENT_DRIVERS) == {
        *("mysql", "postgres", "redis", "influxdb", "etcd", "mqtt", "zookeeper", "memcache"),
        "mongo",
        "kafka",
    }
    for driver, target in CLIENT_DRIVERS.items():
        assert target.startswith(f"probe.probers.{driver}:")


@pytest.mark.parametrize(
    ("driver", "message"),
    [
        ("postgresql", 'unknown driver "postgresql" (did you mean "postgres"?)'),
        (
            "mariadb",
            'unknown driver "mariadb" '
            "(known: etcd, influxdb, kafka, memcache, mongo, mqtt, mysql, postgres, redis, "
            "zookeeper)",
        ),
    ],
)
def test_default_registry_driver_errors(tmp_path: Path, driver: str, message: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(f"client:\n  - name: a\n    driver: {driver}\n    host: h:1\n")
    with pytest.raises(ConfigError) as info:
        assembly.load_config(path, environ={})
    assert str(info.value) == f"{path}:3:13: client[0].driver: {message}"


def test_default_registry_knows_client_tls_and_shell(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("foo: []\n")
    with pytest.raises(ConfigError) as info:
        assembly.load_config(path, environ={})
    # Every registered section is named (a new prober kind adds its own).
    known = ", ".join(sorted({*SECTIONS, "client", "maintenance", "notify", "settings"}))
    assert {"http", "shell", "tcp", "tls"} <= set(SECTIONS)
    assert str(info.value) == f'{path}:1:1: foo: unknown section "foo" (known: {known})'


def test_default_registry_imports_no_driver_for_a_failed_entry(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("client:\n  - {name: a, driver: docdb, host: h:1}\n  - {name: b, host: h:1}\n")
    code = (
        "import sys\n"
        "from probe.assembly import load_config\n"
        "from probe.errors import ConfigError\n"
        "try:\n"
        f"    load_config({str(path)!r})\n"
        "except ConfigError:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('probe.probers.'))\n"
        "print(loaded)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == "[]"


def test_default_registry_dispatches_to_every_driver(tmp_path: Path) -> None:
    # The real driver modules, imported lazily by the registry: each entry gets its driver's
    # spec, and the probe's kind is the driver's name.
    path = tmp_path / "probes.yaml"
    path.write_text(
        "client:\n"
        + "".join(
            f"  - {{name: p-{driver}, driver: {driver}, host: 127.0.0.1:1}}\n"
            for driver in CLIENT_DRIVERS
        )
    )
    cfg = assembly.load_config(path, environ={})
    assert [p.kind for p in cfg.probes] == list(CLIENT_DRIVERS)
    for spec in cfg.probes:
        assert isinstance(spec, ClientSpec)
        assert spec.driver == spec.kind
