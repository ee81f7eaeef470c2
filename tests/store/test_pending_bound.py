"""While writes fail, raw results wait in memory up to a bound; past it the oldest go, and
nothing else does (rollups, states, transitions). The outage is logged once, not per retry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from probe.core.result import Status
from probe.errors import StoreError
from probe.store import Store
from probe.store import batch as batch_module
from probe.store import writer as writer_module
from probe.store.batch import Batch
from tests.store.helpers import NOW, Feeder, every, make_result


def test_past_the_bound_the_oldest_raw_results_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "MAX_PENDING_RESULTS", 3)
    batch = Batch()
    times = every(NOW, NOW + 60 * 5, 60)  # 6 results
    for obs in Feeder().series("api", times, lambda t: Status.DOWN if t > NOW else Status.UP):
        batch.add(obs)
    assert [row[3] for row in batch.results] == times[-3:]
    assert batch.dropped == 3 and batch.count == 6
    ((_, sums),) = batch.rollups.items()
    assert (sums.checks_up, sums.checks_down) == (1, 5)
    assert len(batch.transitions) == 2  # unknown -> up, up -> down
    assert batch.states["api"].last_time == times[-1]


async def test_an_outage_is_logged_once_then_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's own logging, fed the errors a failing disk gives (the real failures are in
    # tests/faults/test_store_outage.py); the writer thread is not started.
    store = Store.open(tmp_path / "probe.db")
    writer = store._writer
    writer.batch.add(Feeder().observe(make_result("api", NOW)))
    full = StoreError(str(store.path), "disk full")
    with caplog.at_level(logging.DEBUG, logger="probe.store"):
        for _ in range(5):
            writer._log_failure(full)
        errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "cannot be written: disk full: 1 results held in memory" in errors[0]
        assert f"bounded at {batch_module.MAX_PENDING_RESULTS} raw results" in errors[0]
        # A new reason is said at once; the same one again after _REMIND_EVERY (made 0 here).
        monkeypatch.setattr(writer_module, "_REMIND_EVERY", 0.0)
        writer._log_failure(StoreError(str(store.path), "the file system is read-only"))
        writer._log_failure(StoreError(str(store.path), "the file system is read-only"))
        errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 3
        assert "cannot be written: the file system is read-only" in errors[1]
        assert "still cannot be written after" in errors[2]
        writer._log_recovery()
        (recovered,) = [r.message for r in caplog.records if r.levelno == logging.WARNING]
        assert "can be written again after" in recovered and "1 results held" in recovered
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4  # the retries

    store.close_sync()
