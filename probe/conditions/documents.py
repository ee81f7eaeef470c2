"""EaseProbe's `eval`: values extracted from an answer's body, then an expression over them.

    eval:
      doc: json                         # json | xml | html | text
      expression: "x_int('//total') > 10 && updated > now() - 300"
      variables:
        - {name: updated, type: time, query: "//updated"}

Queries are XPath 1.0 for xml and html (lxml, with a parser that resolves no entities and
reaches no network: a body is hostile input), and for json too, over the JSON turned into a tree
the way EaseProbe's jsonquery sees it: each key an element (characters a tag cannot hold become
`_`), each array item an element of its own (`//items/*[2]`), an absolute path starting at the
top object (`/status`). For text, a query is a regular expression: the value is its first group
when it has one, else the whole match. A query that selects nothing gives "" (xml, html, json);
a pattern that matches nothing is an error (text), as in EaseProbe.

The functions keep EaseProbe's meanings: `x_str`, `x_int`, `x_float`, `x_bool` (Go's spellings
of booleans), `x_time` (Unix seconds), `x_duration` (nanoseconds, Go's Duration), `strlen`
(bytes of UTF-8), `now()` (Unix seconds), `duration('5m')` (nanoseconds).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from probe.conditions.expression import (
    EvalError,
    Expression,
    Value,
    evaluate,
    nodes_of,
    parse_expression,
    parse_time,
    shown,
    truthy,
)
from probe.conditions.syntax import ConditionError
from probe.durations import parse_duration
from probe.text import printable, quoted

__all__ = ["DOC_TYPES", "VAR_TYPES", "EvalProgram", "EvalVariable", "compile_eval"]

DocType = Literal["json", "xml", "html", "text"]
DOC_TYPES: tuple[str, ...] = ("json", "xml", "html", "text")
VAR_TYPES: tuple[str, ...] = ("int", "float", "string", "bool", "time", "duration")
_EXTRACTORS = {
    "x_str": "string",
    "x_int": "int",
    "x_float": "float",
    "x_bool": "bool",
    "x_time": "time",
    "x_duration": "duration",
}
_ARITY = {**dict.fromkeys(_EXTRACTORS, 1), "strlen": 1, "now": 0, "duration": 1}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_JSON_ROOT = "json"
_NOT_A_TAG = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class EvalVariable:
    name: str
    type: str
    query: str


class _Document:
    """One body, parsed (once) as its `doc` type says."""

    def __init__(self, doc: DocType, text: str) -> None:
        self.doc = doc
        self.text = text
        self._root: Any = None

    def root(self) -> Any:
        if self._root is None:
            self._root = _parse(self.doc, self.text)
        return self._root

    def query(self, query: str) -> str:
        if self.doc == "text":
            try:
                match = re.search(query, self.text)
            except re.error as exc:
                raise EvalError(f"bad pattern {quoted(query)}: {exc}") from None
            if match is None:
                raise EvalError(f"no match for {quoted(query)}")
            return match.group(1) if match.re.groups else match.group(0)
        if self.doc == "json" and query.startswith("/") and not query.startswith("//"):
            query = f"/{_JSON_ROOT}{query}"
        from lxml import etree

        try:
            found = self.root().xpath(query)
        except etree.XPathError as exc:
            raise EvalError(f"bad XPath {quoted(query)}: {exc}") from None
        return _first_text(found)


def _parse(doc: DocType, text: str) -> Any:
    from lxml import etree, html

    if doc == "json":
        try:
            return _json_tree(json.loads(text))
        except (ValueError, RecursionError) as exc:
            raise EvalError(f"the body is not JSON ({printable(str(exc), 80)})") from None
    try:
        if doc == "xml":
            parser = etree.XMLParser(
                resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
            )
            return etree.fromstring(text.encode("utf-8"), parser)
        return html.document_fromstring(text, parser=html.HTMLParser(no_network=True))
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise EvalError(f"the body is not {doc.upper()} ({printable(str(exc), 80)})") from None


def _tag(key: str) -> str:
    tag = _NOT_A_TAG.sub("_", key) or "_"
    return "_" + tag if not (tag[0].isalpha() or tag[0] == "_") else tag


def _json_tree(value: Any) -> Any:
    """The JSON as an element tree, built without recursion (a body may nest deeply)."""
    from lxml import etree

    root = etree.Element(_JSON_ROOT)
    stack: list[tuple[Any, Any]] = [(root, value)]
    while stack:
        element, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((etree.SubElement(element, _tag(str(key))), child))
        elif isinstance(item, list):
            for child in item:
                stack.append((etree.SubElement(element, "_"), child))
        else:
            element.text = _scalar(item)
    return root


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _first_text(found: Any) -> str:
    if isinstance(found, list):
        if not found:
            return ""
        found = found[0]
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, float):
        return _scalar(found)
    if isinstance(found, str):
        return str(found)
    text_content = getattr(found, "itertext", None)
    if text_content is not None:
        return "".join(text_content())
    return str(found)


def _convert(text: str, kind: str, query: str) -> Value:
    """The extracted text as `kind`, with EaseProbe's rules (an error if it does not read)."""
    raw = text.strip() if kind != "string" else text
    try:
        if kind == "string":
            return text
        if kind == "int":
            if not re.fullmatch(r"[+-]?\d+", raw):
                raise ValueError
            return float(int(raw))
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw in _TRUE or raw in _FALSE:
                return raw in _TRUE
            raise ValueError
        if kind == "time":
            moment = parse_time(raw)
            if moment is None:
                raise ValueError
            return moment
        return parse_duration(raw) * 1e9
    except ValueError:
        raise EvalError(f"{quoted(query)} gave {shown(text)}, not a {kind}") from None


@dataclass(frozen=True, slots=True)
class EvalProgram:
    """A checked `eval`: run it on a body with `judge`."""

    doc: DocType
    expression: Expression
    variables: tuple[EvalVariable, ...]

    def judge(self, body: str, *, clock: Callable[[], float] = time.time) -> tuple[bool, str]:
        """Whether the expression holds on `body`, and what was read (for the message):
        `x_int('//total') = 7, updated = 1717171717`. Raises EvalError when it cannot say."""
        document = _Document(self.doc, body)
        values: dict[str, Value] = {}
        read: list[str] = []
        for variable in self.variables:
            value = _convert(document.query(variable.query), variable.type, variable.query)
            values[variable.name] = value
            read.append(f"{variable.name} = {shown(value)}")

        def extractor(name: str) -> Callable[[list[Value]], Value]:
            def extract(args: list[Value]) -> Value:
                query = args[0]
                if not isinstance(query, str):
                    raise EvalError(f"{name}() takes a query text")
                value = _convert(document.query(query), _EXTRACTORS[name], query)
                read.append(f"{name}({quoted(query)}) = {shown(value)}")
                return value

            return extract

        def strlen(args: list[Value]) -> Value:
            if not isinstance(args[0], str):
                raise EvalError("strlen() takes a text")
            return float(len(args[0].encode("utf-8")))

        def duration(args: list[Value]) -> Value:
            if not isinstance(args[0], str):
                raise EvalError("duration() takes a text such as '5m'")
            try:
                return parse_duration(args[0]) * 1e9
            except ValueError as exc:
                raise EvalError(str(exc)) from None

        functions: dict[str, Callable[[list[Value]], Value]] = {
            **{name: extractor(name) for name in _EXTRACTORS},
            "strlen": strlen,
            "now": lambda args: float(int(clock())),
            "duration": duration,
        }
        result = truthy(evaluate(self.expression, values, functions))
        return result, ", ".join(read)


def compile_eval(
    doc: str, expression: str, variables: Sequence[Mapping[str, str]] | Sequence[EvalVariable]
) -> EvalProgram:
    """The checked program; raises ConditionError (offset into `expression`) or ValueError
    (a variable or query that cannot work) with a message fit for a config error."""
    if doc not in DOC_TYPES:
        raise ValueError(f"doc must be one of {', '.join(DOC_TYPES)}")
    declared = [
        v if isinstance(v, EvalVariable) else EvalVariable(v["name"], v["type"], v["query"])
        for v in variables
    ]
    for variable in declared:
        if variable.type not in VAR_TYPES:
            raise ValueError(
                f"variable {quoted(variable.name)}: type must be one of {', '.join(VAR_TYPES)}"
            )
        _check_query(doc, variable.query, f"variable {quoted(variable.name)}")
    parsed = parse_expression(expression)
    names = {v.name for v in declared}
    for node in nodes_of(parsed.root, "var"):
        if node.value not in names:
            raise ConditionError(
                f"{quoted(node.value)} is not a variable (declare it under variables)",
                node.position,
            )
    for call in nodes_of(parsed.root, "call"):
        arity = _ARITY.get(call.value)
        if arity is None:
            known = ", ".join(sorted(_ARITY))
            raise ConditionError(
                f"no function {quoted(call.value)} (there are {known})", call.position
            )
        if len(call.children) != arity:
            raise ConditionError(
                f"{call.value}() takes {arity} argument{'s' if arity != 1 else ''}",
                call.position,
            )
        if call.value in _EXTRACTORS and call.children[0].kind == "str":
            _check_query(doc, call.children[0].value, f"{call.value}()")
    return EvalProgram(doc, parsed, tuple(declared))  # type: ignore[arg-type]


def _check_query(doc: str, query: str, where: str) -> None:
    if doc == "text":
        try:
            re.compile(query)
        except re.error as exc:
            raise ValueError(f"{where}: bad pattern {quoted(query)}: {exc}") from None
        return
    from lxml import etree

    try:
        etree.XPath(query)
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"{where}: bad XPath {quoted(query)}: {exc}") from None
