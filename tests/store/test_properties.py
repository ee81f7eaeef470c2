"""Property: whatever the results, measured time fits the wall span and SLA stays in [0, 100]."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.core.result import Status
from probe.core.tracker import Policy
from probe.store import Store, figures_from_rollups
from tests.store.helpers import NOW, Clock, Feeder, make_result

pytestmark = pytest.mark.slow

INTERVAL = 60.0

steps = st.lists(
    st.tuples(
        # Seconds since the previous result: often regular, sometimes a gap (> 2 x interval).
        st.floats(min_value=0.5, max_value=400.0, allow_nan=False),
        st.sampled_from([Status.UP, Status.DOWN]),
    ),
    min_size=1,
    max_size=80,
)


async def record(path: Path, policy: Policy, plan: list[tuple[float, Status]]):
    feeder = Feeder(policy)
    # Deliberately not on an hour boundary, and 2 h before a UTC midnight, so that the data
    # often crosses it and the windows below cover whole days (read from the daily rollups).
    t = NOW - 86400 - 7200 + 1234.5
    times, spans = [], []
    async with Store.open(path, clock=Clock()) as store:
        for gap, status in plan:
            t += gap
            obs = feeder.observe(make_result("prop", t, status))
            times.append(t)
            if obs.span is not None:
                spans.append(obs.span)
            store.submit(obs)
        await store.flush()
        first, last = times[0], times[-1]
        whole = store.sla("prop", 0, NOW)
        mid = (first + last) / 2
        windows = [
            (first - 1800, mid),
            (mid, last + 1),
            (first + 977.0, last - 1531.0),
            (0, NOW),
            (NOW - 86400, NOW),
            (NOW - 2 * 86400 + 77.7, NOW - 5.5),
            (NOW - 86400 - 3600, NOW + 3600),
        ]
        parts = [(a, b, store.sla("prop", a, b), store.rollups("prop", a, b)) for a, b in windows]
    return first, last, spans, whole, parts


@settings(deadline=None, max_examples=100)
@given(
    plan=steps,
    failure=st.integers(min_value=1, max_value=3),
    success=st.integers(min_value=1, max_value=3),
)
def test_measured_time_fits_the_wall_span(
    plan: list[tuple[float, Status]], failure: int, success: int
) -> None:
    policy = Policy(interval=INTERVAL, failure=failure, success=success)
    with tempfile.TemporaryDirectory() as tmp:
        first, last, spans, whole, parts = asyncio.run(record(Path(tmp) / "probe.db", policy, plan))

    assert whole.up_s + whole.down_s <= last - first + 1e-6
    assert whole.up_s == pytest.approx(sum(s.end - s.start for s in spans if s.status is Status.UP))
    assert whole.down_s == pytest.approx(
        sum(s.end - s.start for s in spans if s.status is Status.DOWN)
    )
    assert whole.checks == len(plan)
    assert whole.sla is None or 0.0 <= whole.sla <= 100.0
    for start, end, figures, rows in parts:
        assert figures.up_s >= 0 and figures.down_s >= 0
        assert figures.up_s + figures.down_s <= max(0.0, end - start) + 1e-6
        assert figures.sla is None or 0.0 <= figures.sla <= 100.0
        # The SQL in the store (whole days from the daily rollups, the rest from the hourly
        # ones) and the reference arithmetic in sla.py over the hourly rollups agree.
        reference = figures_from_rollups(rows, start, end, figures.incidents)
        assert figures.up_s == pytest.approx(reference.up_s, abs=1e-6)
        assert figures.down_s == pytest.approx(reference.down_s, abs=1e-6)
        assert figures.checks == reference.checks
        assert figures.checks_down == reference.checks_down
        assert figures.p95_ms == pytest.approx(reference.p95_ms)
        assert figures.p99_ms == pytest.approx(reference.p99_ms)
