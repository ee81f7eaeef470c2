"""probe.text.printable: the one rule for showing text that came from elsewhere."""

from __future__ import annotations

from probe.text import printable


def test_escape_sequences_and_c1_controls_are_neutralised() -> None:
    shown = printable("\x1b[2J\x1b]0;owned\x07boom\x9b31m\x7f")
    assert shown == "?[2J?]0;owned?boom?31m?"
    assert all(ch.isprintable() for ch in shown)


def test_breaks_become_spaces_so_words_stay_apart() -> None:
    assert printable("line one\r\nline two\tthree\u2028four") == "line one  line two three four"


def test_bidi_overrides_are_replaced_and_ordinary_text_is_kept() -> None:
    assert printable("abc\u202edef") == "abc?def"
    assert printable("héllo wörld — ok ✓") == "héllo wörld — ok ✓"


def test_limit_bounds_the_text() -> None:
    assert printable("x" * 10, limit=10) == "x" * 10
    assert printable("x" * 11, limit=10) == "x" * 7 + "..."
