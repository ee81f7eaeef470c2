"""Load a config file: YAML with positions, env substitution, secrets from files, validation.

Every problem is reported as `FILE:LINE:COL: key.path: message`, and all of a file's problems
are reported together (one `ConfigError`), so a user fixes a file in one pass. The steps:

1. read the file and compose the YAML node tree (positions kept, nothing constructed yet);
2. convert nodes to plain values, recording the line/column of every value and key by key path
   (duplicate keys, which YAML would silently collapse, are reported here);
3. per section: substitute `${VAR}` in string values, drop EaseProbe keys we do not act on (a
   warning each), read `*_file` secrets, fill probe defaults from `settings.probe`, validate with
   pydantic and map each error's `loc` back to a position.

Substitution happens on parsed values, never on the text, so line numbers stay true and an
environment value cannot inject YAML.
"""

from __future__ import annotations

import collections.abc
import difflib
import json
import os
import re
import stat
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.reader import ReaderError

from probe.config.models import ProbeDefaults, ProbeSpec, Settings, usable_path
from probe.durations import format_duration
from probe.errors import ConfigError, ConfigProblem
from probe.notify import ALIASES, NOTIFIERS, load_notifier_class
from probe.probers import (
    CLIENT_DRIVERS,
    SECTIONS,
    UNSUPPORTED_DRIVERS,
    UNSUPPORTED_SECTIONS,
    load_prober_class,
)

if TYPE_CHECKING:
    # probe.notify.base imports the config models: imported at run time only when needed.
    from probe.notify.base import NotifierSpec

__all__ = ["Config", "SpecFactory", "find_config_path", "load_config"]

SpecFactory = Callable[[], type[ProbeSpec]]
"""Returns the spec model of one section's (or `client` driver's) probes; called only for the
sections and drivers a file uses."""

# The section whose entries pick their spec with a `driver:` key.
_CLIENT = "client"

_Loc = tuple[str | int, ...]
_Pos = tuple[int, int]  # 1-based (line, column)

DEFAULT_CONFIG_NAME = "probes.yaml"
_ENV_CONFIG = "PROBE_CONFIG"

# Keys a probe inherits from `settings.probe` when it does not set them itself.
_INHERITED = ("interval", "timeout", "failure", "success", "alert")
# EaseProbe notifier kinds we do not support: an error naming them (and what reaches the
# service instead), never a silent skip.
_UNSUPPORTED_NOTIFIERS = {
    "wecom": "EaseProbe's wecom notifier is not supported; use apprise with a wecombot:// URL",
    "dingtalk": "EaseProbe's dingtalk notifier is not supported; use apprise (dingtalk://)",
    "lark": "EaseProbe's lark notifier is not supported; use apprise with a lark:// URL",
    "aws_sns": "EaseProbe's aws_sns notifier is not supported; use apprise with an sns:// URL",
    "sms": "EaseProbe's sms notifier is not supported; use apprise (twilio://, vonage://, ...)",
    "ringcentral": "EaseProbe's ringcentral notifier is not supported",
    "infoflow": "EaseProbe's infoflow notifier is not supported",
}
# Values of keys like these are never echoed in an error message (DESIGN.md §5: secrets).
_SECRETISH = re.compile(r"pass|token|secret|dsn|webhook|key|url|auth|cred", re.IGNORECASE)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")

# Bounds that keep hostile input (deep nesting, "billion laughs" aliases) from costing more
# than a moment; real configs are far below both.
_MAX_DEPTH = 64
_MAX_ALIAS_VALUES = 250_000
_MAX_SECRET_BYTES = 65_536
# Real configs are kilobytes (10,000 probes are ~1.5 MiB); loading 8 MiB takes seconds.
_MAX_CONFIG_BYTES = 8 * 2**20


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded, validated config. `probes` keeps disabled probes (with `enabled=False`)."""

    path: Path
    settings: Settings
    probes: list[ProbeSpec]
    notifiers: list[NotifierSpec] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)

    @property
    def enabled_probes(self) -> list[ProbeSpec]:
        return [p for p in self.probes if p.enabled]

    @property
    def probe_counts(self) -> dict[str, int]:
        """Number of probes per kind, in the order kinds first appear."""
        counts: dict[str, int] = {}
        for p in self.probes:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts

    @property
    def notifier_count(self) -> int:
        return len(self.notifiers)

    @property
    def notifier_counts(self) -> dict[str, int]:
        """Number of notifiers per kind (`webhook` counts as `http`), in first-seen order."""
        counts: dict[str, int] = {}
        for n in self.notifiers:
            counts[n.kind] = counts.get(n.kind, 0) + 1
        return counts


def find_config_path(cli_value: str | None) -> Path:
    """The config file to use: the CLI's `-c`, else `$PROBE_CONFIG`, else `probes.yaml`."""
    if cli_value is not None:
        return Path(cli_value)
    from_env = os.environ.get(_ENV_CONFIG)
    if from_env:
        try:
            return usable_path(from_env)
        except ValueError as exc:
            problem = ConfigProblem(f"${_ENV_CONFIG}", None, None, "", str(exc))
            raise ConfigError([problem]) from None
    return Path(DEFAULT_CONFIG_NAME)


def load_config(
    path: str | os.PathLike[str],
    *,
    sections: Mapping[str, SpecFactory] | None = None,
    drivers: Mapping[str, SpecFactory] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate `path`; raise `ConfigError` listing every problem found.

    `sections` maps a top-level section to a factory of its spec model, and `drivers` maps a
    `client:` entry's `driver:` to one (default for both: the prober registry, imported lazily
    so unused kinds are never imported). When `sections` is given and `drivers` is not, there
    are no drivers, and `client:` is an unknown section. `environ` is what `${VAR}` reads
    (default: `os.environ`).
    """
    if drivers is None:
        drivers = _registry_factories(CLIENT_DRIVERS) if sections is None else {}
    if sections is None:
        sections = _registry_factories(SECTIONS)
    environ = os.environ if environ is None else environ
    return _Loader(Path(path), sections, drivers, environ).load()


def _registry_factories(targets: Mapping[str, str]) -> dict[str, SpecFactory]:
    def factory(target: str) -> SpecFactory:
        return lambda: load_prober_class(target).spec_type

    return {name: factory(target) for name, target in targets.items()}


# --------------------------------------------------------------------------------------------
# YAML


class _YAMLLoader(yaml.SafeLoader):
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
    _YAMLLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _mark(node: yaml.Node) -> _Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _show_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


class _TooManyValues(Exception):
    pass


class _Source:
    """One file's positions (by key path) and the problems and warnings found in it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[_Loc, _Pos] = {}
        self.keys: dict[_Loc, _Pos] = {}
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []
        # Values already reported as unusable (bad YAML scalar, unset ${VAR}, unreadable secret
        # file): a later complaint about them or anything under them would only repeat it.
        self.broken: set[_Loc] = set()

    def where(self, loc: _Loc, *, key: bool = False) -> _Pos | None:
        """Position of `loc`'s key (if asked and known) or value, else of its nearest parent."""
        if key and loc in self.keys:
            return self.keys[loc]
        while loc not in self.values and loc:
            loc = loc[:-1]
        return self.values.get(loc)

    def _problem(self, loc: _Loc, message: str, key: bool, pos: _Pos | None) -> ConfigProblem:
        if pos is None:
            pos = self.where(loc, key=key)
        line, col = pos if pos is not None else (None, None)
        # One problem, one line: whatever a message quotes must not break that.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        return ConfigProblem(self.file, line, col, _format_loc(loc), message)

    def error(self, loc: _Loc, message: str, *, key: bool = False, pos: _Pos | None = None) -> None:
        if not any(loc[:i] in self.broken for i in range(len(loc) + 1)):
            self.problems.append(self._problem(loc, message, key, pos))

    def bad_value(self, loc: _Loc, message: str, *, key: bool = False) -> None:
        """Report an unusable value and silence later problems at or under it."""
        self.error(loc, message, key=key)
        self.broken.add(loc)

    def warn(self, loc: _Loc, message: str, *, key: bool = False, pos: _Pos | None = None) -> None:
        self.warnings.append(self._problem(loc, message, key, pos))


def _format_loc(loc: Iterable[str | int]) -> str:
    """`http[2].timeout`, `settings.probe.interval`, `http[0].headers.Host`, `labels["a.b"]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


class _Converter:
    """Node tree -> plain dict/list/str/int/float/bool/None, recording positions in `src`.

    Each visit builds fresh objects (aliases included), so later steps may mutate the result.
    """

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.seen: set[int] = set()
        self.active: set[int] = set()  # nodes being converted: a repeat is a recursive alias
        self.alias_values = 0

    def convert(self, node: yaml.Node, loc: _Loc, depth: int = 0) -> Any:
        self.src.values[loc] = _mark(node)
        if id(node) in self.seen:
            # Counting values reached through aliases bounds "billion laughs" documents.
            self.alias_values += 1
            if self.alias_values > _MAX_ALIAS_VALUES:
                raise _TooManyValues
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

    def _mapping(self, node: yaml.MappingNode, loc: _Loc, depth: int) -> dict[str, Any]:
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
                    f"duplicate key {_quote(key)} (first at line {first_line[key]})",
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

    def _merge_sources(self, value: yaml.Node, loc: _Loc) -> list[yaml.Node]:
        if isinstance(value, yaml.MappingNode):
            return [value]
        if isinstance(value, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value.value
        ):
            return list(value.value)
        self.src.error((*loc, "<<"), "a merge (<<) takes a mapping or a list of mappings")
        return []

    def _key(self, node: yaml.Node, loc: _Loc) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag in (
            _T_STR,
            _T_NULL,
            _T_BOOL,
            _T_INT,
            _T_FLOAT,
        ):
            # Keys are names: `200: x` or `on: y` mean the text as written (yaml.v3 agrees).
            if _has_surrogate(node.value):
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

    def _scalar(self, node: yaml.ScalarNode, loc: _Loc) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _T_STR:
            if _has_surrogate(text):
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


def _has_surrogate(text: str) -> bool:
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


# --------------------------------------------------------------------------------------------
# ${VAR} substitution

# `$$` | `${NAME}` | `${NAME:-default}` | a `${` that forms neither (an error, not a literal:
# a typo in a reference should not silently become part of a password) | `$NAME` (EaseProbe
# substitutes the unbraced form too; a `$` before anything but a name stays literal).
_REF = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{)|([A-Za-z_][A-Za-z0-9_]*))"
)


def _substitute(value: Any, loc: _Loc, environ: Mapping[str, str], src: _Source) -> Any:
    if isinstance(value, str):
        return _substitute_str(value, loc, environ, src) if "$" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, (*loc, k), environ, src) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), environ, src) for i, v in enumerate(value)]
    return value


def _substitute_str(text: str, loc: _Loc, environ: Mapping[str, str], src: _Source) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "$"
        bare = match.group(5)
        name = match.group(2) or bare
        if name is None:
            src.bad_value(loc, 'invalid "${" reference; write "${NAME}", or "$$" for a literal "$"')
            return ""
        default = match.group(3)
        current = environ.get(name)
        if default is not None:
            # Shell semantics of `:-`: the default also replaces an empty value.
            return current if current else default
        if current is None:
            # Unlike Go's os.ExpandEnv (an unset variable becomes ""), an error: an empty
            # password or host is never what the file meant.
            hint = f"use ${{{name}:-default}}"
            if bare is not None:
                hint += f', or "$${name}" for a literal "${name}"'
            src.bad_value(loc, f"environment variable {name} is not set ({hint})")
            return ""
        return current

    result = _REF.sub(replace, text)
    if _has_surrogate(result):
        # An environment value that is not UTF-8 (Python keeps such bytes as surrogates).
        src.bad_value(loc, "an environment variable's value is not valid UTF-8")
        return ""
    return result


# --------------------------------------------------------------------------------------------
# Model introspection, for "did you mean", ignored keys and `*_file` secrets


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _model_class(tp: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        for arg in get_args(tp):
            found = _model_class(arg)
            if found is not None:
                return found
        return None
    if isinstance(tp, type) and get_origin(tp) is None and issubclass(tp, BaseModel):
        return tp
    return None


def _descend(tp: Any, key: str | int) -> Any:
    """The type found at `key` inside a value of type `tp`, or None if there is none."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            found = _descend(arg, key)
            if found is not None:
                return found
        return None
    model = _model_class(tp)
    if model is not None:
        info = model.model_fields.get(key) if isinstance(key, str) else None
        return None if info is None else info.annotation
    args = get_args(tp)
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence) and args:
        return args[0] if isinstance(key, int) else None
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return args[1] if isinstance(key, str) else None
    return None


def _known_keys(model: type[BaseModel]) -> list[str]:
    ignored: frozenset[str] = getattr(model, "easeprobe_ignored", frozenset())
    # A field with an alias (email's `from`) is written by its alias in the file.
    names = {info.alias or name for name, info in model.model_fields.items()}
    return sorted({*names, *ignored})


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --------------------------------------------------------------------------------------------
# pydantic errors -> short human messages


def _quote(text: str) -> str:
    """A user's text in a message: quoted, escaped (one line, always) and kept short."""
    shown = text if len(text) <= 40 else text[:40] + "…"
    return json.dumps(shown, ensure_ascii=False)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


_EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dataclass_type": "expected a mapping",
}


def _message(err: Mapping[str, Any], secret: bool) -> str:
    kind: str = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = "" if secret else f", got {_describe(err.get('input'))}"
    if kind == "missing":
        return "missing required key"
    if kind in _EXPECTED:
        return _EXPECTED[kind] + got
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "one of the allowed values")).replace("'", '"')
        return f"expected {expected}{got}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"must be {words} {ctx.get(name)}{got}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"does not have the expected form {ctx.get('pattern')}{got}"
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


# --------------------------------------------------------------------------------------------
# The loader


class _Loader:
    def __init__(
        self,
        path: Path,
        sections: Mapping[str, SpecFactory],
        drivers: Mapping[str, SpecFactory],
        environ: Mapping[str, str],
    ) -> None:
        self.path = path
        self.sections = sections
        self.drivers = drivers
        self.environ = environ
        # Spec models of the drivers a file uses (None: the driver's module failed to load).
        self._driver_specs: dict[str, type[ProbeSpec] | None] = {}
        # The same for notifier kinds (by the name as written: an alias is reported as such).
        self._notifier_specs: dict[str, type[NotifierSpec] | None] = {}
        self.base_dir = path.absolute().parent
        self.src = _Source(str(path))

    def fail(self, message: str) -> ConfigError:
        return ConfigError([ConfigProblem(self.src.file, None, None, "", message)])

    def load(self) -> Config:
        root = self._parse()
        src = self.src
        if src.problems and not isinstance(root, dict):
            raise ConfigError(src.problems)  # the top level itself is unusable, and said so
        if root is None:
            raise self.fail("empty config")
        if not isinstance(root, dict):
            src.error(
                (),
                "the top level must be a mapping of sections "
                f"({', '.join(self._known_sections())}), not {_describe(root)}",
            )
            raise ConfigError(src.problems)

        probe_sections: list[str] = []
        for key in root:
            if key in self.sections or (key == _CLIENT and self.drivers):
                probe_sections.append(key)
            elif key in ("settings", "notify") or key.startswith("x-"):
                # `x-...` holds YAML anchors for reuse, as in docker-compose files.
                continue
            elif key == "version":
                # EaseProbe's files may carry the version they were written for.
                src.warn((key,), "accepted for EaseProbe compatibility; not used", key=True)
            elif key in UNSUPPORTED_SECTIONS:
                src.error((key,), UNSUPPORTED_SECTIONS[key], key=True)
            else:
                hint = _did_you_mean(key, self._known_sections())
                if not hint:
                    hint = f" (known: {', '.join(self._known_sections())})"
                src.error((key,), f"unknown section {_quote(key)}{hint}", key=True)

        settings = self._settings(root.get("settings"))
        probes = self._probes(root, probe_sections, settings.probe)
        notifiers = self._notifiers(root.get("notify"))
        settings = self._cut_default_timeout(settings)

        if src.problems:
            raise ConfigError(_tidy(src.problems), warnings=_tidy(src.warnings))
        return Config(
            path=self.path,
            settings=settings,
            probes=probes,
            notifiers=notifiers,
            warnings=_tidy(src.warnings),
        )

    def _known_sections(self) -> list[str]:
        client = [_CLIENT] if self.drivers else []
        return sorted({*self.sections, *client, "notify", "settings"})

    # -- reading and parsing

    def _read(self) -> bytes:
        """The file's bytes: a regular file of at most _MAX_CONFIG_BYTES, else a ConfigError
        (`-c /dev/zero` must not eat the memory, nor a FIFO hang the command)."""
        try:
            path = usable_path(str(self.path))
            # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except ValueError as exc:
            raise self.fail(f"cannot read config: {exc}") from None
        except OSError as exc:
            raise self.fail(f"cannot read config: {exc.strerror or exc}") from None
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise self.fail("cannot read config: Is a directory")
            if not stat.S_ISREG(mode):
                raise self.fail("cannot read config: not a regular file (a device, FIFO or socket)")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(_MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise self.fail(f"cannot read config: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > _MAX_CONFIG_BYTES:
            raise self.fail(
                f"the config is larger than {_MAX_CONFIG_BYTES // 2**20} MiB; refusing to load"
            )
        return data

    def _parse(self) -> Any:
        data = self._read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            problem = ConfigProblem(self.src.file, line, col, "", "not valid UTF-8 text")
            raise ConfigError([problem]) from None
        try:
            node = yaml.compose(text, Loader=_YAMLLoader)
        except yaml.MarkedYAMLError as exc:
            raise ConfigError([self._yaml_problem(exc)]) from None
        except ReaderError as exc:
            before = text[: exc.position]
            line = before.count("\n") + 1
            col = len(before) - (before.rfind("\n") + 1) + 1
            char = exc.character if isinstance(exc.character, int) else ord(exc.character)
            message = f"invalid YAML: character U+{char:04X} is not allowed"
            raise ConfigError([ConfigProblem(self.src.file, line, col, "", message)]) from None
        except yaml.YAMLError as exc:
            raise self.fail(f"invalid YAML: {exc}") from None
        except RecursionError:
            raise self.fail("invalid YAML: nested too deeply") from None
        if node is None:
            return None
        try:
            return _Converter(self.src).convert(node, ())
        except _TooManyValues:
            raise self.fail(
                f"aliases expand to more than {_MAX_ALIAS_VALUES:,} values; refusing to load"
            ) from None

    def _yaml_problem(self, exc: yaml.MarkedYAMLError) -> ConfigProblem:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
        if exc.context == "expected a single document in the stream":
            message = 'invalid YAML: a second document (the file must hold one; remove the "---")'
        elif exc.problem and exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        if exc.problem and exc.problem.startswith("expected <block end>"):
            message += "; check the indentation"
        if mark is None:
            return ConfigProblem(self.src.file, None, None, "", message)
        return ConfigProblem(self.src.file, mark.line + 1, mark.column + 1, "", message)

    # -- settings

    def _settings(self, raw: Any) -> Settings:
        loc: _Loc = ("settings",)
        raw = {} if raw is None else _substitute(raw, loc, self.environ, self.src)
        self._prepare(Settings, raw, loc)
        settings = self._validate(Settings, raw, loc)
        return settings if isinstance(settings, Settings) else Settings()

    def _cut_default_timeout(self, settings: Settings) -> Settings:
        defaults = settings.probe
        if defaults.timeout <= defaults.interval:
            return settings
        loc: _Loc = ("settings", "probe")
        at = (*loc, "timeout") if (*loc, "timeout") in self.src.values else (*loc, "interval")
        self.src.warn(at, _cut_message(defaults.timeout, defaults.interval))
        probe = defaults.model_copy(update={"timeout": defaults.interval})
        return settings.model_copy(update={"probe": probe})

    # -- probes

    def _probes(
        self, root: dict[str, Any], names: list[str], defaults: ProbeDefaults
    ) -> list[ProbeSpec]:
        # Cut here too, so probes that inherit both values need no warning of their own.
        if defaults.timeout > defaults.interval:
            defaults = defaults.model_copy(update={"timeout": defaults.interval})
        probes: list[ProbeSpec] = []
        seen_names: dict[str, _Loc] = {}
        for section in names:
            raw = root[section]
            if raw is None:
                continue  # `http:` with nothing under it: no probes of that kind
            if not isinstance(raw, list):
                self.src.error((section,), f"expected a list of probes, not {_describe(raw)}")
                continue
            spec_type: type[ProbeSpec] | None = None
            client = section == _CLIENT and bool(self.drivers)
            if not client:
                try:
                    spec_type = self.sections[section]()
                except Exception as exc:  # a broken prober module is reported, not raised
                    self.src.error(
                        (section,),
                        f"{section} probes are unavailable ({type(exc).__name__}: {exc})",
                        key=True,
                    )
                    continue
            for index, item in enumerate(raw):
                loc: _Loc = (section, index)
                if spec_type is None:
                    spec = self._client_probe(item, loc, defaults)
                else:
                    spec = self._probe(spec_type, item, loc, defaults)
                name = spec.name if spec is not None else _raw_name(item)
                if name is None:
                    continue
                if name in seen_names:
                    first = self.src.where((*seen_names[name], "name"))
                    where = f" (first at line {first[0]})" if first else ""
                    self.src.error((*loc, "name"), f"duplicate probe name {_quote(name)}{where}")
                else:
                    seen_names[name] = loc
                if spec is not None:
                    probes.append(spec)
        return probes

    def _client_probe(self, raw: Any, loc: _Loc, defaults: ProbeDefaults) -> ProbeSpec | None:
        """A `client:` entry: its `driver:` picks the spec model, then as any other probe."""
        if not isinstance(raw, dict):
            self.src.error(loc, f"expected a mapping (one probe), not {_describe(raw)}")
            return None
        raw = _substitute(raw, loc, self.environ, self.src)
        spec_type = self._driver_spec(raw, loc)
        if spec_type is None:
            return None
        return self._probe(spec_type, raw, loc, defaults, substituted=True)

    def _driver_spec(self, raw: dict[str, Any], loc: _Loc) -> type[ProbeSpec] | None:
        """The spec model for the entry's `driver:`, or None (and a located problem)."""
        dloc = (*loc, "driver")
        known = ", ".join(sorted(self.drivers))
        if "driver" not in raw:
            # Located at the entry: the mapping that lacks the key.
            self.src.error(dloc, f"missing required key (the client driver: one of {known})")
            return None
        value = raw["driver"]
        if dloc in self.src.broken:
            return None  # an unset ${VAR}, already reported
        if not isinstance(value, str) or not value.strip():
            self.src.error(dloc, f"expected a driver name ({known}), got {_describe(value)}")
            return None
        # EaseProbe reads the driver name case-insensitively.
        driver = value.strip().lower()
        if driver not in self.drivers:
            if driver in UNSUPPORTED_DRIVERS:
                self.src.error(dloc, UNSUPPORTED_DRIVERS[driver])
            else:
                hint = _did_you_mean(driver, self.drivers) or f" (known: {known})"
                self.src.error(dloc, f"unknown driver {_quote(value)}{hint}")
            return None
        raw["driver"] = driver
        if driver not in self._driver_specs:
            try:
                self._driver_specs[driver] = self.drivers[driver]()
            except Exception as exc:  # a broken or missing driver module: reported, not raised
                self._driver_specs[driver] = None
                self.src.error(
                    dloc, f"{driver} probes are unavailable ({type(exc).__name__}: {exc})"
                )
        return self._driver_specs[driver]

    def _probe(
        self,
        spec_type: type[ProbeSpec],
        raw: Any,
        loc: _Loc,
        defaults: ProbeDefaults,
        *,
        substituted: bool = False,
    ) -> ProbeSpec | None:
        if not isinstance(raw, dict):
            self.src.error(loc, f"expected a mapping (one probe), not {_describe(raw)}")
            return None
        if not substituted:
            raw = _substitute(raw, loc, self.environ, self.src)
        self._prepare(spec_type, raw, loc)
        # An empty `timeout:` means "the default", as in EaseProbe (Go's zero value).
        for key in _INHERITED:
            if key in raw and raw[key] is None:
                del raw[key]
        own_interval = "interval" in raw
        own_timeout = "timeout" in raw
        inherited: dict[str, Any] = {
            "interval": timedelta(seconds=defaults.interval),
            "timeout": timedelta(seconds=defaults.timeout),
            "failure": defaults.failure,
            "success": defaults.success,
            "alert": defaults.alert,
        }
        for key, value in inherited.items():
            if key not in raw:
                raw[key] = value
            elif key == "alert" and isinstance(raw[key], dict):
                # A probe's alert overrides settings.probe.alert key by key.
                for sub, sub_value in defaults.alert.model_dump().items():
                    raw[key].setdefault(sub, sub_value)
        spec = self._validate(spec_type, raw, loc)
        if not isinstance(spec, ProbeSpec):
            return None
        if spec.timeout > spec.interval:
            if own_timeout or own_interval:
                at = (*loc, "timeout" if own_timeout else "interval")
                self.src.warn(at, _cut_message(spec.timeout, spec.interval))
            spec = spec.model_copy(update={"timeout": spec.interval})
        return spec

    # -- notifiers

    def _notifiers(self, raw: Any) -> list[NotifierSpec]:
        from probe.notify.base import NotifierSpec

        loc: _Loc = ("notify",)
        if raw is None:
            return []
        if not isinstance(raw, dict):
            self.src.error(
                loc, f"expected a mapping of notifier kind to a list, not {_describe(raw)}"
            )
            return []
        raw = _substitute(raw, loc, self.environ, self.src)
        specs: list[NotifierSpec] = []
        seen_names: dict[str, _Loc] = {}
        for kind, entries in raw.items():
            kloc = (*loc, kind)
            if not self._known_notifier(kind, kloc) or entries is None:
                continue
            if not isinstance(entries, list):
                self.src.error(kloc, f"expected a list of notifiers, not {_describe(entries)}")
                continue
            # Imported only now: a kind listed with nothing under it costs no import.
            spec_type = self._notifier_spec(kind, kloc)
            if spec_type is None:
                continue
            for index, entry in enumerate(entries):
                eloc = (*kloc, index)
                if not isinstance(entry, dict):
                    self.src.error(
                        eloc, f"expected a mapping (one notifier), not {_describe(entry)}"
                    )
                    continue
                self._prepare(spec_type, entry, eloc)
                spec = self._validate(spec_type, entry, eloc)
                name = spec.name if isinstance(spec, NotifierSpec) else _raw_name(entry)
                if name is None:
                    continue
                if name in seen_names:
                    first = self.src.where((*seen_names[name], "name"))
                    where = f" (first at line {first[0]})" if first else ""
                    self.src.error(
                        (*eloc, "name"), f"duplicate notifier name {_quote(name)}{where}"
                    )
                else:
                    seen_names[name] = eloc
                if isinstance(spec, NotifierSpec):
                    specs.append(spec)
        return specs

    def _known_notifier(self, kind: str, kloc: _Loc) -> bool:
        if kind in NOTIFIERS or kind in ALIASES:
            return True
        if kind in _UNSUPPORTED_NOTIFIERS:
            self.src.error(kloc, _UNSUPPORTED_NOTIFIERS[kind], key=True)
            return False
        known = sorted({*NOTIFIERS, *ALIASES})
        hint = _did_you_mean(kind, known) or f" (known: {', '.join(known)})"
        self.src.error(kloc, f"unknown notifier kind {_quote(kind)}{hint}", key=True)
        return False

    def _notifier_spec(self, kind: str, kloc: _Loc) -> type[NotifierSpec] | None:
        """The spec model of notifier `kind`, or None (and a located problem)."""
        if kind not in self._notifier_specs:
            try:
                self._notifier_specs[kind] = load_notifier_class(kind).spec_type
            except Exception as exc:  # a broken or missing notifier module: reported, not raised
                self._notifier_specs[kind] = None
                self.src.error(
                    kloc,
                    f"{kind} notifiers are unavailable ({type(exc).__name__}: {exc})",
                    key=True,
                )
        return self._notifier_specs[kind]

    # -- shared steps

    def _prepare(self, tp: Any, value: Any, loc: _Loc) -> None:
        """Walk `value` along model `tp`: drop ignored EaseProbe keys, read `*_file` secrets."""
        model = _model_class(tp)
        if model is not None and isinstance(value, dict):
            fields = model.model_fields
            ignored: frozenset[str] = getattr(model, "easeprobe_ignored", frozenset())
            for key in list(value):
                if key in ignored and key not in fields:
                    self.src.warn(
                        (*loc, key), "accepted for EaseProbe compatibility; not used", key=True
                    )
                    del value[key]
                elif key.endswith("_file") and key not in fields and key[:-5] in fields:
                    self._read_secret(value, key, loc)
        children: Iterable[tuple[str | int, Any]]
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            return
        for key, child in children:
            sub = _descend(tp, key)
            if sub is not None:
                self._prepare(sub, child, (*loc, key))

    def _read_secret(self, mapping: dict[str, Any], key: str, loc: _Loc) -> None:
        target = key.removesuffix("_file")
        kloc = (*loc, key)
        value = mapping.pop(key)
        if target in mapping:
            self.src.error(
                kloc, f"both {_quote(target)} and {_quote(key)} are given; use one", key=True
            )
            return
        # Whatever goes wrong below is reported here, not again as a missing `target`.
        self.src.broken.add((*loc, target))
        if not isinstance(value, str) or not value:
            self.src.error(kloc, f"expected a file path, got {_describe(value)}")
            return
        try:
            path = usable_path(value)
        except ValueError as exc:
            self.src.error(kloc, f"cannot read {_quote(value)}: {exc}")
            return
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            with path.open("rb") as fh:
                data = fh.read(_MAX_SECRET_BYTES + 1)
        except OSError as exc:
            self.src.error(
                kloc, f"cannot read {_quote(value)}: {exc.strerror or type(exc).__name__}"
            )
            return
        if len(data) > _MAX_SECRET_BYTES:
            # `password_file: /dev/zero` must not eat the memory; no secret is this long.
            self.src.error(kloc, f"{_quote(value)} is larger than {_MAX_SECRET_BYTES} bytes")
            return
        try:
            secret = data.decode("utf-8")
        except UnicodeDecodeError:
            self.src.error(kloc, f"cannot read {_quote(value)}: not UTF-8 text")
            return
        # Editors add a final newline; a secret never means it.
        mapping[target] = secret.removesuffix("\n").removesuffix("\r")
        # Read: its value is validated like any other (an empty one is an error, not silence).
        self.src.broken.discard((*loc, target))
        if kloc in self.src.values:
            self.src.values[(*loc, target)] = self.src.values[kloc]
        if kloc in self.src.keys:
            self.src.keys[(*loc, target)] = self.src.keys[kloc]

    def _validate(self, model: type[BaseModel], raw: Any, loc: _Loc) -> BaseModel | None:
        before = len(self.src.problems)
        try:
            return model.model_validate(raw, context={"base_dir": self.base_dir})
        except ValidationError as exc:
            self._report(exc, model, loc)
        except Exception as exc:  # a validator bug must not become a traceback
            self.src.error(loc, f"cannot validate ({type(exc).__name__}); please report this")
        if len(self.src.problems) == before and not self.src.problems:
            # Every complaint fell under a value marked broken without a problem of its own:
            # never let a section silently fall back to its defaults (auth off, say).
            # (Appended directly: `error` would stay silent under the broken mark.)
            problem = self.src._problem(loc, "invalid; please report this", False, None)
            self.src.problems.append(problem)
        return None

    def _report(self, exc: ValidationError, model: type[BaseModel], base: _Loc) -> None:
        # Union types give one error per member at the same place: merge them into one line.
        grouped: dict[tuple[_Loc, _Pos | None], list[str]] = {}
        for err in exc.errors(include_url=False):
            loc = base
            tp: Any = model
            parent_tp: Any = None
            for part in err["loc"]:
                # A part is a key of the model (or of the file); other parts are pydantic's
                # own names for union members and validators, not shown to users.
                sub = _descend(tp, part)
                if sub is not None or (*loc, part) in self.src.values:
                    loc, parent_tp, tp = (*loc, part), tp, sub
            kind = err["type"]
            last = loc[-1] if len(loc) > len(base) else None
            if kind == "missing" and last is not None:
                pos = self.src.where(loc)  # the nearest parent: the mapping that lacks the key
                if isinstance(last, str):
                    message = "missing required key"
                else:  # a fixed-length list (a tuple), such as a success_code range
                    message = "missing value (the list is too short)"
            elif kind == "extra_forbidden" and isinstance(last, str):
                pos = self.src.where(loc, key=True)
                parent = _model_class(parent_tp)
                hint = _did_you_mean(last, _known_keys(parent)) if parent is not None else ""
                message = f"unknown key {_quote(last)}{hint}"
            else:
                pos = self.src.where(loc)
                name = next((p for p in reversed(loc) if isinstance(p, str)), "")
                message = _message(err, secret=bool(_SECRETISH.search(name)))
            messages = grouped.setdefault((loc, pos), [])
            if message not in messages:
                messages.append(message)
        for (loc, pos), messages in grouped.items():
            self.src.error(loc, "; ".join(messages), pos=pos)


def _cut_message(timeout: float, interval: float) -> str:
    t, i = format_duration(timeout), format_duration(interval)
    return f"timeout {t} is longer than the interval {i}; using {i}"


def _raw_name(item: Any) -> str | None:
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        name: str = item["name"]
        return name
    return None


def _tidy(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Unique (aliases can repeat a problem) and in file order."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))
