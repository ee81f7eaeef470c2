"""`${VAR}` substitution in a config's values.

Substitution happens on parsed values, never on the text, so line numbers stay true and an
environment value cannot inject YAML. `${NAME:-default}` as in a shell; `$NAME` as EaseProbe
reads it; `$$` is a literal `$`; an unset variable is an error, never an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from probe.config.source import Loc, Source
from probe.config.yaml_reader import has_surrogate

__all__ = ["substitute"]


# `$$` | `${NAME}` | `${NAME:-default}` | a `${` that forms neither (an error, not a literal:
# a typo in a reference should not silently become part of a password) | `$NAME` (EaseProbe
# substitutes the unbraced form too; a `$` before anything but a name stays literal).
_REF = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{)|([A-Za-z_][A-Za-z0-9_]*))"
)


def substitute(value: Any, loc: Loc, environ: Mapping[str, str], src: Source) -> Any:
    if isinstance(value, str):
        return _substitute_str(value, loc, environ, src) if "$" in value else value
    if isinstance(value, dict):
        return {k: substitute(v, (*loc, k), environ, src) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, (*loc, i), environ, src) for i, v in enumerate(value)]
    return value


def _substitute_str(text: str, loc: Loc, environ: Mapping[str, str], src: Source) -> str:
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
    if has_surrogate(result):
        # An environment value that is not UTF-8 (Python keeps such bytes as surrogates).
        src.bad_value(loc, "an environment variable's value is not valid UTF-8")
        return ""
    return result
