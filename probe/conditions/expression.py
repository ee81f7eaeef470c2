"""EaseProbe's `eval` expressions (the govaluate language), parsed at load, evaluated per check.

    x_int('//total') > 10 && x_str('//status') == 'ok'
    now() - x_time('//updated') < 300
    x_duration('//uptime') > duration('1h') ? true : false

What is understood: numbers, 'text' or "text", `true`/`false`, variables (a name, or any text in
`[brackets]`), function calls, parentheses, and by falling precedence `!`/`-` (prefix), `**`,
`* / %`, `+ -` (numbers; `+` also joins two texts), `== != < <= > >= =~ !~`, `&&`, `||` and
`cond ? a : b`. Numbers are floats, as in govaluate. An ordered comparison between a number and a
text reads the text as a time (Unix seconds, the unit of `x_time` and `now()`), so
`x_time('//updated') > '2024-01-01'` works as in EaseProbe.

A hand-written Pratt parser and a tree walker: Python never evaluates the text, no attribute
access, no loops in the language. The text is capped (MAX_LENGTH), nesting is capped
(MAX_DEPTH), and each operation is checked: an overflowing `**`, a division by zero or a type
mismatch is an `EvalError` that the check reports, never an exception of Python's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from probe.conditions.syntax import ConditionError
from probe.text import printable, quoted

__all__ = [
    "MAX_DEPTH",
    "EvalError",
    "Expression",
    "Node",
    "Value",
    "nodes_of",
    "parse_expression",
    "parse_time",
    "truthy",
]

MAX_LENGTH = 4096
MAX_DEPTH = 64

Value = float | str | bool


class EvalError(Exception):
    """An expression that cannot be evaluated on this check's document (said in its message)."""


@dataclass(frozen=True, slots=True)
class Node:
    kind: str  # num, str, bool, var, call, unary, binary, ternary
    value: Any  # the literal, the variable or function name, or the operator
    children: tuple[Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Expression:
    text: str
    root: Node


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<var>\[[^\]]*\])
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op>\*\*|==|!=|<=|>=|=~|!~|&&|\|\||[-+*/%<>!?:(),])
    )""",
    re.VERBOSE,
)

# Binary operators: precedence (higher binds tighter) and whether they group to the right.
_BINARY: dict[str, tuple[int, bool]] = {
    "||": (2, False),
    "&&": (3, False),
    "==": (4, False),
    "!=": (4, False),
    "<": (4, False),
    "<=": (4, False),
    ">": (4, False),
    ">=": (4, False),
    "=~": (4, False),
    "!~": (4, False),
    "+": (5, False),
    "-": (5, False),
    "*": (6, False),
    "/": (6, False),
    "%": (6, False),
    "**": (7, True),
}
_PREFIX = 8
_TERNARY = 1


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        match = _TOKEN.match(text, i)
        if match is None or match.end() == i:
            raise ConditionError(f"unexpected {quoted(text[i])}", i)
        kind = match.lastgroup
        assert kind is not None
        raw = match.group(kind)
        start = match.start(kind)
        out.append((kind, raw, start))
        i = match.end()
    out.append(("end", "", n))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, op: str) -> None:
        kind, raw, position = self.take()
        if kind != "op" or raw != op:
            shown = "the end" if kind == "end" else quoted(raw)
            raise ConditionError(f"expected {quoted(op)}, found {shown}", position)

    def expression(self, floor: int = 0) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested deeper than {MAX_DEPTH}", self.peek()[2])
        try:
            left = self.prefix()
            while True:
                kind, raw, position = self.peek()
                if kind != "op":
                    break
                if raw == "?" and floor <= _TERNARY:
                    self.take()
                    then = self.expression(0)
                    self.expect(":")
                    otherwise = self.expression(_TERNARY)
                    left = Node("ternary", "?", (left, then, otherwise), position)
                    continue
                rule = _BINARY.get(raw)
                if rule is None or rule[0] < floor:
                    break
                self.take()
                right = self.expression(rule[0] if rule[1] else rule[0] + 1)
                left = Node("binary", raw, (left, right), position)
            return left
        finally:
            self.depth -= 1

    def prefix(self) -> Node:
        kind, raw, position = self.take()
        if kind == "num":
            return Node("num", float(raw), (), position)
        if kind == "str":
            return Node("str", _unescape(raw[1:-1]), (), position)
        if kind == "var":
            return Node("var", raw[1:-1], (), position)
        if kind == "name":
            if raw in ("true", "false"):
                return Node("bool", raw == "true", (), position)
            if self.peek()[:2] == ("op", "("):
                self.take()
                args: list[Node] = []
                if self.peek()[:2] != ("op", ")"):
                    while True:
                        args.append(self.expression(0))
                        if self.peek()[:2] != ("op", ","):
                            break
                        self.take()
                self.expect(")")
                return Node("call", raw, tuple(args), position)
            return Node("var", raw, (), position)
        if kind == "op" and raw == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        if kind == "op" and raw in ("!", "-"):
            operand = self.expression(_PREFIX)
            return Node("unary", raw, (operand,), position)
        shown = "the end" if kind == "end" else quoted(raw)
        raise ConditionError(f"expected a value, found {shown}", position)


def parse_expression(text: str) -> Expression:
    """The parsed expression; raises ConditionError (with the offset) when it is not one."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(text)
    root = parser.expression(0)
    kind, raw, position = parser.peek()
    if kind != "end":
        raise ConditionError(f"unexpected {quoted(raw)} after a complete expression", position)
    return Expression(text, root)


def nodes_of(node: Node, kind: str) -> list[Node]:
    """Every node of `kind` ("call", "var", ...) in the tree, in reading order (walked with a
    stack, not recursion)."""
    found: list[Node] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if item.kind == kind:
            found.append(item)
        stack.extend(reversed(item.children))
    return found


# The layouts EaseProbe tries when it reads a time (Go's ANSIC, UnixDate, RubyDate, Kitchen,
# then RFC 3339 / ISO 8601 forms); a time without a zone is local time, as in EaseProbe.
_TIME_LAYOUTS = (
    "%a %b %d %H:%M:%S %Y",
    "%a %b %d %H:%M:%S %Z %Y",
    "%a %b %d %H:%M:%S %z %Y",
    "%I:%M%p",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
)


def parse_time(text: str) -> float | None:
    """Unix seconds of a time written in one of EaseProbe's layouts, None if it is not one."""
    raw = " ".join(text.split())
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
        for layout in _TIME_LAYOUTS:
            try:
                moment = datetime.strptime(raw, layout)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    try:
        return float(int(moment.timestamp()))
    except (OverflowError, OSError, ValueError):
        return None


def truthy(value: Value) -> bool:
    """How EaseProbe reads an expression's result: a boolean, a number other than 0, a
    non-empty text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    return value != ""


def shown(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    return quoted(printable(value, 60))


Functions = Mapping[str, Callable[[list[Value]], Value]]


def evaluate(expression: Expression, variables: Mapping[str, Value], functions: Functions) -> Value:
    """The value of the expression; raises EvalError saying what could not be done."""
    return _eval(expression.root, variables, functions)


def _number(value: Value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, float):
        raise EvalError(f"{op} needs numbers, not {shown(value)}")
    return value


def _bool(value: Value, op: str) -> bool:
    if not isinstance(value, bool):
        raise EvalError(f"{op} needs true or false, not {shown(value)}")
    return value


def _ordered(op: str, left: Value, right: Value) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left
        b: Any = right
    else:
        a, b = _comparable(left, op), _comparable(right, op)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _comparable(value: Value, op: str) -> float:
    if isinstance(value, str):
        moment = parse_time(value)
        if moment is None:
            raise EvalError(f"{op} compares numbers or times; {shown(value)} is neither")
        return moment
    return _number(value, op)


def _eval(node: Node, variables: Mapping[str, Value], functions: Functions) -> Value:
    kind = node.kind
    if kind in ("num", "str", "bool"):
        return node.value  # type: ignore[no-any-return]
    if kind == "var":
        if node.value not in variables:
            raise EvalError(f"no variable {quoted(node.value)}")
        return variables[node.value]
    if kind == "call":
        args = [_eval(child, variables, functions) for child in node.children]
        return functions[node.value](args)
    if kind == "unary":
        value = _eval(node.children[0], variables, functions)
        if node.value == "!":
            return not _bool(value, "!")
        return -_number(value, "-")
    if kind == "ternary":
        condition = _bool(_eval(node.children[0], variables, functions), "?:")
        return _eval(node.children[1 if condition else 2], variables, functions)
    op = node.value
    left = _eval(node.children[0], variables, functions)
    if op in ("&&", "||"):  # short-circuit, as govaluate does
        first = _bool(left, op)
        if first == (op == "||"):
            return first
        return _bool(_eval(node.children[1], variables, functions), op)
    right = _eval(node.children[1], variables, functions)
    return _binary(op, left, right)


def _binary(op: str, left: Value, right: Value) -> Value:
    if op == "==":
        return type(left) is type(right) and left == right
    if op == "!=":
        return not (type(left) is type(right) and left == right)
    if op in ("<", "<=", ">", ">="):
        return _ordered(op, left, right)
    if op in ("=~", "!~"):
        if not isinstance(left, str) or not isinstance(right, str):
            raise EvalError(f"{op} matches a text against a pattern text")
        try:
            found = re.search(right, left) is not None
        except re.error as exc:
            raise EvalError(f"bad pattern {shown(right)}: {exc}") from None
        return found if op == "=~" else not found
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    a, b = _number(left, op), _number(right, op)
    try:
        if op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        elif op == "*":
            result = a * b
        elif op == "/":
            result = a / b
        elif op == "%":
            result = math.fmod(a, b)
        else:
            result = a**b
    except ZeroDivisionError:
        raise EvalError(f"division by zero in {shown(a)} {op} {shown(b)}") from None
    except (OverflowError, ValueError):
        raise EvalError(f"{shown(a)} {op} {shown(b)} is out of range") from None
    if isinstance(result, complex) or not math.isfinite(result):
        raise EvalError(f"{shown(a)} {op} {shown(b)} is out of range")
    return float(result)
