"""What EaseProbe users and a hostile user fed the loader (issue 9): each case failed before.

EaseProbe keys that were rejected (`version`, `settings.log.self_rotate`, `panic`/`fatal` log
levels, boolean and number label values), values `check` accepted and `run` could not use
(`interval: 0s`, `retention: 0s`, a NUL in a path), paths that gave a traceback (`~nosuchuser`,
NUL bytes, lone surrogates), numbers without bounds, files that are not configs (`/dev/zero`,
a FIFO, 9 MiB), and control characters echoed back to the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from probe import assembly
from probe.config import find_config_path, load_config
from probe.config.models import MIN_INTERVAL, Settings
from probe.errors import ConfigError
from tests.config.conftest import ConfigFiles
from tests.config.specs import SECTIONS, port

# --- EaseProbe keys and values that must load ------------------------------------------------


def test_easeprobe_version_and_log_rotation_keys_load_with_one_warning_each(
    files: ConfigFiles,
) -> None:
    cfg = files.load(
        "version: v1.5.0\n"
        "settings:\n"
        "  log: {level: info, self_rotate: true, size: 10, age: 7, backups: 3, compress: true}\n"
    )
    warned = sorted(w.path for w in cfg.warnings)
    assert warned == [
        "settings.log.age",
        "settings.log.backups",
        "settings.log.compress",
        "settings.log.self_rotate",
        "settings.log.size",
        "version",
    ]


@pytest.mark.parametrize(("written", "level"), [("panic", "critical"), ("fatal", "critical")])
def test_logrus_levels_panic_and_fatal_mean_only_the_most_severe(
    files: ConfigFiles, written: str, level: str
) -> None:
    cfg = files.load(f"settings:\n  log: {{level: {written}}}\n")
    assert cfg.settings.log.level == level


def test_label_values_may_be_booleans_and_numbers_as_in_easeprobe(files: ConfigFiles) -> None:
    cfg = files.load(
        "tcp:\n  - name: a\n    host: 127.0.0.1:1\n"
        "    labels: {critical: true, paging: false, tier: 1, weight: 0.5, team: ops}\n"
    )
    assert port(cfg.probes[0]).labels == {
        "critical": "true",
        "paging": "false",
        "tier": "1",
        "weight": "0.5",
        "team": "ops",
    }


# --- what `check` accepted and `run` could not use --------------------------------------------


@pytest.mark.parametrize("interval", ["0s", "0ms", "-0s", "1ns", "99ms"])
def test_an_interval_below_the_floor_is_a_located_error(files: ConfigFiles, interval: str) -> None:
    text = f"tcp:\n  - {{name: a, host: '127.0.0.1:1', interval: {interval}}}\n"
    assert files.errors(text) == [
        "probes.yaml:2:46: tcp[0].interval: an interval must be at least 100ms"
    ]
    text = f"settings:\n  probe: {{interval: {interval}}}\n"
    assert files.errors(text) == [
        "probes.yaml:2:21: settings.probe.interval: an interval must be at least 100ms"
    ]


def test_the_interval_floor_itself_is_accepted(files: ConfigFiles) -> None:
    cfg = files.load("tcp:\n  - {name: a, host: '127.0.0.1:1', interval: 100ms}\n")
    assert cfg.probes[0].interval == MIN_INTERVAL


def test_a_zero_timeout_is_an_error(files: ConfigFiles) -> None:
    text = "tcp:\n  - {name: a, host: '127.0.0.1:1', timeout: 0s}\n"
    assert files.errors(text) == [
        "probes.yaml:2:45: tcp[0].timeout: a timeout must be longer than 0s"
    ]


def test_retention_shorter_than_an_hour_is_an_error(files: ConfigFiles) -> None:
    errors = files.errors("settings:\n  store: {retention: 0s}\n")
    assert errors == ["probes.yaml:2:22: settings.store.retention: retention must be at least 1h0m"]
    assert files.load("settings:\n  store: {retention: 1h}\n").settings.store.retention == 3600


# --- paths that gave tracebacks ----------------------------------------------------------------

NUL_PATH = '"a\\0b"'  # a YAML double-quoted NUL
SURROGATE_PATH = '"a\\ud800b"'  # a YAML escape for a lone surrogate
UNKNOWN_USER = 'cannot expand ~nosuchuser-probe: unknown user "nosuchuser-probe"'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"~nosuchuser-probe/x"', UNKNOWN_USER),
        (NUL_PATH, "a path cannot contain a NUL character"),
        (SURROGATE_PATH, "a lone surrogate (a \\uD800-\\uDFFF escape) is not text"),
    ],
)
def test_unusable_paths_are_located_errors(files: ConfigFiles, value: str, message: str) -> None:
    for key in ("store", "status"):
        errors = files.errors(f"settings:\n  {key}: {{path: {value}}}\n")
        assert [e.split(": ", 2)[1:] for e in errors] == [[f"settings.{key}.path", message]]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"~nosuchuser-probe/x"', UNKNOWN_USER),
        (NUL_PATH, "a path cannot contain a NUL character"),
        (SURROGATE_PATH, "a lone surrogate (a \\uD800-\\uDFFF escape) is not text"),
    ],
)
def test_unusable_secret_file_paths_are_located_errors(
    files: ConfigFiles, value: str, message: str
) -> None:
    text = f"http:\n  - name: a\n    url: http://127.0.0.1:1/\n    password_file: {value}\n"
    (error,) = files.errors(text)
    assert error.startswith("probes.yaml:4:20: http[0].password_file: ")
    assert error.endswith(message)


def test_probe_config_with_an_unknown_user_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROBE_CONFIG", "~nosuchuser-probe/probes.yaml")
    with pytest.raises(ConfigError) as info:
        find_config_path(None)
    assert str(info.value) == (
        '$PROBE_CONFIG: cannot expand ~nosuchuser-probe: unknown user "nosuchuser-probe"'
    )


# --- numbers without bounds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "where", "bound"),
    [
        ("probe: {alert: {factor: 1000000000000000000000000000000}}", "probe.alert.factor", 10000),
        ("probe: {alert: {max: 10001}}", "probe.alert.max", 10000),
        ("probe: {failure: 10001}", "probe.failure", 10000),
        ("probe: {success: 99999999}", "probe.success", 10000),
        ("probe: {concurrency: 100000}", "probe.concurrency", 65536),
        ("notify: {retry: {times: 101}}", "notify.retry.times", 100),
    ],
)
def test_counts_have_upper_bounds(
    files: ConfigFiles, settings: str, where: str, bound: int
) -> None:
    (error,) = files.errors(f"settings:\n  {settings}\n")
    assert f": settings.{where}: must be at most {bound}, got " in error


def test_a_probes_own_alert_factor_is_bounded_too(files: ConfigFiles) -> None:
    text = "tcp:\n  - {name: a, host: '127.0.0.1:1', alert: {strategy: exponent, factor: 10001}}\n"
    (error,) = files.errors(text)
    assert "tcp[0].alert.factor: must be at most 10000, got 10001" in error


# --- files that are not configs ----------------------------------------------------------------


def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/dev/zero", sections=SECTIONS)
    assert str(info.value) == (
        "/dev/zero: cannot read config: not a regular file (a device, FIFO or socket)"
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "probes.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_config(fifo, sections=SECTIONS)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader so the thread ends, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("loading a FIFO waited for a writer")
    (err,) = outcome
    assert isinstance(err, ConfigError)
    assert "not a regular file" in str(err)


def test_a_config_over_8_mib_is_refused(files: ConfigFiles) -> None:
    path = files.write("# " + "x" * (8 * 2**20) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, sections=SECTIONS)
    assert str(info.value).endswith("the config is larger than 8 MiB; refusing to load")


# --- what is echoed back is escaped ------------------------------------------------------------


def test_control_characters_in_values_and_keys_are_escaped_in_errors(files: ConfigFiles) -> None:
    text = (
        'tcp:\n  - {name: "a\\e]0;owned\\a", host: 127.0.0.1:1, '
        '"k\\e[2J": 1, timeout: "\\u202e5s"}\n'
    )
    lines = files.errors(text)
    shown = "\n".join(lines)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\u001b[2J" in shown or "\\x1b[2J" in shown
    assert "\\u202e5s" in shown


def test_problem_lines_with_lone_surrogates_can_be_printed(files: ConfigFiles) -> None:
    (line,) = files.errors('tcp:\n  - {name: a, host: 127.0.0.1:1, timeout: "\\ud800"}\n')
    line.encode("utf-8")  # would raise on a lone surrogate
    assert line == (
        "probes.yaml:2:43: tcp[0].timeout: a lone surrogate (a \\uD800-\\uDFFF escape) is not text"
    )
    (line,) = files.errors('tcp:\n  - {name: a, host: 127.0.0.1:1, "\\udfff": 1}\n')
    assert line == "probes.yaml:2:34: tcp[0]: a key cannot hold a lone surrogate"


def test_an_environment_value_that_is_not_utf8_is_an_error(files: ConfigFiles) -> None:
    (line,) = files.errors("tcp:\n  - {name: a, host: '${H}:1'}\n", env={"H": "h\udcff"})
    assert line == (
        "probes.yaml:2:21: tcp[0].host: an environment variable's value is not valid UTF-8"
    )


def run_check(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", "check", "-c", path.name, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
    )


def test_check_prints_the_warnings_beside_the_errors(files: ConfigFiles) -> None:
    path = files.write(
        "version: 2\n"
        "settings:\n  timeformat: x\n"
        "tcp:\n  - {name: a, host: '127.0.0.1:1', interval: 0s}\n"
    )
    done = run_check(path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines == [
        "warning: probes.yaml:1:1: version: accepted for EaseProbe compatibility; not used",
        "warning: probes.yaml:3:3: settings.timeformat: accepted for EaseProbe compatibility; "
        "not used",
        "probes.yaml:5:46: tcp[0].interval: an interval must be at least 100ms",
    ]


def test_check_escapes_a_config_path_with_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "p\x1b[31m.yaml"
    path.write_text("tcp:\n  - {name: a, host: '127.0.0.1:1'}\n")
    done = run_check(path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "p\\x1b[31m.yaml: OK" in done.stdout


def test_defaults_are_within_their_own_bounds() -> None:
    Settings.model_validate({})  # every default passes the validators it is subject to


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("max_redirects: 101", "must be at most 100, got 101"),
        ("max_body: 2GiB", 'must be at most 1073741824, got "2GiB"'),
    ],
)
def test_http_counts_have_upper_bounds(tmp_path: Path, key: str, message: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(f"http:\n  - {{name: a, url: 'http://127.0.0.1:1/', {key}}}\n")
    with pytest.raises(ConfigError) as info:
        assembly.load_config(path)  # the real http prober's spec
    (problem,) = info.value.problems
    assert problem.message == message
