"""Badges: valid SVG whatever the text, escaped, coloured by value, readable without colour."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.web.svg import (
    COLOURS,
    response_time_badge,
    status_badge,
    text_width,
    uptime_badge,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in parse(svg).iter(f"{NS}text")]


def fills(svg: str) -> list[str]:
    return [r.get("fill", "") for r in parse(svg).iter(f"{NS}rect")]


@pytest.mark.parametrize(
    ("status", "colour"), [("up", "up"), ("down", "down"), ("unknown", "unknown")]
)
def test_status_badge_colour_and_text(status, colour):
    svg = status_badge("api", status)
    assert texts(svg) == ["api", status]
    assert fills(svg)[1] == COLOURS[colour]
    root = parse(svg)
    assert root.get("aria-label") == f"api: {status}"
    assert root.find(f"{NS}title").text == f"api: {status}"


@pytest.mark.parametrize(
    ("percent", "shown", "colour"),
    [
        (100.0, "100%", "good"),
        (99.95, "99.95%", "good"),
        (99.5, "99.50%", "fair"),
        (97.0, "97.00%", "poor"),
        (None, "no data", "unknown"),
    ],
)
def test_uptime_badge(percent, shown, colour):
    svg = uptime_badge("db", "30d", percent)
    assert texts(svg) == ["db 30d", shown]
    assert fills(svg)[1] == COLOURS[colour]


@pytest.mark.parametrize(
    ("millis", "shown", "colour"),
    [
        (42.4, "42 ms", "good"),
        (512, "512 ms", "fair"),
        (12_500, "12.5 s", "poor"),
        (None, "no data", "unknown"),
    ],
)
def test_response_time_badge(millis, shown, colour):
    svg = response_time_badge("web", "24h", millis)
    assert texts(svg) == ["web 24h", shown]
    assert fills(svg)[1] == COLOURS[colour]


def test_hostile_names_are_text_not_markup():
    name = "<script>alert(1)</script> \"quoted\" & 'single'"
    svg = status_badge(name, "down")
    assert "<script>" not in svg
    assert texts(svg)[0] == name


def test_width_grows_with_the_text():
    short, long = status_badge("a", "up"), status_badge("a much longer probe name", "up")
    assert int(parse(long).get("width")) > int(parse(short).get("width"))
    assert text_width("mmmm") > text_width("iiii")


def test_long_names_are_clipped():
    svg = status_badge("x" * 500, "up")
    assert len(texts(svg)[0]) == 60 and texts(svg)[0].endswith("…")


@settings(deadline=None, max_examples=200)
@given(name=st.text(max_size=80), status=st.sampled_from(["up", "down", "unknown", "x"]))
def test_any_name_gives_well_formed_svg(name, status):
    # XML 1.0 cannot carry most control characters; names come from YAML, which cannot either.
    name = "".join(c for c in name if c.isprintable())
    svg = status_badge(name, status)
    root = parse(svg)
    assert root.tag == f"{NS}svg"
    assert texts(svg)[0] == (name if len(name) <= 60 else name[:59] + "…")


# A name in YAML's double quotes may hold any escape ("\x00", "\e", "\ud800" via JSON...):
# names are not always printable, and the badge must still be XML.
CONTROLS = [chr(c) for c in (*range(0x20), 0x7F, 0x85, 0x9F)]


@pytest.mark.parametrize(
    "name",
    [
        "api" + "".join(CONTROLS),
        "\x00",
        "a\x1bb",
        "lone \ud800 high",
        "lone \udfff low",
        "\ufffe\uffff",
        "tab\tnew\nline\rcr",
        "<&\x0c>",
    ],
)
def test_names_xml_cannot_hold_are_replaced(name):
    for svg in (
        status_badge(name, "up"),
        uptime_badge(name, "30d", 99.5),
        response_time_badge(name, "24h", 12.0),
    ):
        parse(svg)  # well-formed
        shown = texts(svg)[0]
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in shown)
    # What can be shown is kept; the rest stands out as U+FFFD, not silently dropped.
    assert texts(status_badge("a\x00b", "up"))[0] == "a\ufffdb"
    assert texts(status_badge("a\nb", "up"))[0] == "a b"


@settings(deadline=None, max_examples=300)
@given(
    name=st.text(alphabet=st.characters(blacklist_categories=()), max_size=80),
    status=st.text(alphabet=st.characters(blacklist_categories=()), max_size=10),
)
def test_any_text_at_all_gives_well_formed_svg(name, status):
    svg = status_badge(name, status)
    root = parse(svg)
    assert root.tag == f"{NS}svg"
    svg.encode("utf-8")  # no lone surrogate left: the server can send it
    assert len(texts(svg)[0]) <= 60
