"""The `maintenance:` keys: a valid file loads; each bad input is reported where it is."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from probe import assembly
from tests.config.conftest import ConfigFiles

PROBES = """\
http:
  - name: api
    url: http://127.0.0.1:8080/health
  - name: orders db
    url: http://127.0.0.1:8080/db
"""


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_valid_windows_load_with_the_real_probers(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        d(
            """
            settings:
              timezone: Europe/Berlin
            maintenance:
              - name: nightly backup
                every: daily
                start: "23:30"
                duration: 1h
                timezone: Europe/London
                probes: [orders db, api]
              - name: datacenter move
                start: 2026-12-20T22:00:00+01:00
                end: 2026-12-21T04:00:00Z
            http:
              - name: api
                url: http://127.0.0.1:8080/health
                maintenance:
                  - every: [sunday, monday]
                    start: "02:00"
                    duration: 30m
              - name: orders db
                url: http://127.0.0.1:8080/db
            """
        )
    )
    config = assembly.load_config(path)
    nightly, move = config.maintenance
    assert nightly.name == "nightly backup" and nightly.probes == ["orders db", "api"]
    assert nightly.recurring and len(nightly.every or []) == 7
    assert not move.recurring and move.end == "2026-12-21T04:00:00Z"
    own = config.probes[0].maintenance[0]
    assert own.every == ["sunday", "monday"] and own.duration == 1800
    assert own.timezone_or(config.settings.timezone) == "Europe/Berlin"
    assert config.probes[1].maintenance == []
    from probe.config.maintenance import parse_time_of_day

    assert parse_time_of_day(own.start) == time(2)


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        (
            '- start: "2026-12-21T04:00:00+01:00"\n  end: "2026-12-20T22:00:00+01:00"',
            'probes.yaml:3:10: maintenance[0].end: the end "2026-12-20T22:00:00+01:00" is'
            " not after the start",
        ),
        (
            '- start: "2026-12-20T22:00:00+01:00"\n  end: "2026-12-20T22:00:00+01:00"',
            'probes.yaml:3:10: maintenance[0].end: the end "2026-12-20T22:00:00+01:00" is'
            " not after the start",
        ),
        (
            "- every: daily\n  duration: 1h",
            "probes.yaml:2:5: maintenance[0].start: missing required key",
        ),
        (
            '- every: daily\n  start: "02:00"',
            'probes.yaml:2:5: maintenance[0]: a recurring window needs "duration" (such as 1h)',
        ),
        (
            '- every: daily\n  start: "02:00"\n  duration: 1h\n  end: "2026-12-20T22:00:00Z"',
            "probes.yaml:5:10: maintenance[0].end: a recurring window has a duration, not an end",
        ),
        (
            '- start: "2026-12-20T22:00:00Z"',
            'probes.yaml:2:5: maintenance[0]: a one-off window needs "end" (or "every:" to recur)',
        ),
        (
            '- start: "2026-12-20T22:00:00Z"\n  end: "2026-12-21T22:00:00Z"\n  duration: 1h',
            'probes.yaml:4:15: maintenance[0].duration: a one-off window has an "end", not a'
            ' duration (or add "every:")',
        ),
        (
            '- every: [monday, thurday]\n  start: "02:00"\n  duration: 1h',
            'probes.yaml:2:21: maintenance[0].every[1]: unknown weekday "thurday" (did you'
            ' mean "thursday"?)',
        ),
        (
            '- every: weekly\n  start: "02:00"\n  duration: 1h',
            "probes.yaml:2:12: maintenance[0].every: expected daily or a list of weekdays,"
            ' got "weekly"',
        ),
        (
            '- every: daily\n  start: "02:00"\n  duration: 1h\n  timezone: Europe/Berlinn',
            'probes.yaml:5:15: maintenance[0].timezone: unknown time zone "Europe/Berlinn"'
            " (an IANA name such as UTC or Europe/Berlin)",
        ),
        (
            '- every: daily\n  start: "24:10"\n  duration: 1h',
            'probes.yaml:3:12: maintenance[0].start: "24:10" is out of range (00:00 to 23:59)',
        ),
        (
            '- every: daily\n  start: "02:61"\n  duration: 1h',
            'probes.yaml:3:12: maintenance[0].start: "02:61" is out of range (00:00 to 23:59)',
        ),
        (
            '- every: daily\n  start: "02:00"\n  duration: 0s',
            "probes.yaml:4:15: maintenance[0].duration: a window must last longer than 0s",
        ),
        (
            '- every: daily\n  start: "02:00"\n  duration: 8d',
            "probes.yaml:4:15: maintenance[0].duration: a recurring window lasts at most 7 days",
        ),
        (
            '- start: "2026-12-20T22:00:00"\n  end: "2026-12-21T04:00:00+01:00"',
            'probes.yaml:2:12: maintenance[0].start: "2026-12-20T22:00:00" has no offset;'
            " write one (+01:00, or Z for UTC) so the instant is unambiguous",
        ),
        (
            '- start: "tomorrow"\n  end: "2026-12-21T04:00:00+01:00"',
            "probes.yaml:2:12: maintenance[0].start: expected a date and time with an offset"
            ' such as 2026-12-20T22:00:00+01:00 for a one-off window (or "every:" for a'
            ' recurring one), got "tomorrow"',
        ),
        (
            '- every: daily\n  start: "02:00"\n  duration: 1h\n  probes: [api, order db]',
            'probes.yaml:5:19: maintenance[0].probes[1]: no probe is named "order db" (did'
            ' you mean "orders db"?)',
        ),
        (
            "every: daily",
            "probes.yaml:2:3: maintenance: expected a list of maintenance windows, not a mapping",
        ),
    ],
)
def test_bad_windows_are_located(files: ConfigFiles, windows: str, expected: str) -> None:
    text = "maintenance:\n" + textwrap.indent(windows, "  ") + "\n" + PROBES
    assert files.errors(text) == [expected]


def test_probes_key_inside_a_probes_own_window(files: ConfigFiles) -> None:
    errors = files.errors(
        d(
            """
            http:
              - name: api
                url: http://127.0.0.1:8080/health
                maintenance:
                  - every: [sunday]
                    start: "02:00"
                    duration: 30m
                    probes: [api]
            """
        )
    )
    assert errors == ['probes.yaml:8:9: http[0].maintenance[0].probes: unknown key "probes"']


def test_a_probes_own_window_is_checked_as_a_whole(files: ConfigFiles) -> None:
    errors = files.errors(
        d(
            """
            http:
              - name: api
                url: http://127.0.0.1:8080/health
                maintenance:
                  - every: [sunday]
                    start: "2:00"
            """
        )
    )
    assert errors == [
        'probes.yaml:5:9: http[0].maintenance[0]: a recurring window needs "duration" (such as 1h)'
    ]
