"""How SQLite and OS errors become `StoreError`: the one place the store translates them.

Every store module that touches the database maps what it catches through `as_store_error`, so
a user reads "disk full" or "not an SQLite database" with the path, never an sqlite3 class name.
`is_data_error` tells the writer whether retrying could ever help.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from probe.errors import StoreError

__all__ = ["as_store_error", "is_data_error", "reason"]


def reason(exc: BaseException) -> str:
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


def is_data_error(exc: BaseException) -> bool:
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


def _file_system_state(path: Path) -> str | None:
    """ "the file system is read-only" or "disk full" when the file system holding `path` is
    in that state, else None. SQLite reports both as an I/O error while writing (it keeps the
    OS error to itself), and a read-only remount after a disk error as that too."""
    for folder in (path.parent, *path.parent.parents):
        try:
            fs = os.statvfs(folder)
        except OSError:
            continue
        if fs.f_flag & os.ST_RDONLY:
            return "the file system is read-only"
        if fs.f_blocks and fs.f_bavail == 0:
            return "disk full"
        break
    # A file system the kernel turned read-only after a disk error (ext4's errors=remount-ro)
    # may still say rw to statvfs; opening a file for writing tells. The write-ahead log is
    # the file to open: SQLite locks none of its byte ranges, so closing this descriptor
    # cannot release a POSIX lock SQLite holds (closing one of the database file would).
    try:
        os.close(os.open(path.with_name(path.name + "-wal"), os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "the file system is read-only"
    return None


def _is_write_failure(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if isinstance(exc, sqlite3.Error):
        return name == "SQLITE_FULL" or name.startswith(("SQLITE_IOERR", "SQLITE_READONLY"))
    return isinstance(exc, OSError)


def as_store_error(path: Path, exc: BaseException) -> StoreError:
    """`exc` as the StoreError of the store at `path` (a StoreError is returned as it is).

    A failed write is told apart by the state of the file system when it says more than
    SQLite does: read-only, or full."""
    if isinstance(exc, StoreError):
        return exc
    why = reason(exc)
    if _is_write_failure(exc):
        why = _file_system_state(path) or why
    return StoreError(str(path), why)
