"""Stores damaged after they were written (issue 9): refused at open with the reason, left
byte for byte as found; a single bad row only costs its probe's saved state."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from probe.core.result import Status
from probe.errors import StoreError
from probe.store import Store
from tests.store.helpers import NOW, Clock, Feeder, every

PAGE = 4096


async def _written_store(path: Path, probes: int = 3, hours: float = 24) -> None:
    """A real store, closed: a few probes' results every minute (hundreds of pages)."""
    store = Store.open(path, clock=Clock())
    await store.start()
    feeder = Feeder()
    for i in range(probes):
        for obs in feeder.series(f"p{i}", every(NOW - hours * 3600, NOW, 60)):
            store.submit(obs)
    await store.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("DROP TABLE rollups_daily", "no table rollups_daily"),
        ("DROP TABLE probe_state", "no table probe_state"),
        ("ALTER TABLE results DROP COLUMN details", "no results.details"),
        ("ALTER TABLE results DROP COLUMN cert_expiry", "no results.cert_expiry"),
        ("ALTER TABLE outbox DROP COLUMN last_error", "no outbox.last_error"),
    ],
)
async def test_missing_table_or_column_is_refused(tmp_path: Path, damage: str, said: str) -> None:
    path = tmp_path / "probe.db"
    await _written_store(path, hours=2)
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    before = _files(tmp_path)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert said in info.value.reason
    assert "an incomplete probe store" in info.value.reason
    assert "move the file away" in info.value.reason
    assert _files(tmp_path) == before


async def test_corrupt_pages_are_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    await _written_store(path)
    pages = path.stat().st_size // PAGE
    assert pages > 20  # a multi-page database
    with path.open("r+b") as f:  # garbage in the middle of a page in the middle of the file
        f.seek((pages // 2) * PAGE + 1000)
        f.write(b"\xde\xad\xbe\xef" * 300)
    before = _files(tmp_path)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert "corrupt" in info.value.reason
    assert _files(tmp_path) == before


async def test_corrupt_page_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    await _written_store(path)
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:  # a b-tree page's header: its type byte and cell count
        f.seek((pages // 3) * PAGE)
        f.write(b"\x07\xff\xff\xff\xff\xff\xff\xff")
    before = _files(tmp_path)
    with pytest.raises(StoreError, match="corrupt"):
        Store.open(path)
    assert _files(tmp_path) == before


async def test_sound_store_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "probe.db"
    await _written_store(path, hours=2)
    store = Store.open(path, clock=Clock())
    try:
        assert set(store.load_states()) == {"p0", "p1", "p2"}
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "banana"),
        ("since", "yesterday"),
        ("ok_streak", -1),
        ("fail_streak", 1.5),
        ("next_alert", "soon"),
        ("outage_failures", b"\x00"),
    ],
)
async def test_bad_state_row_skips_that_probe_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object
) -> None:
    path = tmp_path / "probe.db"
    await _written_store(path, hours=2)
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE probe_state SET {column} = ? WHERE probe = 'p1'", (value,))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="probe.store"):
        store = Store.open(path, clock=Clock())
        try:
            states = store.load_states()
        finally:
            await store.close()
    assert set(states) == {"p0", "p2"}
    assert states["p0"].status is Status.UP
    assert '"p1"' in caplog.text and "not valid" in caplog.text


@pytest.mark.slow
async def test_app_starts_past_a_bad_state_row(tmp_path: Path) -> None:
    """`probe run` on such a store: no crash, the probe starts unknown and is checked."""
    import asyncio

    from probe.app import App
    from probe.assembly import load_config

    path = tmp_path / "probe.db"
    await _written_store(path, probes=1, hours=1)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE probe_state SET status = 'banana' WHERE probe = 'p0'")
    conn.commit()
    conn.close()
    (tmp_path / "p.yaml").write_text(
        "settings:\n  http: {port: 0}\n  store: {path: probe.db}\n  status: {path: index.html}\n"
        "tcp:\n  - {name: p0, host: '127.0.0.1:1', interval: 100ms, timeout: 90ms}\n"
    )
    app = App(load_config(tmp_path / "p.yaml"))

    async def stop_soon() -> None:
        await asyncio.sleep(0.5)
        app.request_stop()

    task = asyncio.create_task(stop_soon())
    assert await asyncio.wait_for(app.run(), 30) == 0
    await task
    assert app.tracker.state("p0").status is Status.DOWN  # port 1: refused, checked afresh
