"""Conditions evaluated against what one check saw (its facts), each with a readable verdict.

The facts are a mapping from placeholder name to value, filled by the prober and the runner:
`CONNECTED` (bool), `RESPONSE_TIME` (ms), `IP`, `STATUS` (int), `BODY` (text), `HEADERS`
(lower-cased names), `CERTIFICATE_EXPIRATION` (ms left), `RESULT` (rows as mappings of column
to value), `ROWS`, `VALUE` (key to value), `EXIT_CODE`, `OUTPUT`. A path into `BODY` reads the
body as JSON, once per check however many conditions use it.

Comparison follows Gatus: `==`/`!=` compare numbers as numbers (`200 == 200.0`), booleans as
`true`/`false`, anything else as text; `<`, `<=`, `>`, `>=` need numbers on both sides, and a
duration (`48h`, `300ms`) counts as milliseconds, the unit of `[RESPONSE_TIME]` and
`[CERTIFICATE_EXPIRATION]`. A placeholder whose value is missing (no such JSON key, a check that
never got an answer) fails every comparison but `!=`, and shows as `(missing)`.

The work per condition is bounded by the size of the facts: one JSON parse per check (Python's
parser refuses nesting deeper than the interpreter's recursion limit with an error, caught here),
path steps no more than the parser's MAX_PATH, glob matching with `str.find` (linear, no
backtracking).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probe.conditions.syntax import Condition, Function, Literal, Operand, Placeholder
from probe.durations import largest_units, parse_duration
from probe.text import printable

__all__ = ["MISSING", "Verdict", "evaluate", "failed_conditions", "glob_match"]

# How much of a value a verdict shows: `[BODY] (<!doctype html>...) == pat(*ok*)`.
SHOWN = 60

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    shown: str  # the condition with each placeholder's value: `[STATUS] (503) == 200`


class _Reading:
    """The facts of one check, with the body's JSON parsed at most once."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.facts = facts
        self._json: Any = None
        self._json_read = False

    def body_json(self) -> Any:
        if not self._json_read:
            self._json_read = True
            body = self.facts.get("BODY")
            try:
                self._json = json.loads(body) if isinstance(body, str | bytes) else MISSING
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
                self._json = MISSING
        return self._json

    def resolve(self, placeholder: Placeholder) -> Any:
        name, path = placeholder.name, placeholder.path
        if name not in self.facts:
            return MISSING
        value = self.facts[name]
        if name == "BODY" and path:
            value = self.body_json()
        elif name == "RESULT" and not path:
            value = _first_cell(value)
        for step in path:
            if value is MISSING:
                break
            value = _step(value, step, lower=name == "HEADERS")
        return value


def _first_cell(rows: Any) -> Any:
    if isinstance(rows, Sequence) and rows:
        first = rows[0]
        if isinstance(first, Mapping):
            return next(iter(first.values()), MISSING)
        if isinstance(first, Sequence) and not isinstance(first, str) and first:
            return first[0]
    return MISSING


def _step(value: Any, step: str | int, *, lower: bool) -> Any:
    if isinstance(step, int):
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return value[step] if step < len(value) else MISSING
        if isinstance(value, Mapping):  # a row's columns by position
            for i, item in enumerate(value.values()):
                if i == step:
                    return item
        return MISSING
    if isinstance(value, Mapping):
        return value.get(step.lower() if lower else step, MISSING)
    return MISSING


def text_of(value: Any) -> str:
    """A value as text, the way comparisons and verdicts read it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return str(value)


def _number(value: Any) -> float | None:
    """A number, or a duration in milliseconds; None for anything else (booleans too)."""
    if isinstance(value, bool) or value is MISSING or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return float(text)
        if text and text[-1].isalpha():
            sign = -1.0 if text.startswith("-") else 1.0  # Go and Gatus read -96h too
            try:
                return sign * parse_duration(text.lstrip("+-")) * 1000.0
            except ValueError:
                return None
    return None


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches `pattern`, where `*` is any run of characters (Gatus's pat):
    the pieces between stars are found in order with str.find, so it is linear."""
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return text == pattern
    first, *middle, last = pieces
    if len(text) < len(first) + len(last) or not text.startswith(first):
        return False
    if not text.endswith(last):
        return False
    at, stop = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, at, stop)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def _value(operand: Operand, reading: _Reading) -> Any:
    if isinstance(operand, Placeholder):
        return reading.resolve(operand)
    if isinstance(operand, Literal):
        return operand.value
    if operand.argument is None:
        return operand  # pat / any: compared by _equal
    value = reading.resolve(operand.argument)
    if operand.name == "has":
        return value is not MISSING
    if value is MISSING:
        return MISSING
    if isinstance(value, str | bytes | Sequence | Mapping):
        return len(value)
    return len(text_of(value))


def _equal(left: Any, right: Any) -> bool:
    if left is MISSING or right is MISSING:
        return False
    for a, b in ((left, right), (right, left)):
        if isinstance(a, Function):
            if a.name == "pat":
                return glob_match(a.values[0], text_of(b))
            return any(_equal(option, b) for option in a.values)
    a_num, b_num = _number(left), _number(right)
    if a_num is not None and b_num is not None:
        return a_num == b_num
    if isinstance(left, bool) or isinstance(right, bool):
        return text_of(left).lower() == text_of(right).lower()
    return text_of(left) == text_of(right)


def _compare(operator: str, left: Any, right: Any) -> bool:
    if operator == "==":
        return _equal(left, right)
    if operator == "!=":
        return not _equal(left, right)
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return False
    if operator == "<":
        return a < b
    if operator == "<=":
        return a <= b
    if operator == ">":
        return a > b
    return a >= b


def _shown(operand: Operand, value: Any) -> str:
    if isinstance(operand, Literal) or (isinstance(operand, Function) and not operand.argument):
        return operand.source
    if value is MISSING:
        shown = "missing"
    elif isinstance(operand, Placeholder) and operand.name == "CERTIFICATE_EXPIRATION":
        shown = _time_left(value)
    else:
        shown = printable(text_of(value), SHOWN)
    return f"{operand.source} ({shown})"


def _time_left(millis: Any) -> str:
    """A certificate's time left as people read it (`29d23h`), not Gatus's milliseconds."""
    if not isinstance(millis, int | float) or not math.isfinite(millis):
        return printable(text_of(millis), SHOWN)
    if millis <= 0:
        return "expired"
    parts = [(n, unit) for n, unit in largest_units(millis / 1000.0) if n]
    return "".join(f"{n}{unit}" for n, unit in parts) or "0s"


def evaluate(condition: Condition, facts: Mapping[str, Any]) -> Verdict:
    """Whether `condition` holds for `facts`, and the condition with the values it read."""
    return _evaluate(condition, _Reading(facts))


def _evaluate(condition: Condition, reading: _Reading) -> Verdict:
    left = _value(condition.left, reading)
    right = _value(condition.right, reading)
    ok = _compare(condition.operator, left, right)
    shown = f"{_shown(condition.left, left)} {condition.operator} {_shown(condition.right, right)}"
    return Verdict(ok, shown)


def failed_conditions(conditions: Sequence[Condition], facts: Mapping[str, Any]) -> list[str]:
    """The verdicts of the conditions that do not hold, in order (empty: all hold)."""
    reading = _Reading(facts)
    return [v.shown for c in conditions if not (v := _evaluate(c, reading)).ok]
