from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from probe import assembly
from probe.config import Config, find_config_path, load_config
from probe.config.models import AlertSpec, ProbeSpec
from probe.errors import ConfigError
from probe.probers import UNSUPPORTED_DRIVERS, UNSUPPORTED_SECTIONS
from tests.config.conftest import ConfigFiles
from tests.config.specs import SECTIONS, PortSpec, WebSpec, web

GOOD = """\
settings:
  name: shop
  probe:
    interval: 30s
    timeout: 5s
    failure: 2
notify:
  slack:
    - name: ops
      webhook: http://127.0.0.1:9/hook
  telegram:
    - name: tg
      token: 111111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
      chat_id: -100123
    - name: tg2
      token: 222222:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB
      chat_id: "42"
http:
  - name: home
    url: http://127.0.0.1:8080/
    headers:
      Host: shop.example
  - name: api
    url: http://127.0.0.1:8080/api
    enabled: false
    interval: 1m
    timeout: 10s
tcp:
  - name: db
    host: 127.0.0.1:5432
"""


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --- a good file -----------------------------------------------------------------------------


def test_good_config_loads(files: ConfigFiles) -> None:
    cfg = files.load(GOOD)
    assert isinstance(cfg, Config)
    assert cfg.path == files.root / "probes.yaml"
    assert cfg.settings.name == "shop"
    assert [(p.kind, p.name) for p in cfg.probes] == [
        ("http", "home"),
        ("http", "api"),
        ("tcp", "db"),
    ]
    assert isinstance(cfg.probes[0], WebSpec)
    assert isinstance(cfg.probes[2], PortSpec)
    assert web(cfg.probes[0]).headers == {"Host": "shop.example"}
    assert [p.name for p in cfg.enabled_probes] == ["home", "db"]
    assert cfg.probe_counts == {"http": 2, "tcp": 1}
    assert cfg.notifier_count == 3
    assert [(n.kind, n.name) for n in cfg.notifiers] == [
        ("slack", "ops"),
        ("telegram", "tg"),
        ("telegram", "tg2"),
    ]
    tg = cfg.notifiers[1]
    assert tg.model_dump()["chat_id"] == "-100123"  # as written, like EaseProbe's yaml.v3
    assert cfg.warnings == []


def test_probes_inherit_settings_probe(files: ConfigFiles) -> None:
    cfg = files.load(GOOD)
    home, api, db = cfg.probes
    assert (home.interval, home.timeout, home.failure, home.success) == (30.0, 5.0, 2, 1)
    assert (api.interval, api.timeout, api.failure) == (60.0, 10.0, 2)
    assert db.interval == 30.0


def test_defaults_without_settings(files: ConfigFiles) -> None:
    cfg = files.load("tcp:\n  - {name: db, host: 127.0.0.1:5432}\n")
    (db,) = cfg.probes
    assert (db.interval, db.timeout, db.failure, db.success) == (60.0, 30.0, 1, 1)
    assert db.alert == AlertSpec()
    assert cfg.settings.probe.interval == 60.0
    assert cfg.notifiers == []


def test_alert_is_merged_key_by_key(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        settings:
          probe:
            alert: {strategy: increment, factor: 2, max: 5}
        tcp:
          - {name: a, host: h:1}
          - {name: b, host: h:1, alert: {max: 3}}
          - {name: c, host: h:1, alert: {strategy: regular}}
        """)
    )
    a, b, c = (p.alert for p in cfg.probes)
    assert a == AlertSpec(strategy="increment", factor=2, max=5)
    assert b == AlertSpec(strategy="increment", factor=2, max=3)
    assert c == AlertSpec(strategy="regular", factor=2, max=5)


def test_empty_value_of_an_inherited_key_means_the_default(files: ConfigFiles) -> None:
    cfg = files.load("settings: {probe: {timeout: 7s}}\ntcp:\n  - {name: a, host: h:1, timeout:}\n")
    assert cfg.probes[0].timeout == 7.0


def test_empty_sections_are_allowed(files: ConfigFiles) -> None:
    cfg = files.load("http:\ntcp:\nnotify:\n  slack:\nsettings:\n")
    assert cfg.probes == []
    assert cfg.notifiers == []


def test_only_settings(files: ConfigFiles) -> None:
    cfg = files.load("settings:\n  name: x\n")
    assert cfg.probes == [] and cfg.settings.name == "x"


def test_disabled_probe_is_loaded_but_not_enabled(files: ConfigFiles) -> None:
    cfg = files.load("tcp:\n  - {name: a, host: h:1, enabled: false}\n")
    assert [p.enabled for p in cfg.probes] == [False]
    assert cfg.enabled_probes == []


def test_config_is_frozen(files: ConfigFiles) -> None:
    cfg = files.load(GOOD)
    with pytest.raises(AttributeError):
        cfg.probes = []  # type: ignore[misc]


# --- YAML as EaseProbe's Go parser reads it --------------------------------------------------


def test_yaml_1_2_scalars(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        settings:
          sla: {time: 09:30}
        http:
          - name: 2024
            url: http://127.0.0.1/
            labels: {team: no, on: yes, since: 2024-01-01, n: 1, octal: 017}
            headers: {X-Flag: off}
            enabled: yes
        """)
    )
    (spec,) = cfg.probes
    assert cfg.settings.sla.time == "09:30"
    assert spec.name == "2024"
    assert spec.enabled is True
    assert spec.labels == {
        "team": "no",
        "on": "yes",
        "since": "2024-01-01",
        "n": "1",
        "octal": "17",
    }
    assert web(spec).headers == {"X-Flag": "off"}


def test_anchors_and_merge_keys(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        x-defaults: &defaults
          interval: 10s
          timeout: 2s
          labels: {team: core}
        tcp:
          - <<: *defaults
            name: a
            host: h:1
          - <<: *defaults
            name: b
            host: h:2
            timeout: 3s
        """)
    )
    a, b = cfg.probes
    assert (a.interval, a.timeout, a.labels) == (10.0, 2.0, {"team": "core"})
    assert (b.interval, b.timeout) == (10.0, 3.0)


def test_error_inside_a_merged_mapping_points_at_the_anchor(files: ConfigFiles) -> None:
    text = d("""
    x-defaults: &defaults
      interval: soon
    tcp:
      - <<: *defaults
        name: a
        host: h:1
    """)
    assert files.errors(text) == [
        'probes.yaml:2:13: tcp[0].interval: invalid duration "soon" '
        "(examples: 250ms, 30s, 1m30s, 1.5h, 7d)"
    ]


# --- warnings --------------------------------------------------------------------------------


def test_easeprobe_keys_we_ignore_warn_once_each(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        settings:
          timeformat: "2006-01-02"
          pid: /var/run/easeprobe.pid
          sla:
            data: /tmp/sla.json
            backups: 5
          log:
            size: 10
        http:
          - name: a
            url: http://127.0.0.1/
            proxy: socks5://127.0.0.1:1080
        """)
    )
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:2:3: settings.timeformat: accepted for EaseProbe compatibility; not used",
        "probes.yaml:3:3: settings.pid: accepted for EaseProbe compatibility; not used",
        "probes.yaml:5:5: settings.sla.data: accepted for EaseProbe compatibility; not used",
        "probes.yaml:6:5: settings.sla.backups: accepted for EaseProbe compatibility; not used",
        "probes.yaml:8:5: settings.log.size: accepted for EaseProbe compatibility; not used",
        "probes.yaml:12:5: http[0].proxy: accepted for EaseProbe compatibility; not used",
    ]


def test_timeout_longer_than_interval_is_cut(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        tcp:
          - {name: a, host: h:1, interval: 10s, timeout: 20s}
          - {name: b, host: h:1, interval: 5s}
          - {name: c, host: h:1, timeout: 2m}
          - {name: d, host: h:1, interval: 10s, timeout: 10s}
        """)
    )
    assert [(p.interval, p.timeout) for p in cfg.probes] == [
        (10.0, 10.0),
        (5.0, 5.0),
        (60.0, 60.0),
        (10.0, 10.0),
    ]
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:2:50: tcp[0].timeout: timeout 20s is longer than the interval 10s; using 10s",
        "probes.yaml:3:36: tcp[1].interval: timeout 30s is longer than the interval 5s; using 5s",
        "probes.yaml:4:35: tcp[2].timeout: timeout 2m0s is longer than the interval 1m0s; "
        "using 1m0s",
    ]


def test_settings_timeout_longer_than_interval_warns_once(files: ConfigFiles) -> None:
    cfg = files.load(
        d("""
        settings:
          probe: {interval: 10s}
        tcp:
          - {name: a, host: h:1}
          - {name: b, host: h:1}
        """)
    )
    assert cfg.settings.probe.timeout == 10.0
    assert [p.timeout for p in cfg.probes] == [10.0, 10.0]
    assert [files.short(str(w)) for w in cfg.warnings] == [
        "probes.yaml:2:21: settings.probe.interval: timeout 30s is longer than the interval "
        "10s; using 10s"
    ]


# --- paths and secrets -----------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_directory(files: ConfigFiles) -> None:
    path = files.write(
        d("""
        settings:
          store: {path: state/probe.db}
          status: {path: /srv/www/index.html}
        http:
          - {name: a, url: http://127.0.0.1/, ca: certs/ca.pem}
        """),
        name="conf/probes.yaml",
    )
    cfg = load_config(path, sections=SECTIONS, environ={})
    base = (files.root / "conf").absolute()
    assert cfg.settings.store.path == base / "state/probe.db"
    assert cfg.settings.status.path == Path("/srv/www/index.html")
    assert web(cfg.probes[0]).ca == base / "certs/ca.pem"
    assert cfg.settings.log.file is None


def test_relative_config_path_still_resolves_against_its_directory(
    files: ConfigFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.write("settings: {store: {path: x.db}}\n", name="sub/probes.yaml")
    monkeypatch.chdir(files.root)
    cfg = load_config("sub/probes.yaml", sections=SECTIONS, environ={})
    assert cfg.settings.store.path == files.root / "sub" / "x.db"
    assert cfg.path == Path("sub/probes.yaml")


def test_secret_files(files: ConfigFiles) -> None:
    files.write("s3cret\n\n", name="secrets/pw")
    files.write("tok\r\n", name="secrets/token")
    files.write("http://127.0.0.1:9/hook", name="hook")
    cfg = files.load(
        d(f"""
        settings:
          http: {{token_file: secrets/token}}
        notify:
          slack:
            - {{name: ops, webhook_file: {files.root}/hook}}
        http:
          - name: a
            url: http://127.0.0.1/
            username: u
            password_file: secrets/pw
        """)
    )
    assert web(cfg.probes[0]).password == "s3cret\n"
    assert cfg.settings.http.token is not None
    assert cfg.settings.http.token.get_secret_value() == "tok"
    assert "'tok'" not in repr(cfg.settings.http)
    (slack,) = cfg.notifiers
    assert slack.model_dump()["webhook"].get_secret_value() == "http://127.0.0.1:9/hook"


def test_web_basic_auth(files: ConfigFiles) -> None:
    files.write("hunter2\n", name="secrets/web")
    cfg = files.load("settings:\n  http: {username: ops, password_file: secrets/web}\n")
    assert cfg.settings.http.basic_auth() == ("ops", "hunter2")
    assert "hunter2" not in repr(cfg.settings.http)
    assert files.load("settings: {http: {}}\n").settings.http.basic_auth() is None
    for half, where in (("{username: ops}", "2:9"), ("{password: pw}", "2:9")):
        with pytest.raises(ConfigError) as caught:
            files.load(f"settings:\n  http: {half}\n")
        message = str(caught.value)
        assert f"probes.yaml:{where}: settings.http: set username and password together" in message
        assert "pw" not in message.replace("password", "")


def test_secret_file_errors(files: ConfigFiles) -> None:
    text = d("""
    notify:
      telegram:
        - {name: tg, chat_id: 1, token: 111111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, token_file: t}
    http:
      - name: a
        url: http://127.0.0.1/
        password_file: missing.txt
      - name: b
        url: http://127.0.0.1/
        password: x
        password_file: pw
      - name: c
        url: http://127.0.0.1/
        password_file: [1]
      - name: d
        url: http://127.0.0.1/
        auth: {username: u, password_file: nope}
    """)
    assert files.errors(text) == [
        'probes.yaml:3:81: notify.telegram[0].token_file: both "token" and "token_file" '
        "are given; use one",
        'probes.yaml:7:20: http[0].password_file: cannot read "missing.txt": '
        "No such file or directory",
        'probes.yaml:11:5: http[1].password_file: both "password" and "password_file" '
        "are given; use one",
        "probes.yaml:14:20: http[2].password_file: expected a file path, got a list",
        'probes.yaml:17:40: http[3].auth.password_file: cannot read "nope": '
        "No such file or directory",
    ]


def test_secret_file_that_is_a_directory(files: ConfigFiles) -> None:
    (files.root / "dir").mkdir()
    text = "http:\n  - {name: a, url: u, password_file: dir}\n"
    assert files.errors(text) == [
        'probes.yaml:2:38: http[0].password_file: cannot read "dir": Is a directory'
    ]


def test_secret_file_too_large_or_not_text(files: ConfigFiles) -> None:
    files.write(b"x" * 70_000, name="big")
    files.write(b"\xff\xfe", name="bin")
    text = d("""
    http:
      - {name: a, url: u, password_file: big}
      - {name: b, url: u, password_file: bin}
    """)
    assert files.errors(text) == [
        'probes.yaml:2:38: http[0].password_file: "big" is larger than 65536 bytes',
        'probes.yaml:3:38: http[1].password_file: cannot read "bin": not UTF-8 text',
    ]


def test_secret_values_are_not_echoed(files: ConfigFiles) -> None:
    text = "http:\n  - {name: a, url: u, password: [hunter2], username: [bob]}\n"
    assert files.errors(text) == [
        "probes.yaml:2:33: http[0].password: expected a string",
        "probes.yaml:2:54: http[0].username: expected a string, got a list",
    ]


# --- located errors, one line each -----------------------------------------------------------

ERROR_CASES: list[tuple[str, str, list[str]]] = [
    (
        "wrong type",
        """
        http:
          - name: a
            url: http://127.0.0.1/
            failure: many
        """,
        ['probes.yaml:4:14: http[0].failure: expected an integer, got "many"'],
    ),
    (
        "unknown key with did-you-mean, at the key",
        """
        http:
          - name: a
            url: http://127.0.0.1/
            tiemout: 3s
        """,
        ['probes.yaml:4:5: http[0].tiemout: unknown key "tiemout" (did you mean "timeout"?)'],
    ),
    (
        "unknown key without a near one",
        """
        tcp:
          - {name: a, host: h:1, zzz: 1}
        """,
        ['probes.yaml:2:26: tcp[0].zzz: unknown key "zzz"'],
    ),
    (
        "unknown nested key",
        """
        tcp:
          - name: a
            host: h:1
            alert: {strategy: regular, factr: 2}
        """,
        ['probes.yaml:4:32: tcp[0].alert.factr: unknown key "factr" (did you mean "factor"?)'],
    ),
    (
        "bad duration",
        """
        tcp:
          - name: a
            host: h:1
            timeout: 3 sec
        """,
        [
            'probes.yaml:4:14: tcp[0].timeout: invalid duration "3 sec" '
            "(examples: 250ms, 30s, 1m30s, 1.5h, 7d)"
        ],
    ),
    (
        "bare number duration",
        """
        tcp:
          - {name: a, host: h:1, interval: 10}
        """,
        ['probes.yaml:2:36: tcp[0].interval: a bare number is not a duration; write "10s"'],
    ),
    (
        "missing required key points at the mapping",
        """
        http:
          - name: a
            timeout: 1s
        """,
        ["probes.yaml:2:5: http[0].url: missing required key"],
    ),
    (
        "missing required key in a nested model",
        """
        http:
          - name: a
            url: u
            auth: {username: x}
        """,
        ["probes.yaml:4:11: http[0].auth.password: missing required key"],
    ),
    (
        "empty name",
        """
        tcp:
          - {name: "", host: h:1}
        """,
        ["probes.yaml:2:12: tcp[0].name: must not be empty"],
    ),
    (
        "out of range",
        """
        tcp:
          - {name: a, host: h:1, success: 0}
        """,
        ["probes.yaml:2:35: tcp[0].success: must be at least 1, got 0"],
    ),
    (
        "literal",
        """
        tcp:
          - name: a
            host: h:1
            alert:
              strategy: often
        """,
        [
            "probes.yaml:5:17: tcp[0].alert.strategy: expected "
            '"regular", "increment" or "exponent", got "often"'
        ],
    ),
    (
        "dict value",
        """
        http:
          - name: a
            url: u
            headers:
              Host: [1]
        """,
        ["probes.yaml:5:13: http[0].headers.Host: expected a string, got a list"],
    ),
    (
        "list inside a list",
        """
        http:
          - {name: a, url: u, success_code: [[200, x]]}
        """,
        ['probes.yaml:2:44: http[0].success_code[0][1]: expected an integer, got "x"'],
    ),
    (
        "a list too short for its tuple",
        """
        http:
          - {name: a, url: u, success_code: [[200]]}
        """,
        ["probes.yaml:2:38: http[0].success_code[0][1]: missing value (the list is too short)"],
    ),
    (
        "a union given the wrong type (auth is secret-like: no echo)",
        """
        http:
          - {name: a, url: u, auth: 3}
        """,
        ["probes.yaml:2:29: http[0].auth: expected a mapping"],
    ),
    (
        "duplicate probe name across sections, at the second",
        """
        http:
          - name: same
            url: u
        tcp:
          - name: other
            host: h:1
          - name: same
            host: h:1
        """,
        ['probes.yaml:7:11: tcp[1].name: duplicate probe name "same" (first at line 2)'],
    ),
    (
        "duplicate probe name of an invalid probe is still found",
        """
        tcp:
          - {name: a, host: h:1}
          - {name: a}
        """,
        [
            "probes.yaml:3:5: tcp[1].host: missing required key",
            'probes.yaml:3:12: tcp[1].name: duplicate probe name "a" (first at line 2)',
        ],
    ),
    (
        "duplicate key in one mapping",
        """
        tcp:
          - name: a
            host: h:1
            host: h:2
        """,
        ['probes.yaml:4:5: tcp[0].host: duplicate key "host" (first at line 3)'],
    ),
    (
        "duplicate top-level section",
        """
        tcp: []
        settings: {}
        tcp: []
        """,
        ['probes.yaml:3:1: tcp: duplicate key "tcp" (first at line 1)'],
    ),
    (
        "unset variable",
        """
        http:
          - name: a
            url: http://${NO_SUCH_HOST}/
        """,
        [
            "probes.yaml:3:10: http[0].url: environment variable NO_SUCH_HOST is not set "
            "(use ${NO_SUCH_HOST:-default})"
        ],
    ),
    (
        "unsupported EaseProbe section",
        """
        ssh:
          - name: a
        websocket: []
        """,
        [
            "probes.yaml:1:1: ssh: EaseProbe's ssh probes are not supported",
            "probes.yaml:3:1: websocket: EaseProbe's websocket probes are not supported",
        ],
    ),
    (
        "unknown section with did-you-mean",
        """
        htp:
          - name: a
        """,
        ['probes.yaml:1:1: htp: unknown section "htp" (did you mean "http"?)'],
    ),
    (
        "unknown section without a near one",
        """
        foo: 1
        """,
        [
            'probes.yaml:1:1: foo: unknown section "foo" (known: http, maintenance, notify,'
            " settings, tcp)"
        ],
    ),
    (
        "section that is not a list",
        """
        http:
          name: a
        """,
        ["probes.yaml:2:3: http: expected a list of probes, not a mapping"],
    ),
    (
        "probe that is not a mapping",
        """
        tcp:
          - db
        """,
        ['probes.yaml:2:5: tcp[0]: expected a mapping (one probe), not "db"'],
    ),
    (
        "top level not a mapping",
        """
        - http
        """,
        [
            "probes.yaml:1:1: the top level must be a mapping of sections "
            "(http, maintenance, notify, settings, tcp), not a list"
        ],
    ),
    (
        "settings errors",
        """
        settings:
          probe: {interval: fast, failure: 0}
          sla: {schedul: daily, time: '25:00'}
          log: {level: loud}
          http: {port: 70000}
        """,
        [
            'probes.yaml:2:21: settings.probe.interval: invalid duration "fast" '
            "(examples: 250ms, 30s, 1m30s, 1.5h, 7d)",
            "probes.yaml:2:36: settings.probe.failure: must be at least 1, got 0",
            'probes.yaml:3:9: settings.sla.schedul: unknown key "schedul" '
            '(did you mean "schedule"?)',
            'probes.yaml:3:31: settings.sla.time: expected a time of day "HH:MM" or '
            '"HH:MM:SS" (00:00 to 23:59:59), got "25:00"',
            'probes.yaml:4:16: settings.log.level: expected "debug", "info", "warning", '
            '"warn", "error" or "critical", got "loud"',
            "probes.yaml:5:16: settings.http.port: must be at most 65535, got 70000",
        ],
    ),
    (
        "settings not a mapping",
        """
        settings: [1]
        """,
        ["probes.yaml:1:11: settings: expected a mapping, got a list"],
    ),
    (
        "notify shape",
        """
        notify:
          slack:
            - webhook: http://127.0.0.1/
            - name: ""
            - 3
          telegram: {name: a}
        """,
        [
            "probes.yaml:3:7: notify.slack[0].name: missing required key",
            "probes.yaml:4:7: notify.slack[1].webhook: missing required key",
            "probes.yaml:4:13: notify.slack[1].name: must not be empty",
            "probes.yaml:5:7: notify.slack[2]: expected a mapping (one notifier), not 3",
            "probes.yaml:6:13: notify.telegram: expected a list of notifiers, not a mapping",
        ],
    ),
    (
        "notify not a mapping",
        """
        notify: [slack]
        """,
        ["probes.yaml:1:9: notify: expected a mapping of notifier kind to a list, not a list"],
    ),
    (
        "unsupported YAML tags",
        """
        tcp:
          - name: !!binary aGVsbG8=
            host: !foo h:1
        x-set: !!set {a, b}
        """,
        [
            "probes.yaml:2:11: tcp[0].name: unsupported YAML tag !!binary",
            "probes.yaml:3:11: tcp[0].host: unsupported YAML tag !foo",
            "probes.yaml:4:8: x-set: unsupported YAML tag !!set",
        ],
    ),
    (
        "bad explicit scalar",
        """
        tcp:
          - {name: a, host: h:1, failure: !!int lots, success: !!float x}
        """,
        [
            "probes.yaml:2:35: tcp[0].failure: not a valid integer",
            "probes.yaml:2:56: tcp[0].success: not a valid number",
        ],
    ),
    (
        "a huge integer",
        "tcp:\n  - {name: a, host: h:1, failure: " + "9" * 5000 + "}\n",
        ["probes.yaml:2:35: tcp[0].failure: not a valid integer"],
    ),
    (
        "recursive alias",
        """
        tcp: &a
          - *a
        """,
        ["probes.yaml:1:6: tcp[0]: recursive alias"],
    ),
    (
        "mapping as a key",
        """
        tcp:
          - ? {a: 1}
            : x
            name: a
            host: h:1
        """,
        ["probes.yaml:2:7: tcp[0]: a key must be a plain name, not a mapping"],
    ),
    (
        "merge of a scalar",
        """
        tcp:
          - <<: 3
            name: a
            host: h:1
        """,
        ['probes.yaml:2:5: tcp[0]["<<"]: a merge (<<) takes a mapping or a list of mappings'],
    ),
    (
        "malformed YAML: indentation",
        """
        http:
          - name: a
           url: x
        """,
        [
            "probes.yaml:3:4: invalid YAML: expected <block end>, but found "
            "'<block mapping start>' (while parsing a block collection at line 2); "
            "check the indentation"
        ],
    ),
    (
        "malformed YAML: colon",
        """
        http:
          - name: a: b
        """,
        ["probes.yaml:2:12: invalid YAML: mapping values are not allowed here"],
    ),
    (
        "malformed YAML: unclosed quote",
        """
        http:
          - name: "a
        """,
        [
            "probes.yaml:3:1: invalid YAML: found unexpected end of stream "
            "(while scanning a quoted scalar at line 2)"
        ],
    ),
    (
        "malformed YAML: tab",
        "http:\n\t- name: a\n",
        ["probes.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token"],
    ),
    (
        "malformed YAML: undefined alias",
        """
        tcp:
          - *nope
        """,
        ["probes.yaml:2:5: invalid YAML: found undefined alias 'nope'"],
    ),
    (
        "two documents",
        """
        settings: {}
        ---
        settings: {}
        """,
        [
            "probes.yaml:2:1: invalid YAML: a second document "
            '(the file must hold one; remove the "---")'
        ],
    ),
    (
        "control character",
        "tcp:\n  - name: a\x07\n",
        ["probes.yaml:2:12: invalid YAML: character U+0007 is not allowed"],
    ),
    (
        "empty file",
        "",
        ["probes.yaml: empty config"],
    ),
    (
        "only comments",
        "# nothing here\n\n   # still nothing\n",
        ["probes.yaml: empty config"],
    ),
    (
        "a top level that is a bad scalar",
        "!!int many\n",
        ["probes.yaml:1:1: not a valid integer"],
    ),
    (
        "only a document marker",
        "---\n",
        ["probes.yaml: empty config"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in ERROR_CASES],
)
def test_located_errors(files: ConfigFiles, text: str, expected: list[str]) -> None:
    assert files.errors(d(text)) == expected


def test_all_problems_are_reported_in_file_order(files: ConfigFiles) -> None:
    text = d("""
    foo: 1
    tcp:
      - {name: a, host: h:1, timeout: 3 sec}
      - {name: b, hots: h:1}
      - {name: a, host: h:1, failure: x}
    settings:
      timezone: [1]
    ssh: []
    """)
    assert files.errors(text) == [
        'probes.yaml:1:1: foo: unknown section "foo" (known: http, maintenance, notify,'
        " settings, tcp)",
        'probes.yaml:3:35: tcp[0].timeout: invalid duration "3 sec" '
        "(examples: 250ms, 30s, 1m30s, 1.5h, 7d)",
        "probes.yaml:4:5: tcp[1].host: missing required key",
        'probes.yaml:4:15: tcp[1].hots: unknown key "hots" (did you mean "host"?)',
        'probes.yaml:5:12: tcp[2].name: duplicate probe name "a" (first at line 3)',
        'probes.yaml:5:35: tcp[2].failure: expected an integer, got "x"',
        "probes.yaml:7:13: settings.timezone: expected a string, got a list",
        "probes.yaml:8:1: ssh: EaseProbe's ssh probes are not supported",
    ]


def test_one_error_per_line_of_output(files: ConfigFiles) -> None:
    path = files.write("tcp:\n  - {name: a, host: h:1, timeout: x}\nfoo: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, sections=SECTIONS, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) == 2
    assert all(line.startswith(f"{path}:") for line in lines)


def test_messages_stay_on_one_line(files: ConfigFiles) -> None:
    text = 'settings:\n  "a\\nb": 1\ntcp:\n  - {name: a, host: h, timeout: "3\\nsec"}\n'
    assert files.errors(text) == [
        'probes.yaml:2:3: settings["a\\nb"]: unknown key "a\\nb"',
        'probes.yaml:4:33: tcp[0].timeout: invalid duration "3\\nsec" '
        "(examples: 250ms, 30s, 1m30s, 1.5h, 7d)",
    ]


def test_invalid_utf8(files: ConfigFiles) -> None:
    assert files.errors(b"tcp:\n  - name: caf\xe9\n") == ["probes.yaml:2:14: not valid UTF-8 text"]


def test_utf8_bom_is_accepted(files: ConfigFiles) -> None:
    path = files.write("\ufefftcp:\n  - {name: a, host: h:1}\n".encode())
    assert len(load_config(path, sections=SECTIONS, environ={}).probes) == 1


def test_alias_bomb_is_refused_quickly(files: ConfigFiles) -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        rows.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    # Located at the key whose value expands past the bound (found by test_fuzz.py: the
    # error named no place in the file).
    assert files.errors("\n".join(rows) + "\n") == [
        "probes.yaml:6:1: a5: aliases expand to more than 250,000 values; refusing to load"
    ]


def test_alias_bomb_under_a_section_is_located(files: ConfigFiles) -> None:
    rows = ["x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 5):
        rows.append(f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    rows.append("tcp:\n  - {name: a, host: h:1, labels: {big: [*a4, *a4, *a4]}}")
    assert files.errors("\n".join(rows) + "\n") == [
        "probes.yaml:6:1: tcp: aliases expand to more than 250,000 values; refusing to load"
    ]


@pytest.mark.slow
def test_deep_nesting_is_an_error(files: ConfigFiles) -> None:
    assert files.errors("tcp: " + "[" * 3000 + "]" * 3000 + "\n") == [
        "probes.yaml: invalid YAML: nested too deeply"
    ]
    errors = files.errors("tcp: " + "[" * 100 + "]" * 100 + "\n")
    assert errors[-1].endswith(": nested deeper than 64 levels")


# --- the file itself -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", sections=SECTIONS)
    assert str(info.value) == f"{tmp_path}/nope.yaml: cannot read config: No such file or directory"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, sections=SECTIONS)
    assert str(info.value) == f"{tmp_path}: cannot read config: Is a directory"


def test_path_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "file" / "probes.yaml", sections=SECTIONS)
    assert str(info.value) == f"{tmp_path}/file/probes.yaml: cannot read config: Not a directory"


# --- sections and the registry ---------------------------------------------------------------


def test_spec_types_are_loaded_only_for_used_sections(files: ConfigFiles) -> None:
    calls: list[str] = []

    def factory(name: str, spec: type[ProbeSpec]) -> type[ProbeSpec]:
        calls.append(name)
        return spec

    sections = {
        "http": lambda: factory("http", WebSpec),
        "tcp": lambda: factory("tcp", PortSpec),
    }
    files.load("tcp:\n  - {name: a, host: h:1}\n  - {name: b, host: h:1}\n", sections=sections)
    assert calls == ["tcp"]


def test_a_section_whose_prober_cannot_load_is_an_error(files: ConfigFiles) -> None:
    def broken() -> type[ProbeSpec]:
        raise ModuleNotFoundError("No module named 'asyncpg'")

    path = files.write("tcp:\n  - {name: a, host: h:1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, sections={"tcp": broken}, environ={})
    assert [files.short(str(p)) for p in info.value.problems] == [
        "probes.yaml:1:1: tcp: tcp probes are unavailable "
        "(ModuleNotFoundError: No module named 'asyncpg')"
    ]


def test_default_registry_imports_no_prober_for_unused_sections(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "settings: {name: x}\nnotify: {slack: [{name: a, webhook: 'http://127.0.0.1:9/h'}]}\n"
    )
    code = (
        "import sys\n"
        "from probe.assembly import load_config\n"
        f"cfg = load_config({str(path)!r})\n"
        "assert cfg.probes == []\n"
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


def test_default_registry_reports_unsupported_sections_and_drivers(tmp_path: Path) -> None:
    # Every EaseProbe section is supported now; its unsupported drivers are still named.
    path = tmp_path / "probes.yaml"
    for kind, message in UNSUPPORTED_SECTIONS.items():
        path.write_text(f"{kind}: []\n")
        with pytest.raises(ConfigError) as info:
            assembly.load_config(path)
        assert str(info.value) == f"{path}:1:1: {kind}: {message}"
    # Every EaseProbe driver is supported too; the map stays for the next one it adds.
    for driver, message in UNSUPPORTED_DRIVERS.items():
        path.write_text(f"client:\n  - {{name: a, driver: {driver}, host: 'h:1'}}\n")
        with pytest.raises(ConfigError) as info:
            assembly.load_config(path)
        assert f"client[0].driver: {message}" in str(info.value)


# --- find_config_path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ("conf/a.yaml", "/etc/probe.yaml", "conf/a.yaml"),
        (None, "/etc/probe.yaml", "/etc/probe.yaml"),
        (None, "", "probes.yaml"),
        (None, None, "probes.yaml"),
    ],
)
def test_find_config_path(
    monkeypatch: pytest.MonkeyPatch, cli: str | None, env: str | None, expected: str
) -> None:
    if env is None:
        monkeypatch.delenv("PROBE_CONFIG", raising=False)
    else:
        monkeypatch.setenv("PROBE_CONFIG", env)
    assert find_config_path(cli) == Path(expected)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("settings:\n  probe:\n    alert: {factor: true}\n", "3:21: settings.probe.alert.factor"),
        ("settings:\n  probe: {failure: false}\n", "2:20: settings.probe.failure"),
    ],
)
def test_a_boolean_is_no_number(tmp_path: Path, text: str, where: str) -> None:
    # pydantic would read `true` as 1; found by tests/config/test_fuzz.py.
    path = tmp_path / "p.yaml"
    path.write_text(text + "tcp:\n  - {name: a, host: '127.0.0.1:1'}\n")
    with pytest.raises(ConfigError) as err:
        assembly.load_config(path)
    assert f"{path}:{where}: expected a number, got " in str(err.value)


def test_a_number_from_a_variable_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "settings:\n  probe: {failure: '${FAILS}'}\ntcp:\n  - {name: a, host: '127.0.0.1:1'}\n"
    )
    config = assembly.load_config(path, environ={"FAILS": "3"})
    assert config.probes[0].failure == 3


def test_a_number_for_a_secret_loads_as_its_text(tmp_path: Path) -> None:
    # Found by tests/config/test_fuzz.py: it loaded, and `probe schema` refused it.
    path = tmp_path / "p.yaml"
    path.write_text("settings:\n  http: {token: 1234}\ntcp:\n  - {name: a, host: '127.0.0.1:1'}\n")
    config = assembly.load_config(path)
    assert config.settings.http.token is not None
    assert config.settings.http.token.get_secret_value() == "1234"
