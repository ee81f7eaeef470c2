from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.core.result import Result, Status
from probe.core.tracker import Policy, StatusTracker, alert_positions

T0 = 1_700_000_000.0


def result(ok: bool, at: float, name: str = "web") -> Result:
    return Result(
        name=name,
        kind="http",
        endpoint="http://127.0.0.1/",
        status=Status.UP if ok else Status.DOWN,
        latency=0.01 if ok else None,
        message="ok" if ok else "status 503 not in 200-399",
        time=datetime.fromtimestamp(at, UTC),
    )


def feed(tracker: StatusTracker, outcomes: str, policy: Policy, start: float = T0):
    """'u' / 'd' per check, one interval apart; returns the observations."""
    return [
        tracker.observe(result(ch == "u", start + i * policy.interval), policy)
        for i, ch in enumerate(outcomes)
    ]


@pytest.mark.parametrize(
    ("strategy", "factor", "expected"),
    [
        ("regular", 1, [1, 2, 3, 4, 5]),
        ("increment", 1, [1, 2, 4, 7, 11]),
        ("exponent", 1, [1, 2, 4, 8, 16]),
        ("regular", 3, [1, 4, 7, 10, 13]),
        ("increment", 2, [1, 3, 7, 13, 21]),
        ("exponent", 2, [1, 3, 7, 15, 31]),
    ],
)
def test_alert_positions_match_design_table(strategy, factor, expected):
    assert alert_positions(strategy, factor, 5) == expected


@pytest.mark.parametrize("strategy", ["regular", "increment", "exponent"])
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_tracker_notifies_exactly_at_the_strategy_positions(strategy, factor):
    policy = Policy(interval=10, strategy=strategy, factor=factor, max_alerts=6)
    tracker = StatusTracker()
    observations = feed(tracker, "u" + "d" * 100, policy)
    fired = [o.state.outage_failures for o in observations if o.alert and o.alert.event == "down"]
    assert fired == [p for p in alert_positions(strategy, factor, 6) if p <= 100]


def test_default_policy_notifies_once_per_outage_and_recovery_carries_duration():
    policy = Policy(interval=10)
    tracker = StatusTracker()
    obs = feed(tracker, "uudddduu", policy)
    alerts = [(o.alert.event, o.alert.duration) for o in obs if o.alert]
    assert alerts == [("down", None), ("recovery", 40.0)]


def test_unknown_to_up_is_silent_unknown_to_down_notifies():
    policy = Policy(interval=10)
    assert feed(StatusTracker(), "u", policy)[0].alert is None
    first = feed(StatusTracker(), "d", policy)[0]
    assert first.alert is not None and first.alert.event == "down"
    assert first.transition is not None and first.transition.previous is Status.UNKNOWN


def test_thresholds_need_consecutive_results():
    policy = Policy(interval=10, failure=3, success=2)
    tracker = StatusTracker()
    obs = feed(tracker, "uuddudddduduu", policy)
    # unknown until two ups; down only after three consecutive downs; up after two ups
    assert [o.state.status for o in obs][:2] == [Status.UNKNOWN, Status.UP]
    assert obs[6].state.status is Status.UP  # d d u d d: never three in a row yet
    assert obs[7].state.status is Status.DOWN
    assert obs[10].state.status is Status.DOWN  # one up is not enough
    assert obs[12].state.status is Status.UP


def test_spans_follow_the_status_held_and_skip_gaps():
    policy = Policy(interval=10)
    tracker = StatusTracker()
    a = tracker.observe(result(True, T0), policy)
    b = tracker.observe(result(False, T0 + 10), policy)
    c = tracker.observe(result(False, T0 + 20), policy)
    d = tracker.observe(result(True, T0 + 100), policy)  # a 80 s gap: not running
    e = tracker.observe(result(True, T0 + 110), policy)
    assert a.span is None  # nothing measured before the first result
    assert (b.span.status, b.span.end - b.span.start) == (Status.UP, 10)
    assert (c.span.status, c.span.end - c.span.start) == (Status.DOWN, 10)
    assert d.span is None
    assert e.span is not None and e.span.status is Status.UP


def test_state_restored_from_store_continues_the_outage_without_repeating():
    policy = Policy(interval=10, max_alerts=2, factor=3)
    tracker = StatusTracker()
    feed(tracker, "udd", policy)
    saved = tracker.states()
    restarted = StatusTracker(saved)
    obs = feed(restarted, "dddd", policy, start=T0 + 30)
    fired = [o.state.outage_failures for o in obs if o.alert]
    assert fired == [4]  # positions 1 and 4; 1 was sent before the restart


@settings(deadline=None, max_examples=150)
@given(
    outcomes=st.text(alphabet="ud", min_size=1, max_size=60),
    failure=st.integers(1, 4),
    success=st.integers(1, 4),
    strategy=st.sampled_from(["regular", "increment", "exponent"]),
    factor=st.integers(1, 3),
    max_alerts=st.integers(1, 5),
)
def test_alert_invariants(outcomes, failure, success, strategy, factor, max_alerts):
    policy = Policy(10, failure, success, strategy, factor, max_alerts)
    obs = feed(StatusTracker(), outcomes, policy)
    downs_in_outage = 0
    for o in obs:
        if o.transition and o.transition.current is Status.DOWN:
            downs_in_outage = 0
        if o.alert and o.alert.event == "down":
            downs_in_outage += 1
            assert o.state.status is Status.DOWN
        if o.alert and o.alert.event == "recovery":
            assert o.transition is not None and o.transition.previous is Status.DOWN
        assert downs_in_outage <= max_alerts
