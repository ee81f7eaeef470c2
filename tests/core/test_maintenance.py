"""Maintenance window maths at fixed instants: across midnight, weekdays, DST, one-offs."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from probe.core.maintenance import (
    MaintenanceCalendar,
    OneOffWindow,
    RecurringWindow,
    local_start,
    outside,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MONDAY, TUESDAY, SUNDAY = 0, 1, 6


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """Unix seconds of a local wall-clock time (the first one when it exists twice)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


def test_daily_window_across_midnight() -> None:
    w = RecurringWindow(time(23, 30), 3600, "Europe/Berlin")
    assert not w.active_at(at("2026-06-01 23:29:59"))
    assert w.active_at(at("2026-06-01 23:30:00"))  # exactly at start: in
    assert w.active_at(at("2026-06-02 00:29:59"))
    assert not w.active_at(at("2026-06-02 00:30:00"))  # exactly at end: out
    assert w.next_end_after(at("2026-06-02 00:10")) == at("2026-06-02 00:30")
    assert w.next_end_after(at("2026-06-02 12:00")) == at("2026-06-03 00:30")
    assert w.next_start_after(at("2026-06-02 12:00")) == at("2026-06-02 23:30")


def test_weekday_window_belongs_to_the_day_it_starts() -> None:
    # 2026-06-01 is a monday: monday 23:30 -> tuesday 00:30, and not tuesday 23:30.
    w = RecurringWindow(time(23, 30), 3600, "Europe/Berlin", frozenset({MONDAY}))
    assert w.active_at(at("2026-06-02 00:15"))  # tuesday, inside monday's occurrence
    assert not w.active_at(at("2026-06-02 23:45"))  # tuesday's own: not a listed day
    assert not w.active_at(at("2026-05-31 23:45"))  # sunday
    assert w.next_end_after(at("2026-06-02 01:00")) == at("2026-06-09 00:30")
    assert w.occurrence_at(at("2026-06-08 23:30")) == (
        at("2026-06-08 23:30"),
        at("2026-06-09 00:30"),
    )


def test_weekday_list() -> None:
    w = RecurringWindow(time(2), 1800, "UTC", frozenset({MONDAY, SUNDAY}))
    assert w.active_at(utc("2026-06-07 02:10"))  # sunday
    assert w.active_at(utc("2026-06-08 02:10"))  # monday
    assert not w.active_at(utc("2026-06-09 02:10"))  # tuesday


def test_spring_forward_start_that_does_not_exist() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC); 02:30 never happens.
    assert local_start(datetime(2026, 3, 29).date(), time(2, 30), BERLIN) == utc("2026-03-29 01:00")
    w = RecurringWindow(time(2, 30), 3600, "Europe/Berlin")
    assert not w.active_at(utc("2026-03-29 00:59:59"))
    assert w.active_at(utc("2026-03-29 01:00"))
    # One hour of real time from the first valid instant: until 04:00 CEST (02:00 UTC).
    assert w.active_at(utc("2026-03-29 01:59:59"))
    assert not w.active_at(utc("2026-03-29 02:00"))
    assert w.next_end_after(utc("2026-03-29 01:30")) == utc("2026-03-29 02:00")
    # The day before and after, the plain wall-clock time.
    assert w.occurrence_at(at("2026-03-28 02:45")) == (
        at("2026-03-28 02:30"),
        at("2026-03-28 03:30"),
    )
    assert w.occurrence_at(at("2026-03-30 02:45")) == (
        at("2026-03-30 02:30"),
        at("2026-03-30 03:30"),
    )


def test_window_over_spring_forward_lasts_its_real_time() -> None:
    w = RecurringWindow(time(1, 30), 3600, "Europe/Berlin")  # 01:30 CET = 00:30 UTC
    assert w.occurrence_at(utc("2026-03-29 01:00")) == (
        utc("2026-03-29 00:30"),
        utc("2026-03-29 01:30"),
    )
    assert not w.active_at(at("2026-03-29 03:30"))  # 01:30 UTC: an hour later, wall 2h later


def test_fall_back_start_that_exists_twice_is_the_first() -> None:
    # Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:30 happens twice.
    w = RecurringWindow(time(2, 30), 1800, "Europe/Berlin")
    assert w.occurrence_at(utc("2026-10-25 00:45")) == (
        utc("2026-10-25 00:30"),
        utc("2026-10-25 01:00"),
    )
    assert not w.active_at(utc("2026-10-25 01:30"))  # the second 02:30: not again
    # A window over the change lasts its real time: 01:30 CEST + 2h = 02:30 CET.
    long = RecurringWindow(time(1, 30), 7200, "Europe/Berlin")
    assert long.occurrence_at(utc("2026-10-25 01:00")) == (
        utc("2026-10-24 23:30"),
        utc("2026-10-25 01:30"),
    )


def test_new_york_dst() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
    w = RecurringWindow(time(2, 15), 900, "America/New_York")
    assert w.occurrence_at(utc("2026-03-08 07:05")) == (
        utc("2026-03-08 07:00"),
        utc("2026-03-08 07:15"),
    )
    fall = RecurringWindow(time(1, 15), 900, "America/New_York")
    assert fall.occurrence_at(utc("2026-11-01 05:20")) == (
        utc("2026-11-01 05:15"),
        utc("2026-11-01 05:30"),
    )
    assert not fall.active_at(utc("2026-11-01 06:20"))  # the second 01:15 EST


def test_one_off_with_offsets() -> None:
    start = datetime.fromisoformat("2026-12-20T22:00:00+01:00").timestamp()
    end = datetime.fromisoformat("2026-12-21T04:00:00+01:00").timestamp()
    w = OneOffWindow(start, end, "datacenter move")
    assert w.active_at(utc("2026-12-20 21:00"))  # the start, in UTC: in
    assert not w.active_at(utc("2026-12-21 03:00"))  # the end: out
    assert w.next_end_after(utc("2026-12-20 12:00")) == end
    assert w.next_end_after(end) is None


def test_recurring_duration_bounds() -> None:
    with pytest.raises(ValueError):
        RecurringWindow(time(1), 0)
    with pytest.raises(ValueError):
        RecurringWindow(time(1), 7 * 86400 + 1)


def test_outside_cuts_the_covered_stretches() -> None:
    assert outside(0, 100, []) == [(0, 100)]
    assert outside(0, 100, [(20, 30), (25, 40)]) == [(0, 20), (40, 100)]
    assert outside(0, 100, [(-10, 10), (90, 200)]) == [(10, 90)]
    assert outside(0, 100, [(-10, 200)]) == []


def test_calendar_shared_and_own_windows() -> None:
    shared = OneOffWindow(100, 200, "all")
    only_api = OneOffWindow(150, 300, "api only")
    own = OneOffWindow(250, 400, "db own")
    calendar = MaintenanceCalendar(
        shared=((shared, None), (only_api, frozenset({"api"}))), own={"db": (own,)}
    )
    assert calendar.window_for("web", 150) is shared
    assert calendar.window_for("api", 160) is only_api  # the one that ends last
    assert calendar.window_for("db", 220) is None
    assert calendar.window_for("db", 250) is own
    assert calendar.end_of("api", 120) == 300  # overlapping windows joined
    assert calendar.covered("db", 0, 1000) == [(100, 200), (250, 400)]
    assert calendar.next_change_after(120) == 150
    assert not MaintenanceCalendar()
