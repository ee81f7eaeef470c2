"""`[VALUE]` for the key-value drivers (redis, etcd): the keys of `data` as conditions read them.

A probe's `data: {key: expected}` names the keys its check reads; `[VALUE].key` in its
`conditions` reads what one of them held (text; a key the server does not have is absent, so
`has([VALUE].key) == false` holds). A condition can only read a key the check reads, so
`[VALUE].other` with `other` not in `data` is refused at load, where a typo is cheapest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from probe.conditions import Condition, ConditionError
from probe.core.check import Outcome
from probe.text import quoted

__all__ = ["VALUE", "data_outcome", "value_key_problems"]

# The placeholders a key-value driver fills beyond the common ones.
VALUE = frozenset({"VALUE"})

# How many of `data`'s keys a problem lists before "...".
_LISTED = 10


def value_key_problems(
    conditions: Sequence[Condition],
    data: Mapping[str, str],
    problems: Iterable[tuple[int, str]],
) -> list[tuple[int, str]]:
    """`problems` (the spec's own, from ProbeSpec.condition_problems) plus one (index,
    message) for each other condition whose `[VALUE].key` names a key that is not in `data`."""
    found = list(problems)
    seen = {index for index, _ in found}
    for index, condition in enumerate(conditions):
        if index in seen:
            continue  # already refused (a [VALUE] without one key, say): one problem is enough
        for placeholder in condition.placeholders():
            if placeholder.name != "VALUE" or len(placeholder.path) != 1:
                continue
            key = placeholder.path[0]
            if isinstance(key, str) and key not in data:
                error = ConditionError(
                    f"{placeholder.text} reads key {quoted(key)}, which is not in data"
                    f" ({_data_keys(data)}): a condition reads only the keys the check reads",
                    placeholder.position,
                )
                found.append((index, str(error)))
                break
    found.sort(key=lambda problem: problem[0])
    return found


def _data_keys(data: Mapping[str, str]) -> str:
    if not data:
        return "data names no key"
    keys = [quoted(key) for key in list(data)[:_LISTED]]
    more = ", ..." if len(data) > _LISTED else ""
    return f"its keys: {', '.join(keys)}{more}"


def data_outcome(
    details: Mapping[str, object],
    checked: int,
    mismatches: Sequence[str],
    message: str,
    *,
    noun: str = "key",
) -> Outcome:
    """The outcome of a check that compared `checked` entries of `data` (redis keys, memcache
    keys, znodes): down with the first mismatch (and how many more), else up with `message`
    and how many held what they should."""
    out = dict(details)
    if checked:
        out[f"{noun}s_checked"] = checked
    if mismatches:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        out["mismatches"] = len(mismatches)
        return Outcome(ok=False, message=mismatches[0] + more, details=out)
    if checked:
        message += f"; {checked} {noun}{'s' if checked > 1 else ''} as expected"
    return Outcome(ok=True, message=message, details=out)
