"""Conditions as Gatus users write them, parsed once at load: `LEFT OP RIGHT`.

A condition compares two operands with one of `==  !=  <=  >=  <  >`, written with a space on
each side (`[STATUS] == 200`, `[BODY].status == UP`, `len([BODY].items) > 0`). An operand is:
- a placeholder, `[NAME]`, with an optional path into what it names: `.key`, `."a key"` (a key
  with dots or spaces), `[index]`: `[BODY].data[0].name`, `[HEADERS].content-type`,
  `[RESULT][1].name`;
- `len(placeholder)` or `has(placeholder)`;
- `pat(glob)` (`*` matches any run of characters) or `any(a, b, ...)`, for `==` and `!=`;
- anything else is literal text (`200`, `UP`, `48h`, `true`; double quotes around it are
  dropped, so `"a == b"` compares with the text a == b).

Hand-written and linear: Python never evaluates the text, no regular expression that can
backtrack, one pass over the text, and a condition longer than MAX_LENGTH is refused, so a
hostile config cannot make loading slow. Errors are `ConditionError`s that carry the 0-based
offset of the trouble.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from probe.text import quoted

__all__ = [
    "MAX_LENGTH",
    "OPERATORS",
    "Condition",
    "ConditionError",
    "Function",
    "Literal",
    "Operand",
    "Placeholder",
    "names_read",
    "parse_condition",
]

# Longer conditions are refused at load: a condition is a line of config, not a document.
MAX_LENGTH = 4096
# A path deeper than this is refused (a JSON body nests deeper only to attack).
MAX_PATH = 64

# Checked in this order at each position, so `<=` is not read as `<` followed by `=`.
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


class ConditionError(ValueError):
    """A condition that cannot be parsed: `position` is the 0-based offset of the trouble."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position + 1})"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """`[NAME]` plus its path: keys (str) and indexes (int), in order."""

    name: str
    path: tuple[str | int, ...]
    text: str  # as written, for messages
    position: int

    @property
    def source(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Function:
    """`len(x)`, `has(x)` (x a placeholder), `pat(glob)`, `any(a, b, ...)` (literal texts)."""

    name: str
    argument: Placeholder | None  # len, has
    values: tuple[str, ...]  # pat: one glob; any: the alternatives
    text: str
    position: int

    @property
    def source(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Literal:
    value: str
    text: str
    position: int

    @property
    def source(self) -> str:
        return self.text


Operand = Placeholder | Function | Literal


@dataclass(frozen=True, slots=True)
class Condition:
    left: Operand
    operator: str
    right: Operand
    text: str

    def placeholders(self) -> list[Placeholder]:
        """Every placeholder the condition reads, left to right."""
        found: list[Placeholder] = []
        for side in (self.left, self.right):
            if isinstance(side, Placeholder):
                found.append(side)
            elif isinstance(side, Function) and side.argument is not None:
                found.append(side.argument)
        return found


def _split(text: str) -> tuple[int, str]:
    """The offset and operator of the one comparison in `text`: the first operator with a
    space on each side outside brackets, parentheses and double quotes."""
    opened: list[int] = []  # offsets of the brackets and parentheses still open
    quote_at = -1  # offset of the open double quote, -1 outside quotes
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote_at >= 0:
            if c == "\\" and i + 1 < n:
                i += 2
                continue
            if c == '"':
                quote_at = -1
        elif c == '"':
            quote_at = i
        elif c in "([":
            opened.append(i)
        elif c in ")]":
            if opened:
                opened.pop()
        elif not opened and c == " ":
            for op in OPERATORS:
                end = i + 1 + len(op)
                if text.startswith(op, i + 1) and end < n and text[end] == " ":
                    return i + 1, op
        i += 1
    if quote_at >= 0:
        raise ConditionError("a double quote that is never closed", quote_at)
    if opened:
        raise ConditionError(f"{quoted(text[opened[0]])} is never closed", opened[0])
    single = text.find(" = ")
    if single >= 0:
        raise ConditionError("compare with == (a single = is not an operator)", single + 1)
    raise ConditionError(
        "no comparison: write LEFT OP RIGHT with one of == != < <= > >= between spaces,"
        " e.g. [STATUS] == 200",
        0,
    )


def _unquote(text: str, position: int) -> str:
    """The text inside double quotes, with `\\"` and `\\\\` read as escapes."""
    out: list[str] = []
    i = 1
    while i < len(text) - 1:
        c = text[i]
        if c == "\\" and i + 1 < len(text) - 1:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            raise ConditionError('a quote inside a quoted text must be written \\"', position + i)
        out.append(c)
        i += 1
    return "".join(out)


def _placeholder(text: str, position: int) -> Placeholder:
    close = text.find("]")
    if close < 0:
        raise ConditionError("placeholder without its closing ]", position)
    name = text[1:close]
    if not name or not all(c.isascii() and (c.isupper() or c == "_") for c in name):
        raise ConditionError(
            f"{quoted(text[: close + 1])} is not a placeholder: write its name in capitals,"
            " as [STATUS]",
            position,
        )
    return Placeholder(name, _path(text, close + 1, position), text, position)


def _path(text: str, i: int, position: int) -> tuple[str | int, ...]:
    """The path after a placeholder's name: `.key`, `."quoted key"`, `[index]`, repeated."""
    path: list[str | int] = []
    n = len(text)
    while i < n:
        if len(path) >= MAX_PATH:
            raise ConditionError(f"a path of more than {MAX_PATH} steps", position + i)
        c = text[i]
        if c == "[":
            close = text.find("]", i)
            digits = text[i + 1 : close] if close > 0 else ""
            if not digits.isascii() or not digits.isdigit():
                raise ConditionError("an index is written [0], [1], ...", position + i)
            path.append(int(digits))
            i = close + 1
        elif c == ".":
            i += 1
            if i < n and text[i] == '"':
                end = i + 1
                while end < n and text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                if end >= n:
                    raise ConditionError("a quoted key without its closing quote", position + i)
                path.append(_unquote(text[i : end + 1], position + i))
                i = end + 1
            else:
                start = i
                while i < n and text[i] not in ".[":
                    i += 1
                key = text[start:i]
                if not key or " " in key:
                    raise ConditionError(
                        'a key after "." (quote a key with spaces or dots: ."a key")',
                        position + start,
                    )
                path.append(key)
        else:
            raise ConditionError(
                f"unexpected {quoted(c)} after the placeholder (a path continues with . or [)",
                position + i,
            )
    return tuple(path)


def _arguments(inner: str, position: int) -> tuple[str, ...]:
    """Comma-separated texts (any's alternatives), each trimmed and unquoted."""
    values: list[str] = []
    start = 0
    quote = False
    for i, c in enumerate([*inner, ","]):
        if c == '"' and (i == 0 or inner[i - 1] != "\\"):
            quote = not quote
        elif c == "," and not quote:
            raw = inner[start:i]
            stripped = raw.strip()
            at = position + start + (len(raw) - len(raw.lstrip()))
            if not stripped:
                raise ConditionError("an empty value in any(...)", at)
            values.append(_literal_value(stripped, at))
            start = i + 1
    return tuple(values)


def _literal_value(text: str, position: int) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _unquote(text, position)
    return text


def _function(name: str, text: str, position: int) -> Function:
    if not text.endswith(")"):
        raise ConditionError(f"{name}( without its closing )", position + len(text) - 1)
    inner = text[len(name) + 1 : -1]
    at = position + len(name) + 1
    if name in ("len", "has"):
        arg = inner.strip()
        lead = len(inner) - len(inner.lstrip())
        if not arg.startswith("["):
            raise ConditionError(f"{name}() takes a placeholder, as {name}([BODY].items)", at)
        return Function(name, _placeholder(arg, at + lead), (), text, position)
    if name == "pat":
        return Function(name, None, (_literal_value(inner, at),), text, position)
    return Function(name, None, _arguments(inner, at), text, position)


def _operand(raw: str, position: int) -> Operand:
    text = raw.strip()
    position += len(raw) - len(raw.lstrip())
    if not text:
        raise ConditionError("a comparison needs something on each side", position)
    if text.startswith("["):
        return _placeholder(text, position)
    for name in ("len", "has", "pat", "any"):
        if text.startswith(name + "("):
            return _function(name, text, position)
    return Literal(_literal_value(text, position), text, position)


def names_read(conditions: Iterable[Condition]) -> frozenset[str]:
    """The placeholder names `conditions` read (what a prober must fill for them)."""
    return frozenset(p.name for condition in conditions for p in condition.placeholders())


@functools.lru_cache(maxsize=4096)
def parse_condition(text: str) -> Condition:
    """The parsed condition; raises ConditionError. Cached: a condition is parsed once,
    however many probes or reloads use it."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    at, operator = _split(text)
    left = _operand(text[:at], 0)
    right = _operand(text[at + len(operator) :], at + len(operator))
    if operator not in ("==", "!="):
        for side in (left, right):
            if isinstance(side, Function) and side.name in ("pat", "any"):
                raise ConditionError(
                    f"{side.name}() compares with == or !=, not {operator}", side.position
                )
    matchers = [s for s in (left, right) if isinstance(s, Function) and s.name in ("pat", "any")]
    if len(matchers) == 2:
        raise ConditionError("pat() and any() cannot be compared with each other", at)
    return Condition(left, operator, right, text)
