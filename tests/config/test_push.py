"""`push:` probes in the config: a strong token of their own (from the file or a *_file),
an interval of their own, a grace; every mistake a located error that never shows a token."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from probe.assembly import load_config
from probe.errors import ConfigError
from probe.logs import secret_values
from probe.probers.push import PushSpec

TOKEN = "backup-4Jx9Qm2Lr7Vt"


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    try:
        load_config(path, environ=environ or {})
    except ConfigError as exc:
        return [str(problem).replace(f"{path}:", "") for problem in exc.problems]
    return []


def test_a_push_probe_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    (tmp_path / "token").write_text(TOKEN + "\n")
    path.write_text(
        "settings: {probe: {interval: 10s, timeout: 5s}}\n"
        "push:\n"
        "  - {name: backup, token: '${BACKUP_TOKEN}', interval: 24h, labels: {team: ops}}\n"
        "  - {name: sync, token_file: token, interval: 1s, grace: 500ms, failure: 2}\n"
    )
    config = load_config(path, environ={"BACKUP_TOKEN": "nightly-" + TOKEN})
    assert not config.warnings  # a timeout longer than a push probe's interval is no matter
    backup, sync = config.probes
    assert isinstance(backup, PushSpec) and isinstance(sync, PushSpec)
    assert backup.kind == "push" and not backup.scheduled
    assert backup.grace_seconds == 24 * 3600 / 10  # a tenth of the interval ...
    assert sync.grace_seconds == 0.5
    assert PushSpec.model_validate(
        {"name": "x", "token": TOKEN, "interval": "2m"}
    ).grace_seconds == pytest.approx(60.0)  # ... at least a minute
    assert sync.token.get_secret_value() == TOKEN and sync.failure == 2
    assert backup.result_interval() == pytest.approx(24 * 3600 * 1.1)
    assert TOKEN not in backup.endpoint() + sync.endpoint()
    assert sync.endpoint() == "push every 1s (grace 500ms)"
    # Registered as secrets with the rest of the config: the log hides them.
    assert {TOKEN, "nightly-" + TOKEN} <= set(secret_values(config))
    assert config.secret_files == (tmp_path / "token",)


GUESSABLE = (
    "2:22: push[0].token: too easy to guess (few different characters, a repeating pattern or"
    " a run like abc or 123); use random characters (openssl rand -hex 16)"
)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{name: a, token: abc123, interval: 1h}",
            "2:22: push[0].token: too short (6 characters): a push token is the only credential"
            " of its URL; use at least 16 random characters (openssl rand -hex 16)",
        ),
        (
            "{name: a, token: aaaaaaaaaabbbbbbbbbb, interval: 1h}",
            GUESSABLE,
        ),
        (
            "{name: a, token: abcdefabcdefabcd, interval: 1h}",
            GUESSABLE,
        ),
        (
            "{name: a, token: '0123456789012345', interval: 1h}",
            GUESSABLE,
        ),
        (
            "{name: a, token: abcdefghijklmnop1234, interval: 1h}",
            GUESSABLE,
        ),
        (
            "{name: a, token: deadbeefcafebabe, interval: 1h}",
            GUESSABLE,
        ),
        (
            "{name: a, token: 'abc/def+ghi?jklmnop', interval: 1h}",
            "2:22: push[0].token: only letters, digits and - _ . ~ may be used (they go into a"
            " URL as they are)",
        ),
        (
            "{name: a, token: '${UNSET:-}', interval: 1h}",
            "2:22: push[0].token: empty (an unset environment variable?); set it",
        ),
        ("{name: a, interval: 1h}", "2:5: push[0].token: missing required key"),
        (f"{{name: a, token: {TOKEN}}}", "2:5: push[0].interval: missing required key"),
        (
            f"{{name: a, token: {TOKEN}, interval: 1h, grace: soon}}",
            '2:64: push[0].grace: invalid duration "soon" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)',
        ),
        (
            f"{{name: a, token: {TOKEN}, interval: 1h, grace: 5}}",
            '2:64: push[0].grace: a bare number is not a duration; write "5s"',
        ),
        (
            f"{{name: a, token: {TOKEN}, interval: 1h, grace: -1s}}",
            '2:64: push[0].grace: invalid duration "-1s": must not be negative',
        ),
        (
            f"{{name: a, token: {TOKEN}, interval: 1h, conditions: ['[STATUS] == 200']}}",
            "2:5: push[0]: conditions: push probes have none (the job says up or down)",
        ),
        (
            f"{{name: a, token: {TOKEN}, interval: 1h, tokn: x}}",
            '2:57: push[0].tokn: unknown key "tokn" (did you mean "token"?)',
        ),
    ],
)
def test_mistakes_are_located(tmp_path: Path, entry: str, expected: str) -> None:
    problems = load(tmp_path, f"push:\n  - {entry}\n")
    assert problems == [expected]
    assert TOKEN not in "".join(problems)


def test_two_push_probes_cannot_share_a_token(tmp_path: Path) -> None:
    problems = load(
        tmp_path,
        "push:\n"
        f"  - {{name: backup, token: {TOKEN}, interval: 1d}}\n"
        f"  - {{name: other, token: {TOKEN}x, interval: 1d}}\n"
        f"  - {{name: copy, token: '${{T}}', interval: 1h}}\n",
        environ={"T": TOKEN},
    )
    assert problems == [
        '4:25: push[2].token: the same token as push probe "backup" (line 2); each needs its own'
    ]


def test_one_token_in_two_files_of_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    (folder / "a.yaml").write_text(f"push:\n  - {{name: backup, token: {TOKEN}, interval: 1d}}\n")
    (folder / "b.yaml").write_text(
        f"http:\n  - {{name: web, url: 'http://127.0.0.1:1/'}}\n"
        f"push:\n  - {{name: copy, token: {TOKEN}, interval: 1h}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(folder, environ={})
    problems = [str(problem).replace(f"{folder}/", "") for problem in info.value.problems]
    assert problems == [
        'b.yaml:4:25: push[0].token: the same token as push probe "backup" (a.yaml:2:27);'
        " each needs its own"
    ]
    assert TOKEN not in str(info.value)


def test_random_tokens_pass_the_strength_check() -> None:
    # What the README tells users to run, many times over: never refused.
    for _ in range(2000):
        for token in (secrets.token_hex(16), secrets.token_urlsafe(24)):
            PushSpec.model_validate({"name": "x", "token": token, "interval": "1h"})
