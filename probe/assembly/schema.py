"""The JSON Schema of a config file (`probe schema`), generated from the same models the loader
validates with, so editors (VS Code's YAML extension, JetBrains, ...) check and complete
`probes.yaml` as it is typed, and the schema can never drift from what `probe check` accepts.

What the models alone do not say, and the loader does, is added here: a file holds sections of
lists (ssh and host: or a mapping of `servers:` and named `bastion:` entries); a `client:`
entry picks its keys by `driver:` (case-insensitively); any `*_file` key
reads a secret from a file; EaseProbe keys we accept and do not use; `x-...` keys for anchors;
`version:`; and keys a probe inherits from `settings.probe` may be left empty (`timeout:`).
The schema is as strict as the loader about unknown keys; values it cannot judge (an
`${ENV}` reference in a number's place) the loader still checks after substitution.

It lives in the assembly layer because it covers every registered prober and notifier kind.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from probe.config.maintenance import SharedWindowSpec
from probe.config.models import Settings
from probe.notify import ALIASES, NOTIFIERS, load_notifier_class
from probe.probers import CLIENT_DRIVERS, SECTIONS, load_prober_class

__all__ = ["config_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_IGNORED = "Accepted for EaseProbe compatibility; not used (loads with a warning)."
# Keys a probe inherits from settings.probe: an empty value means "inherit" (the loader).
_INHERITED = ("interval", "timeout", "failure", "success", "alert")
# The loader reads `<key>_file` for any key; the schema offers it where a secret is usual.
_SECRET = re.compile(r"pass|token|secret|dsn|webhook|key|auth|cred", re.IGNORECASE)


def config_schema() -> dict[str, Any]:
    """The schema of a whole config file, as a JSON-ready dict."""
    sections = {name: load_prober_class(t).spec_type for name, t in SECTIONS.items()}
    drivers = {name: load_prober_class(t).spec_type for name, t in CLIENT_DRIVERS.items()}
    notifiers = {kind: load_notifier_class(kind).spec_type for kind in NOTIFIERS}
    entries = [e for model in sections.values() for e in model.section_entries.values()]
    roots: list[type[BaseModel]] = [
        Settings,
        SharedWindowSpec,
        *sections.values(),
        *entries,
        *drivers.values(),
        *notifiers.values(),
    ]
    models = list(dict.fromkeys(m for root in roots for m in _reachable(root)))
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/$defs/{model}"
    )
    definitions: dict[str, Any] = defs.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return dict(refs[(model, "validation")])

    for model in models:
        name = ref(model)["$ref"].rsplit("/", 1)[1]
        _amend(definitions[name], model)
    _lax_booleans(definitions)
    _numbers_from_text(definitions)
    for model in sections.values():
        _allow_empty_inherited(definitions, ref(model), model)
    for driver, model in drivers.items():
        _allow_empty_inherited(definitions, ref(model), model)
        entry = definitions[ref(model)["$ref"].rsplit("/", 1)[1]]
        entry["properties"]["driver"] = {
            "type": "string",
            "pattern": f"^\\s*{_any_case(driver)}\\s*$",
            "description": f"the client driver: {driver}",
        }

    properties: dict[str, Any] = {
        "version": {"description": _IGNORED},
        "settings": {"anyOf": [ref(Settings), {"type": "null"}]},
        "maintenance": _list_of(ref(SharedWindowSpec), "maintenance windows"),
    }
    for name, model in sections.items():
        properties[name] = _list_of(ref(model), f"{name} probes")
        if model.section_entries:
            # EaseProbe's form: `{servers: [...], bastion: {NAME: entry}}`.
            section: dict[str, Any] = {
                "type": "object",
                "properties": {"servers": _list_of(ref(model), f"{name} probes")},
                "required": ["servers"],
                "additionalProperties": False,
            }
            for key, entry in model.section_entries.items():
                section["properties"][key] = {
                    "type": ["object", "null"],
                    "description": f"{key} entries by name; a probe's `{key}:` names one",
                    "additionalProperties": ref(entry),
                }
            properties[name] = {"anyOf": [properties[name], section]}
    properties["client"] = _list_of(
        {"anyOf": [ref(model) for model in drivers.values()]},
        "native-client probes; `driver:` picks the keys: " + ", ".join(drivers),
    )
    notify: dict[str, Any] = {
        kind: _list_of(ref(model), f"{kind} notifiers") for kind, model in notifiers.items()
    }
    for alias, kind in ALIASES.items():
        notify[alias] = _list_of(ref(notifiers[kind]), f"{kind} notifiers ({alias} is an alias)")
    properties["notify"] = {
        "type": ["object", "null"],
        "description": "notifier kind -> a list of notifiers",
        "properties": notify,
        "additionalProperties": False,
    }
    return {
        "$schema": _DIALECT,
        "title": "probe configuration (probes.yaml)",
        "type": "object",
        "properties": properties,
        # `x-...` keys hold YAML anchors for reuse, as in docker-compose files.
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
        "$defs": definitions,
    }


def _reachable(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """`model` and every model its fields hold, each once (depth first)."""
    seen: set[type[BaseModel]] = set()
    stack = [model]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for info in current.model_fields.values():
            stack.extend(_models_in(info.annotation))


def _models_in(tp: Any) -> Iterator[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel) and get_origin(tp) is None:
        yield tp
        return
    origin = get_origin(tp)
    if origin is Annotated:
        yield from _models_in(get_args(tp)[0])
        return
    if origin in (Union, types.UnionType) or origin is not None:
        for arg in get_args(tp):
            yield from _models_in(arg)


def _amend(entry: dict[str, Any], model: type[BaseModel]) -> None:
    """Add to one model's schema what the loader accepts beyond the model's own fields."""
    properties: dict[str, Any] = entry.setdefault("properties", {})
    if model.model_config.get("coerce_numbers_to_str"):
        for value in properties.values():
            _numbers_as_text(value)
    ignored: frozenset[str] = getattr(model, "easeprobe_ignored", frozenset())
    for key in sorted(ignored - set(properties)):
        properties[key] = {"description": _IGNORED}
    required: list[str] = entry.get("required", [])
    alternatives: list[dict[str, Any]] = []
    for key in list(properties):
        if not _SECRET.search(key) or f"{key}_file" in properties or key in ignored:
            continue
        properties[f"{key}_file"] = {
            "type": "string",
            "description": f"a file holding {key} (one trailing newline is dropped); "
            f"instead of {key}",
        }
        # One of the two, never both; where the key is required, either satisfies it.
        alternatives.append({"not": {"required": [key, f"{key}_file"]}})
        if key in required:
            required.remove(key)
            alternatives.append({"anyOf": [{"required": [key]}, {"required": [f"{key}_file"]}]})
    if alternatives:
        entry.setdefault("allOf", []).extend(alternatives)
    if "required" in entry and not entry["required"]:
        del entry["required"]


def _numbers_as_text(node: Any) -> None:
    """Let a plain string's place take a number too, as the model does (`chat_id: -100123`,
    a `data:` value `45`: Go's yaml.v3 reads them as written, StrictModel turns them into
    text), secrets included (found by tests/config/test_fuzz.py: `password: .inf` loaded and
    the schema refused it). Strings with a form (a pattern, a format such as a path, an enum)
    are left as they are."""
    if isinstance(node, list):
        for item in node:
            _numbers_as_text(item)
        return
    if not isinstance(node, dict):
        return
    # A secret (SecretStr: format "password") is plain text too: `password: 1234` loads.
    plain = node.get("format") in (None, "password")
    if node.get("type") == "string" and plain and not {"pattern", "enum", "const"} & set(node):
        node["type"] = ["string", "number"]
    for key in ("anyOf", "oneOf", "allOf", "items", "prefixItems", "additionalProperties"):
        if key in node:
            _numbers_as_text(node[key])


# What pydantic reads as a boolean besides true/false (any case): `enabled: yes` loads, as it
# does in EaseProbe (Go's yaml.v3 reads YAML 1.1's yes/no/on/off into a bool).
_BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "y", "n", "t", "f", "1", "0")


def _lax_booleans(node: Any) -> None:
    """Let every boolean's place take the words and numbers the loader takes for one
    (found by tests/config/test_fuzz.py: `enabled: yes` loaded and the schema refused it)."""
    if isinstance(node, list):
        for item in node:
            _lax_booleans(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "boolean":
        del node["type"]
        words = "|".join(_any_case(word) for word in _BOOL_WORDS)
        node["anyOf"] = [
            {"type": "boolean"},
            {"type": "string", "pattern": f"^(?:{words})$"},
            {"type": "number", "enum": [0, 1]},
        ]
        return
    for value in node.values():
        _lax_booleans(value)


# What pydantic reads as an integer or a number when it is text: a `${VAR}` substituted into
# `failure: "${FAILS}"` is the text "3" (found by a loader test: it loaded, the schema refused).
_INT_TEXT = r"^\s*[+-]?[0-9]+(_[0-9]+)*(\.0*)?\s*$"
_DIGITS = r"[0-9]+(_[0-9]+)*"
_SPECIAL = "[iI][nN][fF]|[iI][nN][fF][iI][nN][iI][tT][yY]|[nN][aA][nN]"
_NUMBER_TEXT = (
    rf"^\s*[+-]?(({_DIGITS})(\.({_DIGITS})?)?|\.{_DIGITS})([eE][+-]?[0-9]+)?\s*$"
    rf"|^\s*[+-]?({_SPECIAL})\s*$"
)
_NUMERIC_KEYS = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _numbers_from_text(node: Any) -> None:
    """Let an integer's or a number's place take text holding one, as the model does."""
    if isinstance(node, list):
        for item in node:
            _numbers_from_text(item)
        return
    if not isinstance(node, dict):
        return
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds or "number" in kinds:
        numeric = {key: node.pop(key) for key in _NUMERIC_KEYS if key in node}
        pattern = _INT_TEXT if "integer" in kinds else _NUMBER_TEXT
        node["anyOf"] = [numeric, {"type": "string", "pattern": pattern}]
        return
    for value in node.values():
        _numbers_from_text(value)


def _allow_empty_inherited(
    definitions: Mapping[str, Any], ref: Mapping[str, str], model: type[BaseModel]
) -> None:
    entry = definitions[ref["$ref"].rsplit("/", 1)[1]]
    own: frozenset[str] = getattr(model, "not_inherited", frozenset())
    for key in _INHERITED:
        if key in entry["properties"] and key not in own:
            entry["properties"][key] = {"anyOf": [entry["properties"][key], {"type": "null"}]}


def _list_of(item: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"type": ["array", "null"], "description": description, "items": dict(item)}


def _any_case(word: str) -> str:
    """A regex matching `word` in any case, for dialects without a case-insensitive flag."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)
