from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.durations import format_duration, largest_units, parse_duration

VALID: list[tuple[str, float]] = [
    ("250ms", 0.25),
    ("30s", 30.0),
    ("1m30s", 90.0),
    ("1.5h", 5400.0),
    ("2h", 7200.0),
    ("7d", 604800.0),
    ("1w", 604800.0),
    ("0s", 0.0),
    ("-0s", 0.0),
    ("+5s", 5.0),
    (" 10s ", 10.0),
    ("1h2m3.5s", 3723.5),
    (".5s", 0.5),
    ("1.s", 1.0),
    ("500us", 0.0005),
    ("500µs", 0.0005),
    ("100ns", 1e-7),
    ("2562047h", 2562047 * 3600.0),  # about Go's maximum
]

INVALID: list[tuple[str, str]] = [
    ("", "empty duration"),
    ("   ", "empty duration"),
    ("10", 'invalid duration "10": a bare number has no unit; write "10s"'),
    ("1.5", 'invalid duration "1.5": a bare number has no unit; write "1.5s"'),
    ("3 sec", 'invalid duration "3 sec" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("10S", 'invalid duration "10S" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("s", 'invalid duration "s" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("1.5.5s", 'invalid duration "1.5.5s" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("5s ago", 'invalid duration "5s ago" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("-5s", 'invalid duration "-5s": must not be negative'),
    ("300y", 'invalid duration "300y" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
    ("2562048h", 'invalid duration "2562048h": too long (at most about 292 years)'),
    ("9" * 400 + "s", f'invalid duration "{"9" * 40}…": too long (at most about 292 years)'),
    ("3\nsec", 'invalid duration "3\\nsec" (examples: 250ms, 30s, 1m30s, 1.5h, 7d)'),
]


@pytest.mark.parametrize(("text", "seconds"), VALID)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (0.0, "0s"),
        (45, "45s"),
        (125, "2m5s"),
        (3600, "1h0m"),
        (3 * 3600 + 59, "3h0m"),
        (2 * 86400 + 4 * 3600, "2d4h"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=30))
@pytest.mark.slow
def test_parse_never_fails_otherwise(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(value) and value >= 0


@settings(deadline=None, max_examples=200)
@given(st.integers(min_value=1, max_value=10**9))
def test_format_parses_back_to_about_the_same(seconds: int) -> None:
    # format_duration is lossy (it shows two units) but never off by more than a unit's worth.
    back = parse_duration(format_duration(seconds))
    assert abs(back - seconds) < max(1.0, seconds * 0.05)


@pytest.mark.parametrize(
    ("seconds", "smallest", "parts"),
    [
        (0, "s", [(0, "s")]),
        (45.4, "s", [(45, "s")]),
        (3 * 3600 + 5 * 60 + 7, "s", [(3, "h"), (5, "m")]),
        (86400, "s", [(1, "d"), (0, "h")]),
        (-5, "s", [(0, "s")]),
        (5 * 60 + 7, "m", [(5, "m")]),
        (2 * 3600 + 5 * 60 + 7, "m", [(2, "h"), (5, "m")]),
    ],
)
def test_largest_units_is_the_one_source_of_every_human_duration(seconds, smallest, parts):
    assert largest_units(seconds, smallest=smallest) == parts
