"""Which placeholders a probe of each kind can read, checked at load so a typo is a config error.

Every kind reads `[CONNECTED]`, `[RESPONSE_TIME]` and `[IP]` (COMMON); each spec class names the
others its prober fills (`ProbeSpec.condition_placeholders`). Paths are for the placeholders
that hold structure: `[BODY]` (JSON), `[RESULT]` (rows), and `[HEADERS]` and `[VALUE]`, which
need exactly one key.
"""

from __future__ import annotations

from collections.abc import Iterable

from probe.conditions.syntax import Condition, ConditionError

__all__ = ["COMMON", "check_placeholders"]

COMMON = frozenset({"CONNECTED", "RESPONSE_TIME", "IP"})
_WITH_PATH = frozenset({"BODY", "RESULT"})
_ONE_KEY = {"HEADERS": "[HEADERS].content-type", "VALUE": "[VALUE].mykey"}


def check_placeholders(condition: Condition, kind: str, allowed: Iterable[str]) -> None:
    """Raise ConditionError for the first placeholder a `kind` probe cannot fill, or a path
    where the placeholder takes none."""
    known = COMMON | frozenset(allowed)
    for placeholder in condition.placeholders():
        name = placeholder.name
        if name not in known:
            names = ", ".join(f"[{n}]" for n in sorted(known))
            raise ConditionError(
                f"[{name}] is not a placeholder of {kind} probes (they have {names})",
                placeholder.position,
            )
        path = placeholder.path
        if name in _ONE_KEY:
            if len(path) != 1 or not isinstance(path[0], str):
                raise ConditionError(
                    f"[{name}] needs one key, as {_ONE_KEY[name]}", placeholder.position
                )
        elif path and name not in _WITH_PATH:
            raise ConditionError(f"[{name}] takes no path", placeholder.position)
