"""The query parameters the status page and /api/v1/sla share: EaseProbe's filters and paging.

Bad values raise BadRequest, whose message names the parameter; the server answers it with a
400 and a JSON error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from probe.durations import parse_duration
from probe.web.data import ProbeSummary

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "BadRequest",
    "filter_summaries",
    "page_size",
    "seconds",
    "whole_number",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_MAX_TEXT_PARAM = 200


class BadRequest(Exception):
    """A query parameter out of range or of the wrong type; the message names it."""


def _text(query: Mapping[str, str], key: str) -> str | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    if len(value) > _MAX_TEXT_PARAM:
        raise BadRequest(f"{key}: at most {_MAX_TEXT_PARAM} characters")
    return value


def _number(query: Mapping[str, str], key: str, lo: float, hi: float) -> float | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{key}: expected a number, got {value[:40]!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise BadRequest(f"{key}: expected a number from {lo:g} to {hi:g}")
    return number


def whole_number(query: Mapping[str, str], key: str, lo: int, hi: int) -> int | None:
    """Parameter `key` as a whole number from lo to hi; None when absent or empty."""
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{key}: expected a whole number, got {value[:40]!r}") from None
    if not lo <= number <= hi:
        raise BadRequest(f"{key}: expected a whole number from {lo} to {hi}")
    return number


def seconds(query: Mapping[str, str], key: str, lo: int, hi: int) -> int | None:
    """Parameter `key` as whole seconds from lo to hi: a plain number (`30`, this page's
    own form) or a duration (`30s`, `1m`, `1m30s`: EaseProbe's form). A fraction is rounded
    up (a meta refresh counts whole seconds). None when absent or empty."""
    value = query.get(key)
    if value is None or value == "":
        return None
    if len(value) > 40:
        raise BadRequest(f"{key}: expected a duration such as 30s")
    text = value.strip()
    try:
        # A bare number is whole seconds; anything else must read as a duration.
        amount = float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else parse_duration(text)
    except ValueError:
        raise BadRequest(
            f"{key}: expected seconds or a duration such as 30s or 1m, got {value[:40]!r}"
        ) from None
    if not math.isfinite(amount) or not lo <= amount <= hi:
        raise BadRequest(f"{key}: expected from {lo} to {hi} seconds")
    return max(lo, math.ceil(amount))


def _integer(query: Mapping[str, str], key: str, lo: int, hi: int, default: int) -> int:
    number = whole_number(query, key, lo, hi)
    return default if number is None else number


def filter_summaries(
    items: list[ProbeSummary], query: Mapping[str, str]
) -> tuple[list[ProbeSummary], int, int]:
    """EaseProbe's filters: name, kind, ep, msg (substrings, case-insensitive; kind exact),
    status (up|down), gte/lte (overall SLA %), pg/sz (page from 1, size up to 1,000).
    Returns (page, page number, total matching)."""
    name, kind, ep, msg = (_text(query, k) for k in ("name", "kind", "ep", "msg"))
    status = _text(query, "status")
    if status is not None and status not in ("up", "down"):
        raise BadRequest("status: expected up or down")
    gte = _number(query, "gte", 0, 100)
    lte = _number(query, "lte", 0, 100)
    page = _integer(query, "pg", 1, 1_000_000, 1)
    size = page_size(query)

    def keep(item: ProbeSummary) -> bool:
        info = item.info
        if name and name.lower() not in info.name.lower():
            return False
        if kind and kind != info.kind:
            return False
        if ep and ep.lower() not in info.endpoint.lower():
            return False
        if msg and (item.last is None or msg.lower() not in item.last.message.lower()):
            return False
        if status and item.status.value != status:
            return False
        sla = item.total.sla
        if gte is not None and (sla is None or sla < gte):
            return False
        return not (lte is not None and (sla is None or sla > lte))

    filtered = any(v is not None for v in (name, kind, ep, msg, status, gte, lte))
    matching = [item for item in items if keep(item)] if filtered else list(items)
    return matching[(page - 1) * size : page * size], page, len(matching)


def page_size(query: Mapping[str, str]) -> int:
    """`sz`: probes per page, 1 to MAX_PAGE_SIZE (DEFAULT_PAGE_SIZE when absent)."""
    return _integer(query, "sz", 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
