"""The SQLite store: schema and migrations, the background writer, and the reads.

Writes never happen on the event loop. `submit()` puts an Observation on a queue; one writer
thread, with its own connection, drains whatever is queued and commits it in one transaction:
raw results, transitions, the tracker's state per probe, and hourly and daily rollups
aggregated in memory first, so a batch of N results costs one upsert per (probe, hour) and
one per (probe, UTC day), not N. The daily rows (schema step 3) are the sums of the hourly
ones; SLA reads take whole days inside a window from them and only the edge hours from the
hourly rows. Reads use a second, read-only connection behind a lock; WAL lets them run while
the writer commits.

Retention: raw results are kept `retention` seconds, hourly rollups and transitions 400 days,
a daily rollup until the last of its hours has gone.
The writer prunes when it starts and then at most once an hour.

The alert outbox (schema step 2) goes through the same writer: `outbox_add`/`outbox_update` queue
their rows like observations, wake the writer at once, and return when the transaction holding
them has committed. The alerting awaits that before it sends, so a notification is on disk
before any chat API sees it; and since the queue is in order, the tracker state that decided
the alert is committed with it or before it. Delivered, failed and dropped rows are kept
`retention` seconds for inspection; pending ones stay until the alerting settles them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from probe.core.result import Result, Status
from probe.core.tracker import Observation, ProbeState, Transition
from probe.errors import StoreError
from probe.store.base import OUTBOX_STATES, OutboxItem, OutboxRow, OutboxState
from probe.store.sla import (
    BUCKETS_MS,
    DAY,
    HOUR,
    HourRollup,
    SLAFigures,
    bucket_index,
    day_start,
    hour_start,
    percentile_from_histogram,
    split_by_hour,
)

__all__ = ["DEFAULT_RETENTION", "ROLLUP_RETENTION", "SCHEMA_VERSION", "Store"]

log = logging.getLogger("probe.store")

DEFAULT_RETENTION = 7 * 86400.0
ROLLUP_RETENTION = 400 * 86400.0

_BUSY_TIMEOUT_MS = 5000
# Observations taken off the queue per transaction: large enough that a burst is one commit,
# small enough that one transaction never holds the write lock for long.
_MAX_BATCH = 20_000
# While writes fail (disk full), raw results wait in memory up to this many; past it the
# oldest raw rows are dropped (logged). Rollups, transitions and states are tiny and always kept,
# so SLA figures survive even a long outage of the disk.
_MAX_PENDING_RESULTS = 500_000
_RETRY_MIN = 0.5
_RETRY_MAX = 30.0
# How long the idle writer sleeps before checking whether pruning is due.
_IDLE_TICK = 60.0
# After the first observation of a batch arrives, the writer gathers more for this long
# before committing (a flush or close commits at once). One transaction per observation
# costs ~0.3 ms of CPU at steady rates; gathering makes it one per few hundred. A crash
# loses at most this window, which `probe run` never has on SIGINT/SIGTERM (it flushes).
_BATCH_WINDOW = 0.25


# --------------------------------------------------------------------------- schema


def _migrate_1(conn: sqlite3.Connection) -> None:
    statements = (
        """CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            probe TEXT NOT NULL,
            kind TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            time REAL NOT NULL,
            status TEXT NOT NULL,
            latency REAL,
            message TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX results_probe_time ON results (probe, time)",
        # Retention deletes by time alone; without this it would scan the whole table hourly.
        "CREATE INDEX results_time ON results (time)",
        """CREATE TABLE rollups_hourly (
            probe TEXT NOT NULL,
            hour INTEGER NOT NULL,
            checks_up INTEGER NOT NULL DEFAULT 0,
            checks_down INTEGER NOT NULL DEFAULT 0,
            time_up REAL NOT NULL DEFAULT 0,
            time_down REAL NOT NULL DEFAULT 0,
            latency_sum REAL NOT NULL DEFAULT 0,
            latency_count INTEGER NOT NULL DEFAULT 0,
            latency_min REAL,
            latency_max REAL,
            histogram TEXT NOT NULL,
            measured_from REAL,
            measured_to REAL,
            PRIMARY KEY (probe, hour)
        ) WITHOUT ROWID""",
        """CREATE TABLE transitions (
            id INTEGER PRIMARY KEY,
            probe TEXT NOT NULL,
            time REAL NOT NULL,
            previous TEXT NOT NULL,
            current TEXT NOT NULL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX transitions_probe_time ON transitions (probe, time)",
        """CREATE TABLE probe_state (
            probe TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            since REAL,
            ok_streak INTEGER NOT NULL,
            fail_streak INTEGER NOT NULL,
            last_time REAL,
            outage_failures INTEGER NOT NULL,
            alerts_sent INTEGER NOT NULL,
            next_alert INTEGER,
            updated REAL NOT NULL
        )""",
    )
    for sql in statements:
        conn.execute(sql)


def _migrate_2(conn: sqlite3.Connection) -> None:
    """The alert outbox: one row per (notification, notifier), id = "<notification id>:<name>"."""
    conn.execute(
        """CREATE TABLE outbox (
            id TEXT PRIMARY KEY,
            notifier TEXT NOT NULL,
            notification TEXT NOT NULL,
            created REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            last_error TEXT,
            delivered_at REAL
        )"""
    )
    # What start-up and the retry loop ask: the pending rows, by when they are due.
    conn.execute("CREATE INDEX outbox_state_next ON outbox (state, next_attempt)")


def _migrate_3(conn: sqlite3.Connection) -> None:
    """Daily rollups: rollups_hourly summed per (probe, UTC day), so that long SLA windows read
    one row per day and only the partial days at the edges from the hourly rows. The writer
    keeps both in the same transactions; existing hourly rows are summed into days here."""
    conn.execute(
        """CREATE TABLE rollups_daily (
            probe TEXT NOT NULL,
            day INTEGER NOT NULL,
            checks_up INTEGER NOT NULL DEFAULT 0,
            checks_down INTEGER NOT NULL DEFAULT 0,
            time_up REAL NOT NULL DEFAULT 0,
            time_down REAL NOT NULL DEFAULT 0,
            latency_sum REAL NOT NULL DEFAULT 0,
            latency_count INTEGER NOT NULL DEFAULT 0,
            latency_min REAL,
            latency_max REAL,
            histogram TEXT NOT NULL,
            measured_from REAL,
            measured_to REAL,
            PRIMARY KEY (probe, day)
        ) WITHOUT ROWID"""
    )
    # One pass in SQL for the sums; the histograms come joined per day and are summed in
    # Python (json_each over every hourly row would take minutes on a large store).
    day = "(hour - ((hour % 86400) + 86400) % 86400)"  # floor, also for hours before 1970
    cursor = conn.execute(
        f"SELECT probe, {day}, sum(checks_up), sum(checks_down), sum(time_up), sum(time_down),"
        " sum(latency_sum), sum(latency_count), min(latency_min), max(latency_max),"
        " group_concat(histogram), min(measured_from), max(measured_to)"
        f" FROM rollups_hourly GROUP BY probe, {day}"
    )
    while rows := cursor.fetchmany(10_000):
        conn.executemany(
            _REPLACE_DAILY,
            [
                (*row[:10], _histogram_text(_sum_histograms(row[10] or "")), *row[11:])
                for row in rows
            ],
        )


# _MIGRATIONS[i] takes a database from schema version i to i + 1 (`PRAGMA user_version`).
# Append only: never edit a released step, add a new one.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
)
SCHEMA_VERSION = len(_MIGRATIONS)


# --------------------------------------------------------------------------- errors


def _reason(exc: BaseException) -> str:
    """A short human reason for a SQLite or OS error (the path is added by StoreError)."""
    if isinstance(exc, StoreError):
        return exc.reason
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name == "SQLITE_NOTADB":
            return "not an SQLite database"
        if name.startswith("SQLITE_CORRUPT"):
            return "the database file is corrupt"
        if name == "SQLITE_FULL":
            return "disk full"
        if name in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_TRUNCATE"):
            return "I/O error while writing (disk full or file too large?)"
        if name.startswith("SQLITE_IOERR"):
            return "I/O error"
        if name.startswith("SQLITE_CANTOPEN"):
            return "cannot open the database file"
        if name.startswith("SQLITE_READONLY"):
            return "the database is read-only"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return "the database is locked by another process"
        if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")):
            return "permission denied"
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _is_data_error(exc: BaseException) -> bool:
    """Whether `exc` comes from the values of a row (so retrying as is would fail forever),
    as opposed to the disk or the database (full, I/O, locked), which may recover."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorname", "") in ("SQLITE_TOOBIG", "SQLITE_MISMATCH")
    if isinstance(exc, sqlite3.ProgrammingError):
        # Python 3.11 reports a value of an unsupported type this way; the other
        # ProgrammingErrors (a closed connection, ...) are not about the row.
        return "binding" in str(exc).lower()
    return isinstance(
        exc,
        (
            sqlite3.InterfaceError,
            sqlite3.DataError,
            sqlite3.IntegrityError,
            OverflowError,
            TypeError,
            ValueError,
        ),
    ) or (isinstance(exc, sqlite3.DatabaseError) and "too big" in str(exc))


def _error(path: Path, exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(str(path), _reason(exc))


# --------------------------------------------------------------------------- opening


def _make_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError) as exc:
        # FileExistsError: the parent itself is a file; ENOTDIR: something above it is.
        raise StoreError(str(path), f"cannot create directory {parent}: not a directory") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreError(str(path), f"cannot create directory {parent}: {reason}") from exc


_MAGIC = b"SQLite format 3\x00"


def _check_header(path: Path) -> None:
    """Refuse a non-empty file that does not start like an SQLite database.

    SQLite reports most such files itself (SQLITE_NOTADB), but treats some tiny ones (a single
    byte) as an empty database and would then write over them. An empty file is fine: it is
    what an interrupted first open leaves behind.
    """
    try:
        with path.open("rb") as f:
            head = f.read(len(_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if head and head != _MAGIC:
        raise StoreError(str(path), "not an SQLite database")


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly one
    # transaction. check_same_thread=False: the writer connection is prepared on the opening
    # thread and then used only by the writer thread; the reader is guarded by a lock.
    if readonly:
        target, uri = path.resolve().as_uri() + "?mode=ro", True
    else:
        target, uri = str(path), False
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _newer(path: Path, version: int) -> StoreError:
    return StoreError(
        str(path),
        f"written by a newer probe (schema {version}; this probe knows up to {SCHEMA_VERSION})",
    )


@functools.cache
def _expected_schema(version: int) -> dict[str, frozenset[str]]:
    """Table -> columns of a store at schema `version`: the migrations run on an empty
    in-memory database, so the check can never disagree with what they create."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in _MIGRATIONS[:version]:
            step(memory)
        return _schema(memory)
    finally:
        memory.close()


def _schema(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
    tables = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    ]
    return {
        table: frozenset(
            str(col[1]) for col in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))
        )
        for table in tables
        if not table.startswith("sqlite_")
    }


def _check_integrity(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Refuse a store whose pages are damaged or whose tables or columns are missing: SQLite
    opens such a file happily, and then every write fails and every result is lost. Read
    only: the file is left exactly as found, for the user to repair or move away."""
    advice = "restore a backup, or move the file away to start a new store"
    try:
        # quick_check: every page and row format, without the index cross-checks of
        # integrity_check (minutes on a large store); the first few problems are enough.
        found = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise StoreError(str(path), f"{_reason(exc)} (PRAGMA quick_check); {advice}") from exc
    if found != ["ok"]:
        detail = "; ".join(line.replace("\n", " ")[:120] for line in found)
        raise StoreError(str(path), f"the database file is corrupt ({detail}); {advice}")
    actual = _schema(conn)
    missing = [
        f"{table}.{column}" if table in actual else f"table {table}"
        for table, columns in sorted(_expected_schema(version).items())
        for column in ([""] if table not in actual else sorted(columns - actual[table]))
    ]
    if missing:
        shown = ", ".join(missing[:6]) + (
            f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        )
        raise StoreError(
            str(path), f"an incomplete probe store (schema {version}): no {shown}; {advice}"
        )


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours and sound, and migrate it. Nothing is written before the
    checks pass."""
    # The first read is where a garbage file shows itself (SQLITE_NOTADB); SQLite never
    # writes to a file it could not read, so the file stays byte-identical.
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if version == 0:
        (objects,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if objects:
            raise StoreError(str(path), "not a probe store (it holds other tables)")
    else:
        _check_integrity(conn, path, version)
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across process crashes in WAL mode; only a power cut can lose the
    # last commits, which for health checks is the right trade for far fewer fsyncs.
    conn.execute("PRAGMA synchronous = NORMAL")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        version = _user_version(conn)
        if version > SCHEMA_VERSION:
            raise _newer(path, version)
        for step in _MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back on its own (SQLITE_FULL, I/O errors).
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# --------------------------------------------------------------------------- batching


@dataclass(slots=True)
class _Agg:
    """One (probe, hour) rollup contribution of a batch, merged into the row on write."""

    checks_up: int = 0
    checks_down: int = 0
    time_up: float = 0.0
    time_down: float = 0.0
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_min: float | None = None
    latency_max: float | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_MS))
    measured_from: float | None = None
    measured_to: float | None = None

    def add_time(self, status: Status, start: float, end: float) -> None:
        if status is Status.UP:
            self.time_up += end - start
        else:
            self.time_down += end - start
        self.measured_from = _least(self.measured_from, start)
        self.measured_to = _greatest(self.measured_to, end)

    def add_latency(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_count += 1
        self.latency_min = _least(self.latency_min, seconds)
        self.latency_max = _greatest(self.latency_max, seconds)
        self.histogram[bucket_index(seconds * 1000.0)] += 1

    def merge(self, other: _Agg) -> None:
        """Add `other` (another hour of the same day, or the same hour) into this one."""
        self.checks_up += other.checks_up
        self.checks_down += other.checks_down
        self.time_up += other.time_up
        self.time_down += other.time_down
        self.latency_sum += other.latency_sum
        self.latency_count += other.latency_count
        self.latency_min = _least(self.latency_min, other.latency_min)
        self.latency_max = _greatest(self.latency_max, other.latency_max)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.measured_from = _least(self.measured_from, other.measured_from)
        self.measured_to = _greatest(self.measured_to, other.measured_to)

    def merged_row(self, probe: str, hour: int, old: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """The full row to write: this contribution plus what is stored (`old`), if any."""
        hist = list(self.histogram)
        lo, hi = self.latency_min, self.latency_max
        first, last = self.measured_from, self.measured_to
        values = [
            self.checks_up,
            self.checks_down,
            self.time_up,
            self.time_down,
            self.latency_sum,
            self.latency_count,
        ]
        if old is not None:
            values = [a + b for a, b in zip(values, old[:6], strict=True)]
            lo, hi = _least(lo, old[6]), _greatest(hi, old[7])
            first, last = _least(first, old[9]), _greatest(last, old[10])
            try:
                old_hist = json.loads(old[8])
            except (TypeError, ValueError):
                old_hist = []  # an unreadable histogram must not block every later write
            if len(old_hist) == len(hist):
                hist = [a + b for a, b in zip(hist, old_hist, strict=True)]
        histogram = json.dumps(hist, separators=(",", ":"))
        return (probe, hour, *values, lo, hi, histogram, first, last)


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


# default=str: a prober may put a datetime or an exception in details; storing its text beats
# losing the whole result. One encoder for all: json.dumps with options builds one per call.
_DETAILS_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def _details_json(details: Mapping[str, Any]) -> str:
    return _DETAILS_ENCODER.encode(dict(details)) if details else "{}"


def _text(s: str) -> str:
    """`s` as valid UTF-8. Output decoded with surrogateescape (a shell probe's stderr) holds
    lone surrogates, which SQLite cannot store; each undecodable byte becomes U+FFFD."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return s.encode("utf-8", "replace").decode("utf-8")
    return s


class _Batch:
    """Observations taken off the queue and not yet committed, in the form they are written."""

    __slots__ = (
        "count",
        "dropped",
        "outbox_adds",
        "outbox_updates",
        "results",
        "rollups",
        "states",
        "transitions",
    )

    def __init__(self) -> None:
        self.results: list[tuple[Any, ...]] = []
        self.transitions: list[tuple[Any, ...]] = []
        self.states: dict[str, ProbeState] = {}
        self.rollups: dict[tuple[str, int], _Agg] = {}
        self.count = 0
        self.dropped = 0
        # Written after the observations, adds before updates: an update is only ever queued
        # after the add of its row (the alerting awaits the add before it sends).
        self.outbox_adds: list[tuple[Any, ...]] = []
        self.outbox_updates: list[tuple[Any, ...]] = []

    def add_outbox(self, op: _OutboxOp) -> None:
        self.outbox_adds.extend(op.adds)
        if op.update is not None:
            self.outbox_updates.append(op.update)

    def _agg(self, probe: str, hour: int) -> _Agg:
        agg = self.rollups.get((probe, hour))
        if agg is None:
            agg = self.rollups[(probe, hour)] = _Agg()
        return agg

    def add(self, obs: Observation) -> None:
        r = obs.result
        t = r.time.timestamp()
        latency = r.latency
        if latency is not None:
            latency = max(0.0, float(latency)) if math.isfinite(latency) else None
        self.results.append(
            (
                r.name,
                r.kind,
                r.endpoint,
                t,
                r.status.value,
                latency,
                _text(r.message),
                _details_json(r.details),
            )
        )
        agg = self._agg(r.name, hour_start(t))
        # Checks count by what the check said, not by the tracker's (threshold-delayed) status.
        if r.status is Status.UP:
            agg.checks_up += 1
        elif r.status is Status.DOWN:
            agg.checks_down += 1
        if latency is not None:
            agg.add_latency(latency)
        span = obs.span
        if span is not None and span.status is not Status.UNKNOWN:
            for hour, part_start, part_end in split_by_hour(span.start, span.end):
                self._agg(r.name, hour).add_time(span.status, part_start, part_end)
        tr = obs.transition
        if tr is not None:
            self.transitions.append(
                (tr.name, tr.time, tr.previous.value, tr.current.value, _text(tr.message))
            )
        self.states[obs.state.name] = obs.state
        self.count += 1
        if len(self.results) > _MAX_PENDING_RESULTS:
            excess = len(self.results) - _MAX_PENDING_RESULTS
            del self.results[:excess]
            self.dropped += excess

    def __bool__(self) -> bool:
        return self.count > 0 or bool(self.outbox_adds) or bool(self.outbox_updates)


_INSERT_RESULT = (
    "INSERT INTO results (probe, kind, endpoint, time, status, latency, message, details)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSITION = (
    "INSERT INTO transitions (probe, time, previous, current, message) VALUES (?, ?, ?, ?, ?)"
)
_SELECT_ROLLUP = (
    "SELECT checks_up, checks_down, time_up, time_down, latency_sum, latency_count,"
    " latency_min, latency_max, histogram, measured_from, measured_to"
    " FROM rollups_hourly WHERE probe = ? AND hour = ?"
)
_REPLACE_ROLLUP = (
    "INSERT OR REPLACE INTO rollups_hourly (probe, hour, checks_up, checks_down, time_up,"
    " time_down, latency_sum, latency_count, latency_min, latency_max, histogram,"
    " measured_from, measured_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_DAILY = (
    "SELECT checks_up, checks_down, time_up, time_down, latency_sum, latency_count,"
    " latency_min, latency_max, histogram, measured_from, measured_to"
    " FROM rollups_daily WHERE probe = ? AND day = ?"
)
_REPLACE_DAILY = (
    "INSERT OR REPLACE INTO rollups_daily (probe, day, checks_up, checks_down, time_up,"
    " time_down, latency_sum, latency_count, latency_min, latency_max, histogram,"
    " measured_from, measured_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTBOX = (
    "INSERT OR IGNORE INTO outbox (id, notifier, notification, created, attempts,"
    " next_attempt, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')"
)
# ?1 is the id, so a row refused in careful mode is logged by it; NULL leaves a column as is.
_UPDATE_OUTBOX = (
    "UPDATE outbox SET state = coalesce(?2, state), attempts = coalesce(?3, attempts),"
    " next_attempt = coalesce(?4, next_attempt), last_error = coalesce(?5, last_error),"
    " delivered_at = coalesce(?6, delivered_at) WHERE id = ?1"
)
_UPSERT_STATE = (
    "INSERT OR REPLACE INTO probe_state (probe, status, since, ok_streak, fail_streak,"
    " last_time, outage_failures, alerts_sent, next_alert, updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class _Marker:
    """Queued after the observations it covers: resolved once they are committed (or not)."""

    future: concurrent.futures.Future[None]
    stop: bool = False


@dataclass(frozen=True, slots=True)
class _OutboxOp:
    """Outbox rows to add, or one row to update; `future` resolves once they are committed
    (or with the error of the commit that tried)."""

    future: concurrent.futures.Future[None]
    adds: tuple[tuple[Any, ...], ...] = ()
    update: tuple[Any, ...] | None = None


def _resolve(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    # The awaiting coroutine may have been cancelled, which cancels this future too.
    if future.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class _Writer(threading.Thread):
    """The one thread that writes. It owns `conn`; nothing else touches it once started."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        inbox: queue.SimpleQueue[Observation | _Marker | _OutboxOp],
        retention: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(name="probe-store-writer", daemon=True)
        self.path = path
        self.conn = conn
        self.inbox = inbox
        self.retention = retention
        self.clock = clock
        self.batch = _Batch()
        self.last_error: StoreError | None = None
        self._delay = 0.0  # > 0 while writes fail: wait this long before retrying
        self._last_prune: float | None = None
        self.rows_written = 0  # every row committed, all tables (read by the benchmarks)
        self.urgent = threading.Event()  # set by flush/close: commit now, do not gather
        # Outbox operations taken into the current batch, resolved after its commit attempt.
        self._outbox_ops: list[_OutboxOp] = []

    def run(self) -> None:
        self._prune_if_due()
        stop: _Marker | None = None
        while stop is None:
            markers = self._collect()
            error = self._commit()
            for op in self._outbox_ops:
                _resolve(op.future, error)
            self._outbox_ops.clear()
            for marker in markers:
                if marker.stop:
                    stop = marker
                else:
                    _resolve(marker.future, error)
        if self.batch:
            log.error(
                "store %s closed with %d observations not written: %s",
                self.path,
                self.batch.count,
                self.last_error.reason if self.last_error else "unknown error",
            )
        try:
            self.conn.close()
        except sqlite3.Error as exc:
            log.warning("store %s: closing the writer connection failed: %s", self.path, exc)
        _resolve(stop.future, None)

    def _collect(self) -> list[_Marker]:
        """Take what is queued into the batch; return the markers met on the way.

        Blocks until something arrives (waking now and then to prune). While writes fail,
        waits out the retry delay instead, unless a flush or close asks to try again now.
        """
        markers: list[_Marker] = []
        taken = 0
        deadline = time.monotonic() + self._delay if self._delay else None
        while taken < _MAX_BATCH:
            if markers or self._outbox_ops:
                # Someone awaits this commit: take what is queued and write it now.
                timeout = 0.0
            elif deadline is None and taken:
                # The first observation is in: let more gather for a short window. Sleep on
                # an event, not on the queue, so each further submit() does not wake this
                # thread (a thread switch per observation); flush() and close() set it.
                self.urgent.wait(_BATCH_WINDOW)
                self.urgent.clear()
                deadline = time.monotonic()
                timeout = 0.0
            elif deadline is None:
                timeout = _IDLE_TICK
            else:
                timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Marker):
                markers.append(item)
            elif isinstance(item, _OutboxOp):
                self.batch.add_outbox(item)
                self._outbox_ops.append(item)
                taken += 1
            else:
                try:
                    self.batch.add(item)
                except Exception:
                    # A malformed observation must not block the ones behind it.
                    log.exception("store %s: cannot record an observation; skipped", self.path)
                taken += 1
        if self.batch.dropped:
            log.error(
                "store %s: %d raw results dropped while the database could not be written"
                " (rollups and states are kept)",
                self.path,
                self.batch.dropped,
            )
            self.batch.dropped = 0
        return markers

    def _commit(self) -> StoreError | None:
        """Write the batch in one transaction. On failure keep it for the next attempt."""
        if not self.batch:
            self._prune_if_due()
            return None
        try:
            try:
                self._write(self.batch)
            except Exception as exc:
                if not _is_data_error(exc):
                    raise
                self._write(self.batch, careful=True)
        except Exception as exc:
            error = _error(self.path, exc)
            self.last_error = error
            self._delay = min(_RETRY_MAX, max(_RETRY_MIN, self._delay * 2))
            log.error(
                "store %s: writing %d observations failed (%s); retrying in %.1fs",
                self.path,
                self.batch.count,
                error.reason,
                self._delay,
            )
            return error
        if self._delay:
            log.info("store %s: writing works again", self.path)
        self.batch = _Batch()
        self.last_error = None
        self._delay = 0.0
        self._prune_if_due()
        return None

    def _write(self, batch: _Batch, *, careful: bool = False) -> None:
        """One transaction for the whole batch.

        `careful` writes row by row and skips (with a log line) a row SQLite refuses, so that
        one bad value (a type SQLite cannot bind, a string too big) cannot block every later
        write the way retrying the same failing batch forever would.
        """
        conn = self.conn
        now = self.clock()
        states = [
            (
                s.name,
                s.status.value,
                s.since,
                s.ok_streak,
                s.fail_streak,
                s.last_time,
                s.outage_failures,
                s.alerts_sent,
                s.next_alert,
                now,
            )
            for s in batch.states.values()
        ]
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert(_INSERT_RESULT, batch.results, careful)
            self._insert(_INSERT_TRANSITION, batch.transitions, careful)
            rows = []
            days: dict[tuple[str, int], _Agg] = {}
            for (probe, hour), agg in batch.rollups.items():
                old = conn.execute(_SELECT_ROLLUP, (probe, hour)).fetchone()
                rows.append(agg.merged_row(probe, hour, old))
                day_agg = days.get((probe, day_start(hour)))
                if day_agg is None:
                    day_agg = days[(probe, day_start(hour))] = _Agg()
                day_agg.merge(agg)
            self._insert(_REPLACE_ROLLUP, rows, careful)
            daily = []
            for (probe, day), agg in days.items():
                old = conn.execute(_SELECT_DAILY, (probe, day)).fetchone()
                daily.append(agg.merged_row(probe, day, old))
            self._insert(_REPLACE_DAILY, daily, careful)
            self._insert(_UPSERT_STATE, states, careful)
            self._insert(_INSERT_OUTBOX, batch.outbox_adds, careful)
            self._insert(_UPDATE_OUTBOX, batch.outbox_updates, careful)
            conn.execute("COMMIT")
            self.rows_written += (
                len(batch.results)
                + len(batch.transitions)
                + len(rows)
                + len(daily)
                + len(states)
                + len(batch.outbox_adds)
                + len(batch.outbox_updates)
            )
        except BaseException:
            _rollback(conn)
            raise

    def _insert(self, sql: str, rows: list[tuple[Any, ...]], careful: bool) -> None:
        if not rows:
            return
        if not careful:
            self.conn.executemany(sql, rows)
            return
        for row in rows:
            try:
                self.conn.execute(sql, row)
            except Exception as exc:
                if not _is_data_error(exc):
                    raise
                # A refused statement leaves the transaction open and the other rows in it.
                log.error(
                    "store %s: a row for %r cannot be stored and is skipped: %s",
                    self.path,
                    row[0],
                    exc,
                )

    def _prune_if_due(self) -> None:
        now = self.clock()
        last = self._last_prune
        if last is not None and 0 <= now - last < HOUR:
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM results WHERE time < ?", (now - self.retention,))
                conn.execute("DELETE FROM rollups_hourly WHERE hour < ?", (now - ROLLUP_RETENTION,))
                # A day goes once all its hours have gone.
                conn.execute(
                    "DELETE FROM rollups_daily WHERE day + ? <= ?", (DAY, now - ROLLUP_RETENTION)
                )
                conn.execute("DELETE FROM transitions WHERE time < ?", (now - ROLLUP_RETENTION,))
                conn.execute(
                    "DELETE FROM outbox WHERE state != 'pending' AND created < ?",
                    (now - self.retention,),
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except Exception as exc:
            # Try again in a minute rather than at once: a full disk fails a DELETE too.
            self._last_prune = now - HOUR + 60
            log.warning("store %s: pruning old rows failed: %s", self.path, _reason(exc))
            return
        self._last_prune = now


# --------------------------------------------------------------------------- reads


# The read queries take their probes as one JSON array, :names: one statement (one prepared
# statement in SQLite's cache) serves any number of names, with no placeholder list to build.
_NAMED = "probe IN (SELECT value FROM json_each(:names))"


def _window_rows(daily: str, hourly: str, *, hourly_from: str) -> str:
    """The `rows` of an SLA query over [:start, :end) (parameters from `_window_params`):
    the `daily` columns of rollups_daily and the `hourly` ones of rollups_hourly.

    Whole UTC days inside the window, [:day_from, :day_to), come from rollups_daily (every hour
    of them is wholly inside, so nothing is prorated and all is counted); the hours outside
    that range (the partial days at both ends) come from rollups_hourly, the first end from
    `hourly_from` on. Without a whole day, :day_from = :day_to = :end. Each end is its own
    SELECT: with an OR of the two ranges SQLite walks every hour of a probe.
    """
    return f"""
WITH rows AS (
    SELECT {daily} FROM rollups_daily
    WHERE {_NAMED} AND day >= :day_from AND day < :day_to
    UNION ALL
    SELECT {hourly} FROM rollups_hourly
    WHERE {_NAMED} AND hour >= {hourly_from} AND hour < :day_from
    UNION ALL
    SELECT {hourly} FROM rollups_hourly
    WHERE {_NAMED} AND hour >= :day_to AND hour < :end
)"""


# The edge arithmetic of `probe.store.sla.figures_from_rollups`: an edge hour's times count by
# the part of its measured span inside the window (`frac`), its checks and latencies only if it
# starts inside (`counted`); so the hours are read from the one holding :start (:first_hour).
_SLA_TIMES = (
    _window_rows(
        daily="""probe, time_up, time_down, checks_up + checks_down AS checks, checks_down,
           latency_min, latency_max, 1.0 AS frac, 1 AS counted""",
        hourly="""probe, time_up, time_down, checks_up + checks_down, checks_down,
           latency_min, latency_max,
           CASE
               WHEN hour >= :start AND hour + 3600 <= :end THEN 1.0
               WHEN measured_from IS NULL OR measured_to IS NULL THEN 0.0
               WHEN measured_to <= measured_from
                   THEN measured_from >= :start AND measured_from < :end
               ELSE max(0.0, min(:end, measured_to) - max(:start, measured_from))
                    / (measured_to - measured_from)
           END,
           hour >= :start""",
        hourly_from=":first_hour",
    )
    + """
SELECT probe, sum(time_up * frac), sum(time_down * frac),
       sum(CASE WHEN counted THEN checks ELSE 0 END),
       min(CASE WHEN counted THEN latency_min END),
       max(CASE WHEN counted THEN latency_max END),
       sum(CASE WHEN counted THEN checks_down ELSE 0 END)
FROM rows GROUP BY probe
"""
)
# Histograms count like checks: only the hours starting inside the window (from :start).
# They come back joined per probe ("[..],[..]") and are summed in Python (`_sum_histograms`):
# one json.loads per probe is several times faster than json_each.
_SLA_HISTOGRAMS = (
    _window_rows("probe, histogram", "probe, histogram", hourly_from=":start")
    + """
SELECT probe, group_concat(histogram) FROM rows GROUP BY probe
"""
)
_SLA_INCIDENTS = f"""
SELECT probe, count(*) FROM transitions
WHERE {_NAMED} AND current = 'down' AND time >= :start AND time < :end
GROUP BY probe
"""
_DAILY_UPTIME = f"""
SELECT probe, day, time_up, time_down FROM rollups_daily
WHERE {_NAMED} AND day >= :first AND day < :stop
"""


_HOURLY_LATENCY = f"""
SELECT probe, hour, latency_sum / latency_count FROM rollups_hourly
WHERE {_NAMED} AND hour >= :first AND hour < :stop
  AND latency_count > 0
ORDER BY probe, hour
"""

_TRANSITIONS_MANY = f"""
SELECT probe, time, previous, current, message FROM transitions
WHERE {_NAMED} AND time >= :since AND time < :until
ORDER BY probe, time, id
"""


def _histogram_text(counts: list[int]) -> str:
    return json.dumps(counts, separators=(",", ":"))


def _sum_histograms(joined: str) -> list[int]:
    """The bucket-wise sum of histograms joined by commas; buckets past BUCKETS_MS ignored."""
    size = len(BUCKETS_MS)
    try:
        lists = json.loads(f"[{joined}]")
    except ValueError:
        lists = []
    counts = [0] * size
    even = [h for h in lists if isinstance(h, list) and len(h) == size]
    if even:
        counts = [sum(column) for column in zip(*even, strict=True)]
    for h in lists:
        if isinstance(h, list) and len(h) != size:
            for i, c in enumerate(h[:size]):
                counts[i] += int(c)
    return counts


def _window_params(names: list[str], start: float, end: float) -> dict[str, Any]:
    """The parameters of the SLA queries for [start, end) (end > start)."""
    day_from: float = math.ceil(start / DAY) * DAY
    day_to: float = math.floor(end / DAY) * DAY
    if not day_from < day_to:
        day_from = day_to = end
    return {
        "names": json.dumps(names),
        "start": start,
        "end": end,
        "first_hour": hour_start(start),
        "day_from": day_from,
        "day_to": day_to,
    }


def _state_from_row(row: Sequence[Any]) -> ProbeState | None:
    """A probe_state row as the tracker's state, or None when a value is not one probe
    writes (a status not in Status, a text where a number belongs, a negative count)."""
    name, status, since, ok, fail, last_time, failures, alerts, next_alert = row

    def number(value: Any) -> bool:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(name, str) or status not in _STATUS_VALUES:
        return None
    if not all(v is None or number(v) for v in (since, last_time)):
        return None
    if not all(count(v) for v in (ok, fail, failures, alerts)):
        return None
    if next_alert is not None and not count(next_alert):
        return None
    return ProbeState(
        name=name,
        status=Status(status),
        since=since,
        ok_streak=ok,
        fail_streak=fail,
        last_time=last_time,
        outage_failures=failures,
        alerts_sent=alerts,
        next_alert=next_alert,
    )


_STATUS_VALUES = frozenset(s.value for s in Status)


class Store:
    """Probe results, rollups, transitions and tracker state in one SQLite file.

    Use `Store.open(path)`, then `await store.start()` to run the writer, `submit()` from the
    event loop, `await store.flush()` when a caller needs its writes visible, and
    `await store.close()` at the end (or `async with Store.open(path) as store:`).
    """

    def __init__(
        self,
        path: Path,
        writer_conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        retention: float,
        clock: Callable[[], float],
    ) -> None:
        """Use `Store.open()`; this takes connections already checked and migrated."""
        self.path = path
        self.retention = retention
        self._inbox: queue.SimpleQueue[Observation | _Marker | _OutboxOp] = queue.SimpleQueue()
        self._writer = _Writer(path, writer_conn, self._inbox, retention, clock)
        self._started = False
        self._closed = False
        self._reader = reader
        self._read_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating and migrating if needed) the store at `path`.

        Raises StoreError when the file cannot be used: its directory cannot be made, it is
        not an SQLite database, it belongs to something else, it was written by a newer
        version, or the disk fails. A file that cannot be read is never modified.
        `clock` gives "now" for retention (tests inject one).
        """
        path = Path(path)
        if not retention > 0:
            raise ValueError(f"retention must be positive, got {retention}")
        _make_parent(path)
        if path.is_dir():
            raise StoreError(str(path), "is a directory")
        _check_header(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(path)
            _prepare(conn, path)
            reader = _connect(path, readonly=True)
        except Exception as exc:
            if conn is not None:
                conn.close()
            raise _error(path, exc) from exc
        return cls(path, conn, reader, retention=retention, clock=clock)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the writer thread (idempotent). Queued observations are written from now on."""
        if self._closed:
            raise StoreError(str(self.path), "store is closed")
        if not self._started:
            self._started = True
            self._writer.start()

    async def flush(self) -> None:
        """Wait until everything submitted before this call is committed.

        Raises StoreError if that write failed; the observations stay queued in memory and
        are retried (a later flush retries at once).
        """
        if self._closed:
            return
        await self.start()
        if not self._writer.is_alive():
            raise StoreError(str(self.path), "the writer thread has stopped")
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._inbox.put(_Marker(future))
        self._writer.urgent.set()
        await asyncio.wrap_future(future)

    async def close(self) -> None:
        """Write what is queued, stop the writer and close the connections (idempotent).

        Never raises for a failed final write: it is logged, with the number of observations
        lost, and stays visible in `last_error`.
        """
        stopped = self._stop_writer()
        if stopped is not None:
            await asyncio.wrap_future(stopped)

    def close_sync(self) -> None:
        """`close()` for code without an event loop (the CLI reading SLA figures).

        Blocks until the writer has finished, so never call it from a running event loop
        while observations may be queued; there, use `await close()`.
        """
        stopped = self._stop_writer()
        if stopped is not None:
            stopped.result()

    def _stop_writer(self) -> concurrent.futures.Future[None] | None:
        """Close the reader and ask the writer to stop; the future resolves once it has."""
        if self._closed:
            return None
        self._closed = True
        with self._read_lock:
            # Closed first, so the writer's connection is the last one and its close can
            # checkpoint the WAL and remove it.
            self._reader.close()
        if not self._started:
            if self._inbox.empty():
                self._writer.conn.close()
                return None
            self._started = True
            self._writer.start()
        if not self._writer.is_alive():
            log.error("store %s: the writer thread is gone; nothing more is written", self.path)
            return None
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._inbox.put(_Marker(future, stop=True))
        self._writer.urgent.set()
        return future

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- writes

    def submit(self, obs: Observation) -> None:
        """Queue one observation for writing. Non-blocking and thread-safe."""
        if self._closed:
            raise StoreError(str(self.path), "store is closed")
        self._inbox.put(obs)

    async def outbox_add(self, rows: Sequence[OutboxItem]) -> None:
        """Add notifications to the outbox as `pending`; return once they are committed.

        Raises StoreError if that commit failed; the rows stay queued and are written when
        writing works again. A row whose id is already stored is left as it is.
        """
        adds = tuple(
            (
                row.id,
                row.notifier,
                _text(row.notification),
                float(row.created),
                int(row.attempts),
                float(row.next_attempt),
            )
            for row in rows
        )
        if adds:
            await self._outbox_write(_OutboxOp(concurrent.futures.Future(), adds=adds))

    async def outbox_update(
        self,
        id: str,
        *,
        state: OutboxState | None = None,
        attempts: int | None = None,
        next_attempt: float | None = None,
        last_error: str | None = None,
        delivered_at: float | None = None,
    ) -> None:
        """Change the given columns of one outbox row (None: unchanged); return once committed.

        The change is queued before this coroutine first suspends, so it is written even if
        the caller is cancelled while waiting (the store's close writes what is queued).
        """
        if state is not None and state not in OUTBOX_STATES:
            raise ValueError(f"unknown outbox state {state!r}")
        update = (
            id,
            state,
            attempts,
            next_attempt,
            None if last_error is None else _text(last_error),
            delivered_at,
        )
        await self._outbox_write(_OutboxOp(concurrent.futures.Future(), update=update))

    async def _outbox_write(self, op: _OutboxOp) -> None:
        await self.start()  # raises once closed; never suspends, so the put below is sure
        if not self._writer.is_alive():
            raise StoreError(str(self.path), "the writer thread has stopped")
        self._inbox.put(op)
        self._writer.urgent.set()
        await asyncio.wrap_future(op.future)

    @property
    def last_error(self) -> StoreError | None:
        """Why the most recent write failed; None once a write succeeds again."""
        return self._writer.last_error

    @property
    def rows_written(self) -> int:
        """Rows committed since the store was opened, all tables together."""
        return self._writer.rows_written

    @property
    def pending(self) -> int:
        """Observations taken by the writer but not committed (non-zero while writes fail)."""
        return self._writer.batch.count

    # ----------------------------------------------------------------- reads

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._closed:
                raise StoreError(str(self.path), "store is closed")
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from exc

    def load_states(self) -> dict[str, ProbeState]:
        """The tracker's last state per probe, to start a new StatusTracker where it stopped.
        A row with a value probe never writes (edited by hand, a damaged record) is skipped
        with a warning naming the probe: that probe starts afresh, the others as they were."""
        rows = self._query(
            "SELECT probe, status, since, ok_streak, fail_streak, last_time, outage_failures,"
            " alerts_sent, next_alert FROM probe_state"
        )
        states = {}
        for row in rows:
            state = _state_from_row(row)
            if state is None:
                name = row[0] if isinstance(row[0], str) else repr(row[0])
                log.warning(
                    "store %s: the saved state of probe %s is not valid; it starts as unknown",
                    self.path,
                    json.dumps(name[:200], ensure_ascii=True),
                )
                continue
            states[state.name] = state
        return states

    def outbox_pending(self, now: float | None = None) -> list[OutboxRow]:
        """Pending outbox rows, oldest first; with `now`, only those due by then."""
        sql = (
            "SELECT id, notifier, notification, created, attempts, next_attempt, state,"
            " last_error, delivered_at FROM outbox WHERE state = 'pending'"
        )
        params: tuple[Any, ...] = ()
        if now is not None:
            sql += " AND next_attempt <= ?"
            params = (now,)
        rows = self._query(sql + " ORDER BY created, id", params)
        return [OutboxRow(*row) for row in rows]

    def outbox_count(self, state: OutboxState) -> int:
        """The number of outbox rows in `state`."""
        if state not in OUTBOX_STATES:
            raise ValueError(f"unknown outbox state {state!r}")
        ((count,),) = self._query("SELECT count(*) FROM outbox WHERE state = ?", (state,))
        return int(count)

    def last_results(self, name: str, limit: int) -> list[Result]:
        """The newest `limit` raw results of probe `name`, newest first."""
        if limit <= 0:
            return []
        rows = self._query(
            "SELECT probe, kind, endpoint, status, latency, message, time, details"
            " FROM results WHERE probe = ? ORDER BY time DESC, id DESC LIMIT ?",
            (name, limit),
        )
        return [
            Result(
                name=row[0],
                kind=row[1],
                endpoint=row[2],
                status=Status(row[3]),
                latency=row[4],
                message=row[5],
                time=datetime.fromtimestamp(row[6], UTC),
                details=json.loads(row[7]),
            )
            for row in rows
        ]

    def transitions(self, name: str, since: float, until: float) -> list[Transition]:
        """Status changes of probe `name` in [since, until), oldest first."""
        rows = self._query(
            "SELECT probe, time, previous, current, message FROM transitions"
            " WHERE probe = ? AND time >= ? AND time < ? ORDER BY time, id",
            (name, since, until),
        )
        return [Transition(r[0], r[1], Status(r[2]), Status(r[3]), r[4]) for r in rows]

    def transitions_many(
        self, names: Iterable[str], since: float, until: float
    ) -> dict[str, list[Transition]]:
        """`transitions` for every name in one query (an empty list for a name without any)."""
        wanted = list(dict.fromkeys(names))
        out: dict[str, list[Transition]] = {name: [] for name in wanted}
        if not wanted:
            return out
        params = {"names": json.dumps(wanted), "since": since, "until": until}
        for r in self._query(_TRANSITIONS_MANY, params):
            out[r[0]].append(Transition(r[0], r[1], Status(r[2]), Status(r[3]), r[4]))
        return out

    def hourly_latency(
        self, names: Iterable[str], start: float, end: float
    ) -> dict[str, list[tuple[int, float]]]:
        """(hour, mean latency in seconds) of each hour overlapping [start, end) that measured
        a latency, oldest first, for every name: the status page's 24h chart without reading
        (and JSON-decoding) whole hourly rollups."""
        wanted = list(dict.fromkeys(names))
        out: dict[str, list[tuple[int, float]]] = {name: [] for name in wanted}
        if not wanted or not end > start:
            return out
        params = {"names": json.dumps(wanted), "first": hour_start(start), "stop": end}
        for probe, hour, mean in self._query(_HOURLY_LATENCY, params):
            out[probe].append((int(hour), float(mean)))
        return out

    def probe_names(self) -> list[str]:
        """Every probe that has a stored state, sorted."""
        return [r[0] for r in self._query("SELECT probe FROM probe_state ORDER BY probe")]

    def rollups(self, name: str, start: float, end: float) -> list[HourRollup]:
        """The hourly rollups of probe `name` for hours overlapping [start, end), in order."""
        rows = self._query(
            "SELECT hour, checks_up, checks_down, time_up, time_down, latency_sum,"
            " latency_count, latency_min, latency_max, histogram, measured_from, measured_to"
            " FROM rollups_hourly"
            " WHERE probe = ? AND hour >= ? AND hour < ? ORDER BY hour",
            (name, hour_start(start), end),
        )
        return [
            HourRollup(
                hour=row[0],
                checks_up=row[1],
                checks_down=row[2],
                time_up=row[3],
                time_down=row[4],
                latency_sum=row[5],
                latency_count=row[6],
                latency_min=row[7],
                latency_max=row[8],
                histogram=tuple(json.loads(row[9])),
                measured_from=row[10],
                measured_to=row[11],
            )
            for row in rows
        ]

    def sla(self, name: str, start: float, end: float) -> SLAFigures:
        """SLA figures of one probe over [start, end); see `sla_many`."""
        return self.sla_many([name], start, end)[name]

    def uptime_many(
        self, names: Iterable[str], start: float, end: float
    ) -> dict[str, tuple[float, float]]:
        """Measured (up_s, down_s) over [start, end) for every name ((0, 0) without data).

        The time figures of `sla_many` without its latency histograms and incident counts,
        which cost most of its time over long windows: one query, for callers that need only
        the SLA ratio (the Prometheus metrics' refresher).
        """
        wanted = list(dict.fromkeys(names))
        out = dict.fromkeys(wanted, (0.0, 0.0))
        if not end > start:
            return out
        params = _window_params(wanted, start, end)
        for row in self._query(_SLA_TIMES, params):
            out[row[0]] = (float(row[1] or 0.0), float(row[2] or 0.0))
        return out

    def daily_uptime(
        self, names: Iterable[str], start_day: float, days: int
    ) -> dict[str, list[float | None]]:
        """Per UTC day, from the day holding `start_day` on for `days` days: the percentage of
        measured time that was up (None for a day without measured time), for every name."""
        wanted = list(dict.fromkeys(names))
        days = max(0, int(days))
        out: dict[str, list[float | None]] = {name: [None] * days for name in wanted}
        if not days or not wanted:
            return out
        first = day_start(start_day)
        params = {"names": json.dumps(wanted), "first": first, "stop": first + days * DAY}
        for probe, day, up, down in self._query(_DAILY_UPTIME, params):
            measured = float(up) + float(down)
            if measured > 0:
                out[probe][(int(day) - first) // DAY] = 100.0 * float(up) / measured
        return out

    def sla_many(self, names: Iterable[str], start: float, end: float) -> dict[str, SLAFigures]:
        """SLA figures over [start, end) for every name (zeros for a probe without data).

        The same arithmetic as `probe.store.sla.figures_from_rollups` (edge hours prorated
        by `edge_fraction`, checks counted for hours starting inside the window), done in SQL
        so that a status page over 1,000 probes and 90 days does not pull millions of rows
        into Python: whole UTC days inside the window are read from the daily rollups, only
        the hours of the partial days at both ends from the hourly ones. The three queries
        run in one read transaction: one snapshot.
        """
        wanted = list(dict.fromkeys(names))
        if not end > start:
            return {name: SLAFigures() for name in wanted}
        params = _window_params(wanted, start, end)
        with self._read_lock:
            if self._closed:
                raise StoreError(str(self.path), "store is closed")
            try:
                self._reader.execute("BEGIN")
                try:
                    times = self._reader.execute(_SLA_TIMES, params).fetchall()
                    hists = self._reader.execute(_SLA_HISTOGRAMS, params).fetchall()
                    incidents = self._reader.execute(_SLA_INCIDENTS, params).fetchall()
                finally:
                    self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from exc
        buckets = {probe: _sum_histograms(joined) for probe, joined in hists if joined}
        by_probe = {row[0]: row for row in times}
        down_events = dict(incidents)
        figures: dict[str, SLAFigures] = {}
        for name in wanted:
            row = by_probe.get(name)
            hist = buckets.get(name)
            lo = hi = None
            if row is not None:
                lo = None if row[4] is None else row[4] * 1000.0
                hi = None if row[5] is None else row[5] * 1000.0
            figures[name] = SLAFigures(
                up_s=float(row[1]) if row else 0.0,
                down_s=float(row[2]) if row else 0.0,
                checks=int(row[3]) if row else 0,
                checks_down=int(row[6]) if row else 0,
                incidents=int(down_events.get(name, 0)),
                p95_ms=percentile_from_histogram(hist, 0.95, lo=lo, hi=hi) if hist else None,
                p99_ms=percentile_from_histogram(hist, 0.99, lo=lo, hi=hi) if hist else None,
            )
        return figures


if TYPE_CHECKING:
    # mypy proves here that Store implements the interface the rest of the app relies on.
    from probe.store.base import ResultStore

    _implements: type[ResultStore] = Store
