"""The store's schema: its migrations, and opening a file (checks first, then migration).

`MIGRATIONS[i]` takes a database from schema version i to i + 1 (`PRAGMA user_version`);
`SCHEMA_VERSION` is how many there are. Opening never writes to a file before it has been
shown to be ours and sound: the header, the schema version, `PRAGMA quick_check` and the
tables and columns the migrations create are all checked first, so a file that cannot be
used is left byte-identical for the user to repair or move away.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path

from probe.errors import StoreError
from probe.store.columns import histogram_text, sum_histograms
from probe.store.errors import as_store_error, reason
from probe.store.rollups import REPLACE_DAILY

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "open_connections", "rollback"]

_BUSY_TIMEOUT_MS = 5000


# --------------------------------------------------------------------------- migrations


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
            REPLACE_DAILY,
            [(*row[:10], histogram_text(sum_histograms(row[10] or "")), *row[11:]) for row in rows],
        )


def _migrate_4(conn: sqlite3.Connection) -> None:
    """The typed readings of a result (`Result.http_status`, `Result.cert_expiry`), so that a
    result read back after a restart carries them like a live one. Nullable, without a
    default: SQLite adds such a column to the table's definition only, with no rewrite of the
    rows, so this step takes no time on a large store; older rows read back as NULL (None)."""
    conn.execute("ALTER TABLE results ADD COLUMN http_status INTEGER")
    conn.execute("ALTER TABLE results ADD COLUMN cert_expiry REAL")


def _migrate_5(conn: sqlite3.Connection) -> None:
    """The alert state beyond up/down as JSON text (`ProbeState.flapping`, `flap_times`,
    `expiry_warned`), NULL while there is none (nullable: no rewrite of the rows)."""
    conn.execute("ALTER TABLE probe_state ADD COLUMN alert_state TEXT")


# MIGRATIONS[i] takes a database from schema version i to i + 1 (`PRAGMA user_version`).
# Append only: never edit a released step, add a new one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
)
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- opening


def open_connections(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The writer's connection to the store at `path` (created and migrated if needed) and
    a read-only one beside it.

    Raises StoreError when the file cannot be used: its directory cannot be made, it is not
    an SQLite database, it belongs to something else, it was written by a newer version, or
    the disk fails. A file that cannot be read is never modified.
    """
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
        raise as_store_error(path, exc) from exc
    return conn, reader


def rollback(conn: sqlite3.Connection) -> None:
    """End the open transaction of `conn`, if any, without raising."""
    if conn.in_transaction:
        # SQLite may already have rolled back on its own (SQLITE_FULL, I/O errors).
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _make_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError) as exc:
        # FileExistsError: the parent itself is a file; ENOTDIR: something above it is.
        raise StoreError(str(path), f"cannot create directory {parent}: not a directory") from exc
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise StoreError(str(path), f"cannot create directory {parent}: {why}") from exc


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
        for step in MIGRATIONS[:version]:
            step(memory)
        return _table_columns(memory)
    finally:
        memory.close()


def _table_columns(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
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
        raise StoreError(str(path), f"{reason(exc)} (PRAGMA quick_check); {advice}") from exc
    if found != ["ok"]:
        detail = "; ".join(line.replace("\n", " ")[:120] for line in found)
        raise StoreError(str(path), f"the database file is corrupt ({detail}); {advice}")
    actual = _table_columns(conn)
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
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
