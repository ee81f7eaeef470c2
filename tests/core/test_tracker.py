from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.core.result import Result, Status
from probe.core.tracker import (
    MAX_POSITION,
    Observation,
    Policy,
    ProbeState,
    StatusTracker,
    alert_positions,
)
from probe.store import Store

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
        ("exponent", 2, [1, 3, 9, 27, 81]),  # EaseProbe: next = n + n*f
        ("exponent", 3, [1, 4, 16, 64, 256]),
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


async def through_store(db: Path, observations: list[Observation]) -> dict[str, ProbeState]:
    """Write `observations` to the real SQLite store, close it, reopen it and return the
    states it loads: what a restarted prober starts from."""
    store = Store.open(db)
    await store.start()
    for o in observations:
        store.submit(o)
    await store.close()
    reopened = Store.open(db)
    try:
        return reopened.load_states()
    finally:
        await reopened.close()


@pytest.mark.parametrize("factor", [1, 2])
async def test_exponent_restart_after_every_check_neither_repeats_nor_skips(factor, tmp_path):
    """A restart (the state saved to SQLite and loaded into a new tracker) after every
    check: the alerts fired are exactly those of an uninterrupted run."""
    policy = Policy(interval=10, strategy="exponent", factor=factor, max_alerts=6)
    tracker = StatusTracker()
    fired = []
    for i, ch in enumerate("u" + "d" * 30):
        o = tracker.observe(result(ch == "u", T0 + i * 10), policy)
        if o.alert and o.alert.event == "down":
            fired.append(o.state.outage_failures)
        tracker = StatusTracker(await through_store(tmp_path / "p.db", [o]))
    assert fired == [p for p in alert_positions("exponent", factor, 6) if p <= 30]
    assert fired == ([1, 2, 4, 8, 16] if factor == 1 else [1, 3, 9, 27])


def test_exponent_state_saved_by_the_old_rule_fires_once_at_its_stored_position():
    # The old rule (gaps f, 2f, 4f) had sent alerts at 1 and 3 (f=2) and stored next = 7.
    # After the upgrade that alert still goes out at 7, once; from there the new rule runs
    # (7 + 7*2 = 21): nothing repeats, and nothing already scheduled is skipped.
    policy = Policy(interval=10, strategy="exponent", factor=2, max_alerts=5)
    saved = ProbeState(
        name="web",
        status=Status.DOWN,
        since=T0,
        fail_streak=3,
        last_time=T0 + 20,
        outage_failures=3,
        alerts_sent=2,
        next_alert=7,
    )
    tracker = StatusTracker({"web": saved})
    obs = feed(tracker, "d" * 40, policy, start=T0 + 30)
    fired = [o.state.outage_failures for o in obs if o.alert]
    assert fired == [7, 21]
    assert obs[-1].state.alerts_sent == 4 and obs[-1].state.next_alert == 63


@pytest.mark.parametrize("strategy", ["regular", "increment", "exponent"])
async def test_huge_factor_keeps_positions_storable(strategy, tmp_path):
    """A factor that would push the next position past SQLite's signed 64-bit INTEGER is
    capped at MAX_POSITION, and the state round-trips through the real store."""
    factor = 10**30
    assert alert_positions(strategy, factor, 10) == [1, MAX_POSITION]  # stops at the cap
    policy = Policy(interval=10, strategy=strategy, factor=factor, max_alerts=10)
    obs = feed(StatusTracker(), "udd", policy)
    assert obs[-1].state.next_alert == MAX_POSITION
    loaded = await through_store(tmp_path / "p.db", obs)
    assert loaded["web"] == obs[-1].state
    # Exponent growth alone (f=2: 3**n) reaches the cap too, and stays there.
    assert alert_positions("exponent", 2, 100)[-1] == MAX_POSITION


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


def test_changed_since_names_each_probe_changed_after_a_version_once():
    tracker = StatusTracker()
    policy = Policy(interval=10.0)
    tracker.observe(result(True, T0, "a"), policy)
    tracker.observe(result(True, T0, "b"), policy)
    seen = tracker.version
    assert tracker.changed_since(seen) == []
    tracker.observe(result(False, T0 + 1, "a"), policy)
    tracker.observe(result(True, T0 + 1, "c"), policy)
    tracker.observe(result(False, T0 + 2, "a"), policy)
    assert tracker.changed_since(seen) == ["a", "c"]  # newest first, "a" once
    assert set(tracker.changed_since(0)) == {"a", "b", "c"}
    tracker.forget("b")
    assert tracker.changed_since(seen) == ["b", "a", "c"]


# --- flapping ----------------------------------------------------------------------------------

FLAP = Policy(interval=1.0, flap_changes=3, flap_window=10.0)


def alerts(observations: list[Observation]) -> list[tuple[int, str]]:
    return [(i, o.alert.event) for i, o in enumerate(observations) if o.alert is not None]


def test_a_probe_alternating_every_check_flaps_once_then_is_stable_once():
    tracker = StatusTracker()
    # up, then 8 changes one second apart, then up for 12 s.
    observations = feed(tracker, "u" + "du" * 4 + "u" * 12, FLAP)
    # Changes at checks 1-8; the 4th (check 4) is more than 3 within 10 s: flapping there,
    # silence after; the last change (check 8) leaves the window at check 18: stable (up).
    assert alerts(observations) == [
        (1, "down"),
        (2, "recovery"),
        (3, "down"),
        (4, "flapping"),
        (18, "stable"),
    ]
    assert observations[18].state.status is Status.UP
    assert all(o.state.flapping for o in observations[4:18])
    assert not any(o.state.flapping for o in observations[18:])


def test_stable_down_is_said_once_and_the_next_recovery_is_an_ordinary_one():
    tracker = StatusTracker()
    observations = feed(tracker, "u" + "du" * 2 + "d" * 12 + "u", FLAP)
    events = [(o.alert.event, o.state.status) for o in observations if o.alert is not None]
    assert events == [
        ("down", Status.DOWN),
        ("recovery", Status.UP),
        ("down", Status.DOWN),
        ("flapping", Status.UP),
        ("stable", Status.DOWN),
        ("recovery", Status.UP),
    ]


def test_changes_spread_wider_than_the_window_never_flap():
    tracker = StatusTracker()
    slow = Policy(interval=1.0, flap_changes=3, flap_window=3.5)
    observations = feed(tracker, "uddduuudddu" * 3, slow)
    assert "flapping" not in [event for _, event in alerts(observations)]
    assert max(len(o.state.flap_times) for o in observations) <= slow.flap_changes + 1


def test_flapping_off_with_zero_changes():
    tracker = StatusTracker()
    observations = feed(tracker, "ud" * 10, Policy(interval=1.0, flap_changes=0))
    assert [event for _, event in alerts(observations)] == ["down", "recovery"] * 9 + ["down"]
    assert all(o.state.flap_times == () for o in observations)


# --- certificate expiry warnings ------------------------------------------------------------------

DAY = 86400.0
WARN = Policy(interval=3600.0, expiry_warnings=(30 * DAY, 7 * DAY, DAY))


def with_expiry(at: float, expires: float) -> Result:
    return replace(result(True, at), cert_expiry=expires)


def test_each_expiry_threshold_warns_once_as_it_is_crossed():
    tracker = StatusTracker()
    expires = T0 + 40 * DAY
    warned = []
    for hour in range(0, 40 * 24, 6):  # a check every 6 hours until the certificate expires
        observation = tracker.observe(with_expiry(T0 + hour * 3600, expires), WARN)
        if observation.warning is not None:
            warned.append((hour, observation.warning.threshold))
    assert warned == [(10 * 24, 30 * DAY), (33 * 24, 7 * DAY), (39 * 24, DAY)]


def test_first_seen_close_to_expiry_warns_once_for_the_smallest_threshold_crossed():
    tracker = StatusTracker()
    first = tracker.observe(with_expiry(T0, T0 + 5 * DAY), WARN)
    assert first.warning is not None and first.warning.threshold == 7 * DAY
    assert tracker.observe(with_expiry(T0 + 3600, T0 + 5 * DAY), WARN).warning is None


def test_a_renewed_certificate_starts_over_without_a_message():
    tracker = StatusTracker()
    assert tracker.observe(with_expiry(T0, T0 + 0.5 * DAY), WARN).warning is not None
    renewed = tracker.observe(with_expiry(T0 + 3600, T0 + 20 * DAY), WARN)
    assert renewed.warning is None
    assert renewed.state.expiry_warned == 30 * DAY  # in the 30-day band already: no message
    later = tracker.observe(with_expiry(T0 + 14 * DAY, T0 + 20 * DAY), WARN)
    assert later.warning is not None and later.warning.threshold == 7 * DAY
    far = tracker.observe(with_expiry(T0 + 15 * DAY, T0 + 400 * DAY), WARN)
    assert far.warning is None and far.state.expiry_warned is None


def test_no_thresholds_no_certificate_no_warning():
    tracker = StatusTracker()
    assert tracker.observe(with_expiry(T0, T0 + 60), Policy(interval=60.0)).warning is None
    assert tracker.observe(result(True, T0 + 60), WARN).warning is None


# --- degraded ---------------------------------------------------------------------------------

PLAIN = Policy(interval=1.0)


def degraded(at: float, why: str | None) -> Result:
    return replace(result(True, at), degraded=why)


def test_degraded_is_said_when_it_starts_and_when_it_ends_and_counts_as_up():
    tracker = StatusTracker()
    said = []
    for i, why in enumerate([None, "[STATUS] == 200 (203)", "[STATUS] == 200 (203)", None]):
        observation = tracker.observe(degraded(T0 + i, why), PLAIN)
        assert observation.state.status is Status.UP
        if observation.degradation is not None:
            said.append((i, observation.degradation.degraded, observation.degradation.message))
    assert said == [(1, True, "[STATUS] == 200 (203)"), (3, False, "ok")]


def test_going_down_ends_degraded_silently_and_a_recovery_into_it_says_it():
    tracker = StatusTracker()
    tracker.observe(degraded(T0, "slow"), PLAIN)
    down = tracker.observe(result(False, T0 + 1), PLAIN)
    assert down.degradation is None and down.state.degraded is None
    back = tracker.observe(degraded(T0 + 2, "slow"), PLAIN)
    assert back.alert is not None and back.alert.event == "recovery"
    assert back.degradation is not None and back.degradation.degraded


def test_a_failure_below_the_threshold_keeps_the_degraded_state():
    tracker = StatusTracker()
    three = Policy(interval=1.0, failure=3)
    tracker.observe(degraded(T0, "slow"), three)
    failing = tracker.observe(result(False, T0 + 1), three)
    assert failing.state.status is Status.UP and failing.state.degraded == "slow"
    assert failing.degradation is None
