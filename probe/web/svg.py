"""Badges as small SVG documents, in the two-part style README files use ("api | up").

Pure functions over plain values: the server decides what to show, these only draw it.
Every text is XML-escaped (probe names are user text, and may be hostile); widths come from
per-character advance estimates for 11px Verdana, the font badges are drawn in, so a badge
fits its text without measuring fonts at run time. Each badge carries a <title> and an
aria-label, so the colour is never the only carrier of the meaning.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "COLOURS",
    "badge",
    "response_time_badge",
    "status_badge",
    "text_width",
    "uptime_badge",
]

# Colours with enough contrast for white text (WCAG AA for 11px bold is not reachable on
# every hue; these are the darker variants of the usual badge palette).
COLOURS = {
    "up": "#2e7d32",
    "down": "#c62828",
    "unknown": "#616161",
    "good": "#2e7d32",
    "fair": "#9e6a00",
    "poor": "#c62828",
    "label": "#444d56",
}

# Advance widths (px) of 11px Verdana for the characters badges mostly show; others use the
# average. Estimates are enough: a badge a few pixels too wide is fine, clipped text is not.
_NARROW = set("fijlrt.,:;'|!()[] ")
_WIDE = set("mwMW@%")
_MAX_TEXT = 60


def text_width(text: str) -> int:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 4.0
        elif char in _WIDE:
            width += 10.0
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 6.8
    return int(width + 0.5)


# What XML 1.0 cannot hold at all (C0 controls but tab/newline/CR, lone surrogates, U+FFFE
# and U+FFFF), plus DEL and the C1 controls, which it allows but nothing draws: an SVG with
# any of the former is not well-formed, and a badge is one line of text anyway.
_UNDRAWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINE_BREAKS = re.compile("[\t\n\r]")


def _clean(text: str) -> str:
    """`text` as a badge can show it: whitespace controls become spaces, characters XML
    cannot carry become U+FFFD (the replacement character), so the name stays recognisable."""
    return _UNDRAWABLE.sub("\ufffd", _LINE_BREAKS.sub(" ", text))


def _clip(text: str) -> str:
    text = _clean(text)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def badge(label: str, value: str, colour: str) -> str:
    """A badge reading `label | value`, the value on `colour`; well-formed XML whatever the
    texts hold."""
    label, value = _clip(label), _clip(value)
    left = text_width(label) + 12
    right = text_width(value) + 12
    total = left + right
    title = f"{label}: {value}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f" aria-label={quoteattr(title)}>"
        f"<title>{escape(title)}</title>"
        f'<rect width="{left}" height="20" fill="{COLOURS["label"]}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill={quoteattr(colour)}/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif"'
        ' font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{escape(value)}</text>'
        "</g></svg>"
    )


def status_badge(name: str, status: str) -> str:
    """`name | up` (green), `down` (red), `unknown` or `no data` (grey)."""
    colour = COLOURS.get(status, COLOURS["unknown"])
    return badge(name, status, colour)


def uptime_badge(name: str, window: str, percent: float | None) -> str:
    """`name 30d | 99.95%`: green from 99.9%, amber from 99%, red below; grey with no data."""
    label = f"{name} {window}"
    if percent is None:
        return badge(label, "no data", COLOURS["unknown"])
    if percent >= 99.9:
        colour = COLOURS["good"]
    elif percent >= 99.0:
        colour = COLOURS["fair"]
    else:
        colour = COLOURS["poor"]
    shown = f"{percent:.2f}%" if percent < 100 else "100%"
    return badge(label, shown, colour)


def response_time_badge(name: str, window: str, millis: float | None) -> str:
    """`name 24h | 123 ms` (the window's p95): green under 300 ms, amber under 1 s, red above."""
    label = f"{name} {window}"
    if millis is None:
        return badge(label, "no data", COLOURS["unknown"])
    if millis < 300:
        colour = COLOURS["good"]
    elif millis < 1000:
        colour = COLOURS["fair"]
    else:
        colour = COLOURS["poor"]
    shown = f"{millis:.0f} ms" if millis < 10_000 else f"{millis / 1000:.1f} s"
    return badge(label, shown, colour)
