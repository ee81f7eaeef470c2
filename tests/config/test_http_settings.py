"""`settings.http` and `settings.icon` as a config file writes them (issue 9): empty secrets and
an empty address are located errors, EaseProbe's access-log keys and icon load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.conftest import ConfigFiles


@pytest.mark.parametrize(
    ("text", "env", "where"),
    [
        # The variable unset: `${VAR:-}` gives an empty string, which a client could send.
        ("settings:\n  http:\n    token: '${PROBE_TOKEN:-}'\n", {}, "3:12: settings.http.token"),
        ("settings:\n  http:\n    token: '   '\n", {}, "3:12: settings.http.token"),
        ("settings:\n  http:\n    token: ${T}\n", {"T": ""}, "3:12: settings.http.token"),
        (
            "settings:\n  http:\n    username: ops\n    password: ''\n",
            {},
            "4:15: settings.http.password",
        ),
    ],
)
def test_empty_secret_is_a_located_error(
    files: ConfigFiles, text: str, env: dict[str, str], where: str
) -> None:
    errors = files.errors(text, env)
    assert any(e.startswith(f"probes.yaml:{where}: empty") for e in errors), errors


def test_empty_password_file_is_an_error(files: ConfigFiles) -> None:
    files.write("\n", name="secrets/pw")
    errors = files.errors("settings:\n  http: {username: ops, password_file: secrets/pw}\n")
    assert any("settings.http.password" in e and "empty" in e for e in errors), errors


@pytest.mark.parametrize("ip", ["''", "' '"])
def test_empty_ip_is_a_located_error(files: ConfigFiles, ip: str) -> None:
    errors = files.errors(f"settings:\n  http:\n    ip: {ip}\n")
    assert len(errors) == 1
    assert errors[0].startswith("probes.yaml:3:9: settings.http.ip: empty: it would listen on")


def test_access_log_keys_load_and_unused_ones_warn_once(files: ConfigFiles) -> None:
    cfg = files.load(
        "settings:\n"
        "  http:\n"
        "    log: {file: logs/access.log, self_rotate: true, size: 2, age: 7,"
        " backups: 3, compress: true}\n"
    )
    log = cfg.settings.http.log
    assert log is not None
    assert log.file == files.root / "logs" / "access.log"  # relative to the config file
    assert (log.size, log.backups, log.self_rotate) == (2, 3, True)
    warned = [w for w in cfg.warnings if "settings.http.log" in str(w)]
    assert len(warned) == 2 and any(".age" in str(w) for w in warned)
    assert any(".compress" in str(w) for w in warned)
    assert files.load("settings: {}\n").settings.http.log is None
    assert files.load("settings: {}\n").settings.http.max_connections == 100


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("log: {file: a.log, size: 0}", "settings.http.log.size"),
        ("log: {file: a.log, backups: 0}", "settings.http.log.backups"),
        ("log: {size: 3}", "settings.http.log.file"),
        ("max_connections: 0", "settings.http.max_connections"),
    ],
)
def test_bad_http_values_are_located(files: ConfigFiles, text: str, key: str) -> None:
    errors = files.errors(f"settings:\n  http: {{{text}}}\n")
    assert any(f": {key}:" in e for e in errors), errors


@pytest.mark.parametrize(
    "icon", ["https://cdn.example.com/logo.png", "/static/logo.svg", "logo.png", "http://h:8/i"]
)
def test_icon_is_accepted(files: ConfigFiles, icon: str) -> None:
    assert files.load(f"settings:\n  icon: '{icon}'\n").settings.icon == icon


@pytest.mark.parametrize(
    "icon",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "java\\tscript:alert(1)",  # YAML double quotes: a real tab
        "data:image/svg+xml,<svg/>",
        "//evil.example/x.png",
        "https://user:pw@example.com/i.png",
        "vbscript:x",
        "",
    ],
)
def test_icon_other_schemes_are_errors(files: ConfigFiles, icon: str) -> None:
    errors = files.errors(f'settings:\n  icon: "{icon}"\n')
    assert len(errors) == 1 and errors[0].startswith("probes.yaml:2:9: settings.icon:"), errors


def test_paths_resolve_against_the_config(files: ConfigFiles) -> None:
    sub = files.root / "sub"
    sub.mkdir()
    cfg = files.load("settings:\n  http: {log: {file: /abs/access.log}}\n")
    assert cfg.settings.http.log is not None
    assert cfg.settings.http.log.file == Path("/abs/access.log")
