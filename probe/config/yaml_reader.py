"""A config file's YAML, read into plain values with the position of each.

1. read the file (a regular file of bounded size) and compose the YAML node tree (positions
   kept, nothing constructed yet);
2. convert nodes to plain values, recording the line/column of every value and key by key path
   (duplicate keys, which YAML would silently collapse, are reported here).

Scalars resolve by YAML 1.2's core schema, as Go's yaml.v3 (EaseProbe) reads them.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.reader import ReaderError

from probe.config.models import usable_path
from probe.config.source import Loc, Pos, Source
from probe.errors import ConfigError, ConfigProblem
from probe.text import quoted

__all__ = ["MAX_CONFIG_BYTES", "Converter", "YAMLLoader", "has_surrogate", "parse_file"]

# Bounds that keep hostile input (deep nesting, "billion laughs" aliases) from costing more
# than a moment; real configs are far below both.
_MAX_DEPTH = 64
_MAX_ALIAS_VALUES = 250_000
# Real configs are kilobytes (10,000 probes are ~1.5 MiB); loading 8 MiB takes seconds.
MAX_CONFIG_BYTES = 8 * 2**20


def _read(path: Path, src: Source) -> bytes:
    """The file's bytes: a regular file of at most MAX_CONFIG_BYTES, else a ConfigError
    (`-c /dev/zero` must not eat the memory, nor a FIFO hang the command)."""
    try:
        path = usable_path(str(path))
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError as exc:
        raise src.fatal(f"cannot read config: {exc}") from None
    except OSError as exc:
        raise src.fatal(f"cannot read config: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise src.fatal("cannot read config: Is a directory")
        if not stat.S_ISREG(mode):
            raise src.fatal("cannot read config: not a regular file (a device, FIFO or socket)")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise src.fatal(f"cannot read config: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise src.fatal(
            f"the config is larger than {MAX_CONFIG_BYTES // 2**20} MiB; refusing to load"
        )
    return data


def parse_file(path: Path, src: Source) -> Any:
    """The file's YAML document as plain values (None when empty), with every value's and
    key's position recorded in `src`. A file that cannot be read or parsed raises ConfigError;
    a bad value in it (a duplicate key, an unknown tag) is a problem recorded in `src`."""
    data = _read(path, src)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = ConfigProblem(src.file, line, col, "", "not valid UTF-8 text")
        raise ConfigError([problem]) from None
    try:
        node = yaml.compose(text, Loader=YAMLLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(exc, src)]) from None
    except ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"invalid YAML: character U+{char:04X} is not allowed"
        raise ConfigError([ConfigProblem(src.file, line, col, "", message)]) from None
    except yaml.YAMLError as exc:
        raise src.fatal(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise src.fatal("invalid YAML: nested too deeply") from None
    if node is None:
        return None
    try:
        return Converter(src).convert(node, ())
    except _TooManyValues as exc:
        # Located at the top-level key whose value crossed the bound: the full key path
        # (`a5[2][5][6][6][4][6]`) would only show how deep the expansion had got.
        message = f"aliases expand to more than {_MAX_ALIAS_VALUES:,} values; refusing to load"
        raise ConfigError([src.problem(exc.loc[:1], message, True, None)]) from None


def _yaml_problem(exc: yaml.MarkedYAMLError, src: Source) -> ConfigProblem:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
    if exc.context == "expected a single document in the stream":
        message = 'invalid YAML: a second document (the file must hold one; remove the "---")'
    elif exc.problem and exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if exc.problem and exc.problem.startswith("expected <block end>"):
        message += "; check the indentation"
    if mark is None:
        return ConfigProblem(src.file, None, None, "", message)
    return ConfigProblem(src.file, mark.line + 1, mark.column + 1, "", message)


class YAMLLoader(yaml.SafeLoader):
    """SafeLoader resolving plain scalars by YAML 1.2's core schema, as Go's yaml.v3 does.

    EaseProbe files are read by yaml.v3; with PyYAML's YAML 1.1 rules `time: 09:30` would be
    the integer 570, `labels: {team: no}` a boolean and `2024-01-01` a date.
    """

    yaml_implicit_resolvers = {}  # noqa: RUF012 - PyYAML's class-level registry


_T_NULL = "tag:yaml.org,2002:null"
_T_BOOL = "tag:yaml.org,2002:bool"
_T_INT = "tag:yaml.org,2002:int"
_T_FLOAT = "tag:yaml.org,2002:float"
_T_STR = "tag:yaml.org,2002:str"
_T_SEQ = "tag:yaml.org,2002:seq"
_T_MAP = "tag:yaml.org,2002:map"
_T_MERGE = "tag:yaml.org,2002:merge"

for _tag, _pattern, _first in (
    (_T_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_T_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_T_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        _T_FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
    (_T_MERGE, r"^(?:<<)$", ["<"]),
):
    YAMLLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _mark(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _show_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


class _TooManyValues(Exception):
    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc


class Converter:
    """Node tree -> plain dict/list/str/int/float/bool/None, recording positions in `src`.

    Each visit builds fresh objects (aliases included), so later steps may mutate the result.
    """

    def __init__(self, src: Source) -> None:
        self.src = src
        self.seen: set[int] = set()
        self.active: set[int] = set()  # nodes being converted: a repeat is a recursive alias
        self.alias_values = 0

    def convert(self, node: yaml.Node, loc: Loc, depth: int = 0) -> Any:
        self.src.values[loc] = _mark(node)
        if id(node) in self.seen:
            # Counting values reached through aliases bounds "billion laughs" documents.
            self.alias_values += 1
            if self.alias_values > _MAX_ALIAS_VALUES:
                raise _TooManyValues(loc)
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        if depth >= _MAX_DEPTH:
            self.src.bad_value(loc, f"nested deeper than {_MAX_DEPTH} levels")
            return None
        if id(node) in self.active:
            self.src.bad_value(loc, "recursive alias")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _T_SEQ:
                return [
                    self.convert(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode) and node.tag == _T_MAP:
                return self._mapping(node, loc, depth)
            self.src.bad_value(loc, f"unsupported YAML tag {_show_tag(node.tag)}")
            return None
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        pairs: list[tuple[str, yaml.Node, yaml.Node]] = []
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _T_MERGE:
                key = "<<"
            else:
                maybe_key = self._key(key_node, loc)
                if maybe_key is None:
                    continue
                key = maybe_key
            if key in first_line:
                # PyYAML silently keeps the last one; a user almost never means that.
                self.src.error(
                    (*loc, key),
                    f"duplicate key {quoted(key)} (first at line {first_line[key]})",
                    pos=_mark(key_node),
                )
                continue
            first_line[key] = _mark(key_node)[0]
            if key_node.tag == _T_MERGE:
                merges.extend(self._merge_sources(value_node, loc))
            else:
                pairs.append((key, key_node, value_node))
        # `<<: [*a, *b]`: keys of earlier mappings win, and the mapping's own keys win over all.
        for source in reversed(merges):
            merged = self.convert(source, loc, depth + 1)
            if isinstance(merged, dict):
                out.update(merged)
        self.src.values[loc] = _mark(node)
        for key, key_node, value_node in pairs:
            self.src.keys[(*loc, key)] = _mark(key_node)
            out[key] = self.convert(value_node, (*loc, key), depth + 1)
        return out

    def _merge_sources(self, value: yaml.Node, loc: Loc) -> list[yaml.Node]:
        if isinstance(value, yaml.MappingNode):
            return [value]
        if isinstance(value, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value.value
        ):
            return list(value.value)
        self.src.error((*loc, "<<"), "a merge (<<) takes a mapping or a list of mappings")
        return []

    def _key(self, node: yaml.Node, loc: Loc) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag in (
            _T_STR,
            _T_NULL,
            _T_BOOL,
            _T_INT,
            _T_FLOAT,
        ):
            # Keys are names: `200: x` or `on: y` mean the text as written (yaml.v3 agrees).
            if has_surrogate(node.value):
                self.src.error(loc, "a key cannot hold a lone surrogate", pos=_mark(node))
                return None
            return str(node.value)
        what = "a scalar with tag " + _show_tag(node.tag)
        if isinstance(node, yaml.MappingNode):
            what = "a mapping"
        elif isinstance(node, yaml.SequenceNode):
            what = "a list"
        self.src.error(loc, f"a key must be a plain name, not {what}", pos=_mark(node))
        return None

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _T_STR:
            if has_surrogate(text):
                # Only a "\ud800" escape makes one; no file, socket or terminal can take it.
                self.src.bad_value(loc, "a lone surrogate (a \\uD800-\\uDFFF escape) is not text")
                return None
            return text
        if tag == _T_NULL:
            return None
        if tag == _T_BOOL:
            lowered = text.lower()
            if lowered in ("true", "yes", "on"):
                return True
            if lowered in ("false", "no", "off"):
                return False
            self.src.bad_value(loc, "!!bool needs true or false")
            return None
        if tag == _T_INT:
            try:
                return _parse_int(text)
            except ValueError:
                self.src.bad_value(loc, "not a valid integer")
                return None
        if tag == _T_FLOAT:
            try:
                return _parse_float(text)
            except ValueError:
                self.src.bad_value(loc, "not a valid number")
                return None
        self.src.bad_value(loc, f"unsupported YAML tag {_show_tag(tag)}")
        return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _parse_int(text: str) -> int:
    # int() also refuses numbers of more than 4300 digits (ValueError), which is what we want.
    body = text.replace("_", "")
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body[:2].lower() in ("0o", "0x", "0b"):
        return sign * int(body, 0)
    return sign * int(body, 10)


def _parse_float(text: str) -> float:
    lowered = text.lower().replace("_", "")
    if lowered.lstrip("+-") == ".inf":
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    return float(lowered)
