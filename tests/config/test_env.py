"""`${VAR}` substitution: in parsed string values only, never in keys or in the YAML text."""

from __future__ import annotations

import pytest

from probe.config import load_config
from tests.config.conftest import ConfigFiles
from tests.config.specs import SECTIONS, port, web

ENV = {"HOST": "127.0.0.1", "PORT": "8080", "EMPTY": "", "N": "3", "TRICKY": "${HOST}"}

CASES: list[tuple[str, str]] = [
    ("plain", "plain"),
    ("${HOST}", "127.0.0.1"),
    ("http://${HOST}:${PORT}/x", "http://127.0.0.1:8080/x"),
    ("${MISSING:-fallback}", "fallback"),
    ("${MISSING:-}", ""),
    ("${EMPTY:-fallback}", "fallback"),  # `:-` replaces an empty value too, as in a shell
    ("${EMPTY}", ""),
    ("${HOST:-fallback}", "127.0.0.1"),
    ("${MISSING:-http://127.0.0.1:9/a?b=c}", "http://127.0.0.1:9/a?b=c"),
    ("$$", "$"),
    ("$${HOST}", "${HOST}"),
    ("a$$b", "a$b"),
    ("cost $5", "cost $5"),
    # EaseProbe substitutes `$NAME` as well as `${NAME}`; `$` before a non-name is literal.
    ("$HOST", "127.0.0.1"),
    ("http://$HOST:$PORT/x", "http://127.0.0.1:8080/x"),
    ("$N-$N", "3-3"),
    ("$$HOST", "$HOST"),
    ("$1 and $-", "$1 and $-"),
    ("$EMPTY", ""),
    ("ends with $", "ends with $"),
    ("$", "$"),
    ("${TRICKY}", "${HOST}"),  # a value is not expanded again
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_substitution(files: ConfigFiles, raw: str, expected: str) -> None:
    text = f"http:\n  - name: a\n    url: '{raw}'\n"
    cfg = files.load(text, env=ENV)
    assert web(cfg.probes[0]).url == expected


def test_plain_and_quoted_scalars_both_substitute(files: ConfigFiles) -> None:
    text = 'http:\n  - name: ${HOST}\n    url: "http://${HOST}/"\n'
    cfg = files.load(text, env=ENV)
    spec = web(cfg.probes[0])
    assert (spec.name, spec.url) == ("127.0.0.1", "http://127.0.0.1/")


def test_substituted_values_are_then_validated_as_their_type(files: ConfigFiles) -> None:
    text = "tcp:\n  - {name: a, host: h:1, failure: '${N}', enabled: '${ON:-false}'}\n"
    cfg = files.load(text, env=ENV)
    assert (cfg.probes[0].failure, cfg.probes[0].enabled) == (3, False)


def test_a_value_cannot_inject_yaml(files: ConfigFiles) -> None:
    env = {"EVIL": "x\n    password: stolen\n    interval: 1s"}
    cfg = files.load("http:\n  - name: a\n    url: ${EVIL}\n", env=env)
    spec = web(cfg.probes[0])
    assert spec.url == env["EVIL"]
    assert spec.password is None
    assert spec.interval == 60.0


def test_keys_are_not_substituted(files: ConfigFiles) -> None:
    text = "http:\n  - name: a\n    url: u\n    headers: {'${HOST}': '${HOST}'}\n"
    cfg = files.load(text, env=ENV)
    assert web(cfg.probes[0]).headers == {"${HOST}": "127.0.0.1"}


def test_non_string_scalars_are_untouched(files: ConfigFiles) -> None:
    cfg = files.load("tcp:\n  - {name: a, host: h:1, failure: 2}\n", env=ENV)
    assert cfg.probes[0].failure == 2


def test_settings_and_notify_are_substituted(files: ConfigFiles) -> None:
    text = (
        "settings:\n  name: ${HOST}\n  http: {port: '${PORT}'}\n"
        "notify:\n  slack:\n    - {name: ops, webhook: 'http://${HOST}/hook'}\n"
    )
    cfg = files.load(text, env=ENV)
    assert (cfg.settings.name, cfg.settings.http.port) == ("127.0.0.1", 8080)
    (slack,) = cfg.notifiers
    assert slack.model_dump()["webhook"].get_secret_value() == "http://127.0.0.1/hook"


def test_process_environment_is_the_default(
    files: ConfigFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_TEST_LOADER_HOST", "127.0.0.9")
    path = files.write("tcp:\n  - {name: a, host: '${PROBE_TEST_LOADER_HOST}:1'}\n")
    cfg = load_config(path, sections=SECTIONS)
    assert port(cfg.probes[0]).host == "127.0.0.9:1"


ERRORS: list[tuple[str, str]] = [
    ("${NOPE}", "environment variable NOPE is not set (use ${NOPE:-default})"),
    ("a ${NOPE} b", "environment variable NOPE is not set (use ${NOPE:-default})"),
    ("${", 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"'),
    ("${HOST", 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"'),
    ("${}", 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"'),
    ("${1X}", 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"'),
    ("${HOST-x}", 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"'),
    (
        "pa$word",
        'environment variable word is not set (use ${word:-default}, or "$$word" for a '
        'literal "$word")',
    ),
]


@pytest.mark.parametrize(("raw", "message"), ERRORS)
def test_substitution_errors_are_located(files: ConfigFiles, raw: str, message: str) -> None:
    text = f"http:\n  - name: a\n    url: '{raw}'\n"
    assert files.errors(text, env=ENV) == [f"probes.yaml:3:10: http[0].url: {message}"]


def test_every_unset_variable_is_reported(files: ConfigFiles) -> None:
    text = (
        "settings:\n  name: ${A}\n"
        "tcp:\n  - {name: a, host: '${B}:1'}\n"
        "notify:\n  slack:\n    - {name: ops, webhook: '${C}'}\n"
    )
    assert files.errors(text) == [
        "probes.yaml:2:9: settings.name: environment variable A is not set (use ${A:-default})",
        "probes.yaml:4:21: tcp[0].host: environment variable B is not set (use ${B:-default})",
        "probes.yaml:7:28: notify.slack[0].webhook: environment variable C is not set "
        "(use ${C:-default})",
    ]


def test_a_broken_value_is_reported_once(files: ConfigFiles) -> None:
    # The unset variable leaves "" behind; "empty duration" would only repeat the problem.
    text = "tcp:\n  - {name: a, host: h:1, timeout: '${T}'}\n"
    assert files.errors(text) == [
        "probes.yaml:2:35: tcp[0].timeout: environment variable T is not set (use ${T:-default})"
    ]
