"""Stores that cannot be used: a clear StoreError, and never a damaged file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from probe.errors import StoreError
from probe.store import SCHEMA_VERSION, Store

REPO = Path(__file__).resolve().parents[2]


def test_parent_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    for path in (blocker / "probe.db", blocker / "data" / "probe.db"):
        with pytest.raises(StoreError, match="not a directory") as info:
            Store.open(path)
        assert info.value.reason.startswith("cannot create directory")
        assert info.value.path == str(path)
    assert blocker.read_text() == "a file, not a directory"


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"this is not an SQLite database\n" * 200, b"x", b"SQLite format 3\x00" + b"\xff" * 300],
)
def test_garbage_file_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "probe.db"
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert info.value.reason == "not an SQLite database"
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.db"]


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 41}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(
        StoreError, match=rf"written by a newer probe \(schema {SCHEMA_VERSION + 41}"
    ):
        Store.open(path)
    assert path.read_bytes() == before


def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a probe store"):
        Store.open(path)
    assert path.read_bytes() == before


async def test_reopen_current_schema_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    path.touch()  # an empty file is an empty database: ours to initialise
    await Store.open(path).close()
    await Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_retention_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention"):
        Store.open(tmp_path / "p.db", retention=0)


# The child fills the store, then caps the size any file may grow to (RLIMIT_FSIZE, with
# SIGXFSZ ignored so a write fails with EFBIG instead of killing the process): writes fail,
# are reported, kept and retried once the cap is lifted; a last batch is lost at close.
DISK_FULL_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    from probe.core.result import Status
    from probe.errors import StoreError
    from probe.store import Store
    from tests.store.helpers import NOW, Clock, Feeder, make_result

    async def main(path):
        feeder = Feeder()
        report = {}
        store = Store.open(path, clock=Clock())
        await store.start()

        def submit(n, start):
            for i in range(n):
                store.submit(feeder.observe(make_result("disk", NOW - 86400 + 60 * (start + i))))

        submit(200, 0)
        await store.flush()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))

        submit(100, 200)
        try:
            await store.flush()
            report["first"] = "no error"
        except StoreError as exc:
            report["first"] = exc.reason
        report["last_error"] = store.last_error.reason if store.last_error else None
        report["pending"] = store.pending
        report["readable"] = len(store.last_results("disk", 1000))

        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        await store.flush()  # retried at once: nothing was dropped
        report["after_retry"] = len(store.last_results("disk", 1000))
        report["error_after_retry"] = store.last_error

        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
        submit(50, 300)
        await store.close()  # logs the loss, does not raise
        print(json.dumps(report))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_disk_full_is_reported_and_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["first"] == report["last_error"]
    assert "I/O error while writing" in report["first"] or report["first"] == "disk full"
    assert report["pending"] == 100
    assert report["readable"] == 200
    assert report["after_retry"] == 300
    assert report["error_after_retry"] is None
    assert "50 observations not written" in proc.stderr

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (300,)
        assert conn.execute("SELECT sum(checks_up) FROM rollups_hourly").fetchone() == (300,)
    finally:
        conn.close()
