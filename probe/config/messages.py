"""Validation problems in a user's words, located at the key or value they concern.

Model introspection walks a model type along a key path, for "did you mean", EaseProbe's
ignored keys and `*_file` secrets; pydantic's errors become short messages that quote the
user's text (one line, cut short) and never echo a secret's value.
"""

from __future__ import annotations

import collections.abc
import difflib
import re
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from probe.config.source import Loc, Pos, Source
from probe.text import quoted

__all__ = [
    "descend",
    "describe",
    "did_you_mean",
    "error_message",
    "known_keys",
    "model_class",
    "report_validation_error",
]

# Values of keys like these are never echoed in an error message (docs/ARCHITECTURE.md: secrets).
_SECRETISH = re.compile(r"pass|token|secret|dsn|webhook|key|url|auth|cred", re.IGNORECASE)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def model_class(tp: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        for arg in get_args(tp):
            found = model_class(arg)
            if found is not None:
                return found
        return None
    if isinstance(tp, type) and get_origin(tp) is None and issubclass(tp, BaseModel):
        return tp
    return None


def descend(tp: Any, key: str | int) -> Any:
    """The type found at `key` inside a value of type `tp`, or None if there is none."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            found = descend(arg, key)
            if found is not None:
                return found
        return None
    model = model_class(tp)
    if model is not None:
        info = model.model_fields.get(key) if isinstance(key, str) else None
        return None if info is None else info.annotation
    args = get_args(tp)
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence) and args:
        return args[0] if isinstance(key, int) else None
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return args[1] if isinstance(key, str) else None
    return None


def known_keys(model: type[BaseModel]) -> list[str]:
    ignored: frozenset[str] = getattr(model, "easeprobe_ignored", frozenset())
    # A field with an alias (email's `from`) is written by its alias in the file.
    names = {info.alias or name for name, info in model.model_fields.items()}
    return sorted({*names, *ignored})


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --------------------------------------------------------------------------------------------
# pydantic errors -> short human messages


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return quoted(value)
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


def error_message(err: Mapping[str, Any], secret: bool) -> str:
    kind: str = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = "" if secret else f", got {describe(err.get('input'))}"
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


def report_validation_error(
    src: Source, exc: ValidationError, model: type[BaseModel], base: Loc
) -> None:
    """Record each of pydantic's errors in validating `model` at `base` as located problems in
    `src`: at the key or value it concerns, in words a user reads ("did you mean" for an
    unknown key; a secret's value never shown)."""
    # Union types give one error per member at the same place: merge them into one line.
    grouped: dict[tuple[Loc, Pos | None], list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = base
        tp: Any = model
        parent_tp: Any = None
        for part in err["loc"]:
            # A part is a key of the model (or of the file); other parts are pydantic's
            # own names for union members and validators, not shown to users.
            sub = descend(tp, part)
            if sub is not None or (*loc, part) in src.values:
                loc, parent_tp, tp = (*loc, part), tp, sub
        kind = err["type"]
        last = loc[-1] if len(loc) > len(base) else None
        if kind == "missing" and last is not None:
            pos = src.where(loc)  # the nearest parent: the mapping that lacks the key
            if isinstance(last, str):
                message = "missing required key"
            else:  # a fixed-length list (a tuple), such as a success_code range
                message = "missing value (the list is too short)"
        elif kind == "extra_forbidden" and isinstance(last, str):
            pos = src.where(loc, key=True)
            parent = model_class(parent_tp)
            hint = did_you_mean(last, known_keys(parent)) if parent is not None else ""
            message = f"unknown key {quoted(last)}{hint}"
        else:
            pos = src.where(loc)
            name = next((p for p in reversed(loc) if isinstance(p, str)), "")
            message = error_message(err, secret=bool(_SECRETISH.search(name)))
        messages = grouped.setdefault((loc, pos), [])
        if message not in messages:
            messages.append(message)
    for (loc, pos), messages in grouped.items():
        src.error(loc, "; ".join(messages), pos=pos)
