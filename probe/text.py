"""Text from elsewhere (a remote's reply, a command's output) made safe to show.

A service we probe, or a command we run, chooses the bytes of its error replies. Shown raw on a
terminal or in a log, an ESC sequence can recolour, retitle or rewrite the screen, a CR can hide
the start of a line and a newline can forge a log record. Every path that turns such text into
something a person reads goes through `printable()`, one function so the rule is the same
everywhere (result messages, details, `probe check`, logs).
"""

from __future__ import annotations

import json

__all__ = ["escaped", "printable", "quoted"]

_SPACE = " "
_REPLACEMENT = "?"

# Line and column breaks carry meaning (an error spread over lines), so they keep a gap
# between the words they separated; every other control character is only a hazard.
_WHITESPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# Characters that reorder what follows them on display (Trojan Source, CVE-2021-42574), so
# a text could read differently from what it is.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in (*range(0x20), *range(0x7F, 0xA0)):  # C0, DEL and C1
        table[code] = _REPLACEMENT
    for char in _BIDI:
        table[ord(char)] = _REPLACEMENT
    for char in _WHITESPACE:
        table[ord(char)] = _SPACE
    return table


_TABLE = _table()


def printable(text: str, limit: int | None = None) -> str:
    """`text` with no control characters: newlines, tabs and other breaks become spaces; C0
    and C1 controls (ESC, BEL, DEL, CSI, ...) and bidi overrides become "?". With `limit`, at
    most that many characters, the last three "..." when cut."""
    text = text.translate(_TABLE)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    return text


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ESCAPES = {code: _escape(chr(code)) for code in _TABLE}
_ESCAPES.update({code: _escape(chr(code)) for code in range(0xD800, 0xE000)})


def escaped(text: str) -> str:
    """`text` with every control character, bidi override and lone surrogate written as an
    escape (`\\x1b`, `\\u202e`, `\\ud800`): for text we echo back to its author (a config
    value in an error), who needs to see exactly what is there."""
    return text.translate(_ESCAPES)


def quoted(text: str, limit: int = 40) -> str:
    """A user's text inside a message: in double quotes, JSON-escaped (so it stays one line)
    and cut at `limit` characters with "…"."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return json.dumps(shown, ensure_ascii=False)
