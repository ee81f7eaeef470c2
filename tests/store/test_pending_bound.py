"""While writes fail, raw results wait in memory up to a bound; past it the oldest go, and
nothing else does (rollups, states, transitions)."""

from __future__ import annotations

import pytest

from probe.core.result import Status
from probe.store import batch as batch_module
from probe.store.batch import Batch
from tests.store.helpers import NOW, Feeder, every


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
