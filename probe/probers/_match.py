"""EaseProbe's `contain` / `not_contain` / `regex` keys, shared by the http, shell, ssh and
websocket probers: plain substrings by default, regular expressions with `regex: true`; ""
means no check."""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import ValidationInfo, field_validator

from probe.config.models import StrictModel

__all__ = ["Matcher", "PatternKeys", "check_pattern", "mismatch"]


def check_pattern(value: str | None, info: ValidationInfo) -> str | None:
    """Field validator for contain/not_contain; `regex` must be declared before them."""
    if not value:
        return None  # EaseProbe's "" means "no check"
    if info.data.get("regex"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    return value


class PatternKeys(StrictModel):
    """The keys, for a spec to inherit: `regex` first, so the validator of the others can
    read it (pydantic validates fields in declaration order)."""

    regex: bool = False
    contain: str | None = None
    not_contain: str | None = None

    @field_validator("contain", "not_contain")
    @classmethod
    def _valid_pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_pattern(value, info)


class Matcher(NamedTuple):
    pattern: re.Pattern[str]
    shown: str
    is_regex: bool

    @classmethod
    def build(cls, text: str | None, is_regex: bool) -> Matcher | None:
        if text is None:
            return None
        pattern = re.compile(text if is_regex else re.escape(text))
        shown = text if len(text) <= 60 else text[:57] + "..."
        return cls(pattern, f'"{shown}"', is_regex)


def mismatch(
    text: str, contain: Matcher | None, not_contain: Matcher | None, subject: str, where: str = ""
) -> str | None:
    """What `text` fails of `contain` / `not_contain`, said of `subject` ("body", "output",
    "reply"): `body does not contain "ok"`, `output matches "err.*"`; None when it passes.
    `where` follows the pattern (" (in the first 1024 bytes)" for a cut text)."""
    if contain is not None and contain.pattern.search(text) is None:
        verb = "match" if contain.is_regex else "contain"
        return f"{subject} does not {verb} {contain.shown}{where}"
    if not_contain is not None and not_contain.pattern.search(text) is not None:
        verb = "matches" if not_contain.is_regex else "contains"
        return f"{subject} {verb} {not_contain.shown}{where}"
    return None
