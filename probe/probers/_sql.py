"""What the SQL probers (postgres, mysql) share: EaseProbe's `data` keys, strict identifier
quoting, database values turned into text for comparison, and how the data checks and the
query are judged and their server errors labelled.

EaseProbe's `data` maps `"db:table:column:key_column:key_value"` to the expected text: the check
is `SELECT column FROM db.table WHERE key_column = key_value`, compared as a string. The four
names are identifiers, quoted here (never formatted into SQL as they are); the key value is
passed to the driver as a parameter. The key value is everything after the fourth `:`, so it may
itself contain colons (a time, a URL).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from probe.conditions import ConditionError
from probe.core.check import CheckContext
from probe.probers._net import plain_error

if TYPE_CHECKING:
    from probe.probers._client import ClientSpec

__all__ = [
    "DATA_KEY_FORM",
    "MAX_RESULT_ROWS",
    "NO_TLS",
    "ROW_FACTS",
    "CheckFailed",
    "DataCheck",
    "Fact",
    "as_text",
    "fact_value",
    "first_data_mismatch",
    "first_line",
    "labelled",
    "mismatch",
    "note_peer",
    "note_rows",
    "parse_data",
    "passed_checks",
    "query_mismatch",
    "quote_mysql",
    "quote_postgres",
    "reads_rows",
    "result_rows",
    "row_condition_problems",
    "shown",
    "unmapped_error",
]

DATA_KEY_FORM = "db:table:column:key_column:key_value"

# The longest value shown in a message; the rest is cut with an ellipsis.
_MAX_SHOWN = 100


@dataclass(frozen=True, slots=True)
class DataCheck:
    """One `data` entry: SELECT column FROM database.table WHERE key_column = key_value."""

    key: str
    database: str
    table: str
    column: str
    key_column: str
    key_value: str
    expected: str


class CheckFailed(Exception):
    """A server error in one data check or the query, with what was being checked."""

    def __init__(self, label: str, error: BaseException) -> None:
        super().__init__(label)
        self.label = label
        self.error = error


@contextlib.contextmanager
def labelled(label: str, is_server_error: Callable[[BaseException], bool]) -> Iterator[None]:
    """Server errors (missing table, bad SQL) say which data check or query they came from;
    connection errors stay as they are. Which is which is the driver's to say."""
    try:
        yield
    except Exception as exc:
        if is_server_error(exc):
            raise CheckFailed(label, exc) from exc
        raise


def parse_data(data: Mapping[str, str]) -> list[DataCheck]:
    """The `data` entries in config order. Raises ValueError naming the first bad key."""
    checks = []
    for key, expected in data.items():
        parts = key.split(":", 4)
        if len(parts) != 5:
            raise ValueError(f"data key {shown(key)} must have the form {DATA_KEY_FORM}")
        names = parts[:4]
        for label, name in zip(("db", "table", "column", "key_column"), names, strict=True):
            if not name:
                raise ValueError(f"data key {shown(key)}: {label} is empty ({DATA_KEY_FORM})")
            if "\x00" in name:
                raise ValueError(f"data key {shown(key)}: {label} contains a NUL character")
        database, table, column, key_column = names
        checks.append(DataCheck(key, database, table, column, key_column, parts[4], expected))
    return checks


def quote_postgres(name: str) -> str:
    """A PostgreSQL identifier in double quotes, embedded quotes doubled (case is kept)."""
    _check_identifier(name)
    return '"' + name.replace('"', '""') + '"'


def quote_mysql(name: str) -> str:
    """A MySQL/MariaDB identifier in backticks, embedded backticks doubled."""
    _check_identifier(name)
    return "`" + name.replace("`", "``") + "`"


def _check_identifier(name: str) -> None:
    if not name or "\x00" in name:
        raise ValueError("an SQL identifier must be non-empty and without NUL characters")


def as_text(value: object) -> str | None:
    """A database value as the text it is compared with; None for SQL NULL.

    Booleans are `true`/`false` (PostgreSQL's text form), bytes are decoded as UTF-8,
    timestamps use a space between date and time as both servers print them.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time | Decimal):
        return str(value)
    return str(value)


def shown(text: str) -> str:
    """`text` in double quotes for a message, escaped as JSON and cut when long."""
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "…"
    return json.dumps(text, ensure_ascii=False)


def mismatch(expected: str, got: str | None, *, found: bool = True) -> str:
    """`expected "ok", got "degraded"` (or `got NULL`, `got no rows`)."""
    if not found:
        what = "no rows"
    elif got is None:
        what = "NULL"
    else:
        what = shown(got)
    return f"expected {shown(expected)}, got {what}"


# What both SQL probers say when the server answers a TLS request with "no".
NO_TLS = "TLS: the server does not support TLS"


def unmapped_error(exc: BaseException) -> str:
    """A driver error neither SQL prober maps: a timeout of the driver's own, else the
    first line of its message."""
    if isinstance(exc, TimeoutError):
        return "timeout in the driver"
    return first_line(str(exc)) or plain_error(exc)


def first_line(text: str) -> str:
    """The first line of a driver's message, at most 200 characters."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line[:200]


def query_mismatch(expect: str | None, row: Sequence[object] | None) -> str | None:
    """What is wrong with the query's first row against `expect`; None when nothing is
    expected or the first column is as expected."""
    if expect is None:
        return None
    if not row:
        return mismatch(expect, None, found=False)
    got = as_text(row[0])
    return None if got == expect else mismatch(expect, got)


def passed_checks(data_count: int, query: str | None, expect: str | None) -> str:
    """`; 2 data values as expected; query ok`: what a passing check did beyond connecting."""
    text = ""
    if data_count:
        text += f"; {data_count} data value{'s' if data_count != 1 else ''} as expected"
    if query is not None:
        text += "; query as expected" if expect is not None else "; query ok"
    return text


async def first_data_mismatch(
    checks: Iterable[DataCheck],
    fetch: Callable[[DataCheck], Awaitable[Sequence[object] | None]],
    is_server_error: Callable[[BaseException], bool],
) -> str | None:
    """Run the data checks in order, `fetch` giving each one's row (None: no row); the
    first mismatch's message, or None."""
    for check in checks:
        with labelled(f"data {shown(check.key)}", is_server_error):
            row = await fetch(check)
            found, got = (False, None) if row is None else (True, as_text(row[0]))
        if not found or got != check.expected:
            return f"data {shown(check.key)}: {mismatch(check.expected, got, found=found)}"
    return None


# --- the facts conditions read: [RESULT] (the query's rows) and [ROWS] ----------------------------

# The placeholders the query fills (the specs' `condition_placeholders`).
ROW_FACTS = frozenset({"RESULT", "ROWS"})
# The most rows kept in [RESULT]: a health check's query answers in a few rows; one that
# returns a table must not hold it in memory for each check.
MAX_RESULT_ROWS = 1000

# A value as conditions read it (probe.conditions.evaluate compares numbers, booleans, text).
Fact = int | float | str | bool | None


def fact_value(value: object) -> Fact:
    """A driver's value as a fact: int, float, str, bool and None as they are; Decimal as
    int (when whole) or float; dates and times as ISO text; bytes as UTF-8 text; any other
    type (intervals, UUIDs, arrays, ...) as its str()."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float("nan") if value.is_nan() else float(value)  # float(sNaN) would raise
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def result_rows(columns: Sequence[str], rows: Iterable[Iterable[object]]) -> list[dict[str, Fact]]:
    """The first MAX_RESULT_ROWS of `rows` as mappings of column to value, in column order.
    A column name that repeats (`SELECT a.id, b.id`) keeps its first column's value."""
    result = []
    for row in itertools.islice(rows, MAX_RESULT_ROWS):
        record: dict[str, Fact] = {}
        for column, value in zip(columns, row, strict=False):
            if column not in record:
                record[column] = fact_value(value)
        result.append(record)
    return result


def note_rows(ctx: CheckContext, rows: list[dict[str, Fact]], count: int) -> None:
    """[RESULT] (at most MAX_RESULT_ROWS rows) and [ROWS] (`count`: every row when the
    driver knows it, else the rows read; the caller says which in its comment)."""
    ctx.facts["RESULT"] = rows[:MAX_RESULT_ROWS]
    ctx.facts["ROWS"] = count


def reads_rows(reads: frozenset[str]) -> bool:
    """Whether the conditions (`Prober.condition_reads`) read [RESULT] or [ROWS]: only then
    does a query fetch more than the first row `expect` judges."""
    return bool(reads & ROW_FACTS)


def row_condition_problems(
    spec: ClientSpec, problems: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """`problems` (ProbeSpec.condition_problems) plus one for each other condition of `spec`
    that reads [RESULT] or [ROWS] when it has none of its `query_keys` set to fill them: it
    would fail every check."""
    if any(getattr(spec, key, None) is not None for key in spec.query_keys):
        return problems
    reported = {index for index, _ in problems}
    keys = " or ".join(spec.query_keys)
    for index, condition in enumerate(spec.parsed_conditions()):
        if index in reported:
            continue
        for placeholder in condition.placeholders():
            if placeholder.name in ROW_FACTS:
                error = ConditionError(
                    f"[{placeholder.name}] reads the query's rows: set {keys}",
                    placeholder.position,
                )
                problems = [*problems, (index, str(error))]
                break
    return problems


def note_peer(ctx: CheckContext, peername: Any) -> None:
    """[IP] from a socket's peer name, for drivers that connect themselves (not through
    probers/_connect.py); a Unix socket's (a path, or empty) has none."""
    if isinstance(peername, tuple) and peername and peername[0]:
        ctx.facts["IP"] = str(peername[0])
