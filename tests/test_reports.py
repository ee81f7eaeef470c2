"""Scheduled SLA reports: report times (DST included), report content, the scheduler task."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from probe.assembly import build_notifiers, load_config
from probe.config import Config
from probe.config.models import SLASettings
from probe.core.result import Status
from probe.notify.base import Event, Notification, NotifyContext
from probe.notify.dispatch import Dispatcher
from probe.notify.templates import Templates
from probe.reports import (
    ReportScheduler,
    build_report,
    next_report_time,
    report_bounds,
    report_window,
    store_report_builder,
)
from probe.store import Store
from probe.store.sla import window_bounds
from tests.store.helpers import Clock, Feeder, every

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# --- next_report_time -----------------------------------------------------------------------


def test_daily_at_the_local_time_next_day_once_passed() -> None:
    at = next_report_time("daily", "09:00", BERLIN, berlin(2026, 1, 31, 8, 59))
    assert at == berlin(2026, 1, 31, 9, 0)
    at = next_report_time("daily", "09:00", BERLIN, berlin(2026, 1, 31, 9, 0))
    assert at == berlin(2026, 2, 1, 9, 0)


def test_weekly_on_sundays_monthly_on_the_last_day_as_easeprobe() -> None:
    # 2026-03-04 is a Wednesday; the Sunday after is 2026-03-08.
    at = next_report_time("weekly", "07:15", BERLIN, berlin(2026, 3, 4, 12, 0))
    assert at == berlin(2026, 3, 8, 7, 15) and at.weekday() == 6
    # On the Sunday itself: before the time, that day; from the time on, a week later.
    assert next_report_time("weekly", "07:15", BERLIN, berlin(2026, 3, 8, 7, 14)) == at
    at = next_report_time("weekly", "07:15", BERLIN, berlin(2026, 3, 8, 7, 15))
    assert at == berlin(2026, 3, 15, 7, 15)
    at = next_report_time("monthly", "00:00", BERLIN, berlin(2026, 12, 1, 0, 0))
    assert at == berlin(2026, 12, 31, 0, 0)
    at = next_report_time("monthly", "00:00", BERLIN, berlin(2026, 12, 31, 0, 0))
    assert at == berlin(2027, 1, 31, 0, 0)
    # February's last day, in a common and in a leap year; 30-day months.
    assert next_report_time("monthly", "12:00", BERLIN, berlin(2027, 2, 1)) == berlin(
        2027, 2, 28, 12, 0
    )
    assert next_report_time("monthly", "12:00", BERLIN, berlin(2028, 2, 1)) == berlin(
        2028, 2, 29, 12, 0
    )
    assert next_report_time("monthly", "12:00", BERLIN, berlin(2028, 3, 31, 13)) == berlin(
        2028, 4, 30, 12, 0
    )


def test_hh_mm_ss_is_honoured_to_the_second() -> None:
    # EaseProbe's "23:59:59": the report closes the day (and the week, and the month).
    at = next_report_time("daily", "23:59:59", BERLIN, berlin(2026, 3, 4, 23, 59, 58))
    assert at == berlin(2026, 3, 4, 23, 59, 59)
    at = next_report_time("daily", "23:59:59", BERLIN, berlin(2026, 3, 4, 23, 59, 59))
    assert at == berlin(2026, 3, 5, 23, 59, 59)
    at = next_report_time("weekly", "23:59:59", BERLIN, berlin(2026, 3, 4))
    assert at == berlin(2026, 3, 8, 23, 59, 59)
    at = next_report_time("monthly", "23:59:59", BERLIN, berlin(2026, 2, 28, 23, 59, 58))
    assert at == berlin(2026, 2, 28, 23, 59, 59)
    # Hourly: at MM:SS of every hour, the seconds included.
    at = next_report_time("hourly", "00:20:30", BERLIN, berlin(2026, 5, 1, 10, 20, 10))
    assert at == berlin(2026, 5, 1, 10, 20, 30)
    at = next_report_time("hourly", "00:20:30", BERLIN, berlin(2026, 5, 1, 10, 20, 30))
    assert at == berlin(2026, 5, 1, 11, 20, 30)
    # "HH:MM" is HH:MM:00, as before.
    assert next_report_time("daily", "09:00", BERLIN, berlin(2026, 3, 4)) == berlin(
        2026, 3, 4, 9, 0, 0
    )


@pytest.mark.parametrize("value", ["23:59:59", "00:00:00", "09:30", "23:59"])
def test_sla_time_accepts_hh_mm_and_hh_mm_ss(value: str) -> None:
    assert SLASettings.model_validate({"time": value}).time == value


@pytest.mark.parametrize("value", ["24:00", "23:60", "23:59:60", "9:30", "09:30:5", "09:30:00:00"])
def test_sla_time_rejects_other_shapes(value: str) -> None:
    with pytest.raises(ValidationError, match=r'"HH:MM" or "HH:MM:SS"'):
        SLASettings.model_validate({"time": value})


def test_sla_time_hh_mm_ss_from_a_config_file(tmp_path: Path) -> None:
    # Unquoted, as EaseProbe's examples write it: YAML 1.2 keeps it a string.
    path = tmp_path / "p.yaml"
    path.write_text("settings:\n  sla: {schedule: weekly, time: 23:59:59}\n")
    sla = load_config(path).settings.sla
    assert (sla.schedule, sla.time) == ("weekly", "23:59:59")


def test_hourly_minutely_none() -> None:
    assert next_report_time("hourly", "09:20", BERLIN, berlin(2026, 5, 1, 10, 20)) == berlin(
        2026, 5, 1, 11, 20
    )
    assert next_report_time("hourly", "00:20", BERLIN, berlin(2026, 5, 1, 10, 19, 59)) == berlin(
        2026, 5, 1, 10, 20
    )
    assert next_report_time("minutely", "09:00", BERLIN, berlin(2026, 5, 1, 10, 19, 1)) == berlin(
        2026, 5, 1, 10, 20
    )
    assert next_report_time("none", "09:00", BERLIN, berlin(2026, 5, 1)) is None
    with pytest.raises(ValueError):
        next_report_time("yearly", "09:00", BERLIN, berlin(2026, 5, 1))


def test_spring_forward_goes_out_at_the_first_valid_local_time() -> None:
    # 2026-03-29: Berlin's clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC); 02:30 never is.
    at = next_report_time("daily", "02:30", BERLIN, berlin(2026, 3, 28, 12, 0))
    assert at is not None
    assert at.astimezone(UTC) == utc(2026, 3, 29, 1, 0)
    assert (at.hour, at.minute) == (3, 0)
    following = next_report_time("daily", "02:30", BERLIN, at)
    assert following is not None and following.astimezone(UTC) == utc(2026, 3, 30, 0, 30)


def test_fall_back_goes_out_once_at_the_first_of_the_two() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
    first = next_report_time("daily", "02:30", BERLIN, berlin(2026, 10, 24, 12, 0))
    assert first is not None and first.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    again = next_report_time("daily", "02:30", BERLIN, first)
    assert again is not None and again.astimezone(UTC) == utc(2026, 10, 26, 1, 30)


def test_report_window() -> None:
    assert [report_window(s) for s in ("hourly", "daily", "weekly", "monthly")] == [
        "hour",
        "day",
        "week",
        "month",
    ]
    with pytest.raises(ValueError):
        report_window("none")


# --- the scheduler on a fake clock ------------------------------------------------------------


class FakeTime:
    """A wall clock that only moves when slept on (or jumped)."""

    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.001))
        await asyncio.sleep(0)


def scheduler(
    schedule: str, hhmm: str, clock: FakeTime, sent: list[tuple[datetime, str]]
) -> ReportScheduler:
    async def build(at: datetime, window: str) -> Notification:
        sent.append((at, window))
        return Notification(event=Event.SLA, time=at.timestamp(), report={"window": window})

    return ReportScheduler(
        schedule, hhmm, BERLIN, build, lambda n: None, clock=clock, sleep=clock.sleep
    )


async def run_until(s: ReportScheduler, clock: FakeTime, end: datetime) -> None:
    while clock() < end:
        await s.step()


async def test_daily_across_day_and_month_boundaries() -> None:
    clock = FakeTime(berlin(2026, 1, 30, 12, 0))
    sent: list[tuple[datetime, str]] = []
    s = scheduler("daily", "09:00", clock, sent)
    await run_until(s, clock, berlin(2026, 2, 2, 12, 0))
    assert [(at.astimezone(BERLIN), w) for at, w in sent] == [
        (berlin(2026, 1, 31, 9, 0), "day"),
        (berlin(2026, 2, 1, 9, 0), "day"),
        (berlin(2026, 2, 2, 9, 0), "day"),
    ]
    # The report at 2026-02-01 09:00 covers 2026-01-31, local midnight to midnight.
    assert window_bounds("day", sent[1][0], BERLIN) == (
        berlin(2026, 1, 31).timestamp(),
        berlin(2026, 2, 1).timestamp(),
    )


async def test_weekly_across_week_boundaries_and_dst() -> None:
    clock = FakeTime(berlin(2026, 3, 18, 12, 0))  # a Wednesday
    sent: list[tuple[datetime, str]] = []
    s = scheduler("weekly", "23:59:59", clock, sent)
    s.max_sleep = 3600.0
    await run_until(s, clock, berlin(2026, 4, 7))
    assert [at.astimezone(BERLIN) for at, _ in sent] == [
        berlin(2026, 3, 22, 23, 59, 59),
        berlin(2026, 3, 29, 23, 59, 59),  # the week clocks went forward: 167 hours
        berlin(2026, 4, 5, 23, 59, 59),
    ]
    assert {w for _, w in sent} == {"week"}
    # The week ending at the report time: Monday to Sunday, to the second.
    bounds = [report_bounds("week", at, BERLIN) for at, _ in sent]
    assert bounds[1] == (berlin(2026, 3, 22, 23, 59, 59).timestamp(), sent[1][0].timestamp())
    assert bounds[1][1] - bounds[1][0] == 7 * 86400 - 3600
    for (_, end), (start_next, _) in itertools.pairwise(bounds):
        assert end == start_next  # consecutive reports tile time


async def test_monthly_across_month_and_year_boundaries() -> None:
    clock = FakeTime(berlin(2026, 12, 15))
    sent: list[tuple[datetime, str]] = []
    s = scheduler("monthly", "00:00", clock, sent)
    s.max_sleep = 3600.0
    await run_until(s, clock, berlin(2027, 3, 15))
    assert [at.astimezone(BERLIN) for at, _ in sent] == [
        berlin(2026, 12, 31, 0, 0),
        berlin(2027, 1, 31, 0, 0),
        berlin(2027, 2, 28, 0, 0),
    ]
    # Each covers the time since the report before (the last day of the month before, at
    # the same time): nothing is counted twice or never, whatever the time of day.
    bounds = [report_bounds("month", at, BERLIN) for at, _ in sent]
    assert bounds[0] == (berlin(2026, 11, 30).timestamp(), berlin(2026, 12, 31).timestamp())
    for (_, end), (start_next, _) in itertools.pairwise(bounds):
        assert end == start_next


def test_month_at_23_59_59_is_the_calendar_month_to_the_second() -> None:
    start, end = report_bounds("month", berlin(2028, 2, 29, 23, 59, 59), BERLIN)
    assert (start, end) == (
        berlin(2028, 1, 31, 23, 59, 59).timestamp(),
        berlin(2028, 2, 29, 23, 59, 59).timestamp(),
    )
    # Day and hour windows are unchanged: the last complete calendar day / clock hour.
    at = berlin(2026, 3, 1, 9, 0)
    assert report_bounds("day", at, BERLIN) == window_bounds("day", at, BERLIN)


@pytest.mark.parametrize(
    ("start", "expected_utc"),
    [
        # Spring forward (2026-03-29): 02:30 does not exist, it goes out at 03:00 CEST.
        (
            berlin(2026, 3, 27, 12),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
        ),
        # Fall back (2026-10-25): 02:30 exists twice, it goes out once, at the first.
        (
            berlin(2026, 10, 23, 12),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
    ],
)
async def test_daily_across_dst_transitions(start: datetime, expected_utc: list[datetime]) -> None:
    clock = FakeTime(start)
    sent: list[tuple[datetime, str]] = []
    s = scheduler("daily", "02:30", clock, sent)
    await run_until(s, clock, start + timedelta(days=3))
    assert [at.astimezone(UTC) for at, _ in sent] == expected_utc
    # Each report covers the local day before it: 23, 24 or 25 hours long, never overlapping.
    bounds = [window_bounds("day", at, BERLIN) for at, _ in sent]
    for (_, end), (start_next, _) in itertools.pairwise(bounds):
        assert end == start_next


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3, 30)),  # spring forward at 01:00 UTC
        (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 3, 30)),  # fall back at 01:00 UTC
    ],
)
async def test_hourly_across_dst_every_real_hour_once(start: datetime, end: datetime) -> None:
    clock = FakeTime(start)
    sent: list[tuple[datetime, str]] = []
    s = scheduler("hourly", "00:05", clock, sent)
    await run_until(s, clock, end)
    assert [at.astimezone(UTC) for at, _ in sent] == [
        start.replace(minute=5) + timedelta(hours=h) for h in range(1, 5)
    ]
    # Each covers the clock hour before it: contiguous, one hour long, no hour twice.
    bounds = [window_bounds("hour", at, BERLIN) for at, _ in sent]
    assert all(hi - lo == 3600 for lo, hi in bounds)
    assert [lo for lo, _ in bounds[1:]] == [hi for _, hi in bounds[:-1]]


async def test_clock_jumps_never_send_a_report_time_twice() -> None:
    clock = FakeTime(berlin(2026, 5, 4, 8, 0))
    sent: list[tuple[datetime, str]] = []
    s = scheduler("daily", "09:00", clock, sent)
    await run_until(s, clock, berlin(2026, 5, 4, 9, 30))
    assert len(sent) == 1
    clock.now = berlin(2026, 5, 4, 8, 30).astimezone(UTC)  # back by an hour
    await run_until(s, clock, berlin(2026, 5, 4, 12, 0))
    assert len(sent) == 1
    clock.now = berlin(2026, 5, 8, 10, 0).astimezone(UTC)  # forward over three report times
    await s.step()
    await run_until(s, clock, berlin(2026, 5, 8, 20, 0))
    assert [at.astimezone(BERLIN) for at, _ in sent] == [
        berlin(2026, 5, 4, 9, 0),
        berlin(2026, 5, 8, 9, 0),
    ]


async def test_report_time_before_start_is_not_sent_and_none_sends_nothing() -> None:
    clock = FakeTime(berlin(2026, 5, 4, 9, 0, 30))
    sent: list[tuple[datetime, str]] = []
    s = scheduler("daily", "09:00", clock, sent)
    s.start()
    await asyncio.sleep(0.01)
    await s.stop()
    assert sent == [] and clock() < berlin(2026, 5, 5, 9, 0)
    idle = scheduler("none", "09:00", clock, sent)
    idle.start()
    assert await idle.step() is None
    await idle.stop()


async def test_a_failing_build_is_logged_and_the_next_report_still_goes_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeTime(berlin(2026, 5, 4, 8, 0))
    calls: list[datetime] = []

    async def build(at: datetime, window: str) -> Notification:
        calls.append(at)
        if len(calls) == 1:
            raise RuntimeError("store unusable")
        return Notification(event=Event.SLA, time=at.timestamp())

    delivered: list[Notification] = []
    s = ReportScheduler(
        "daily", "09:00", BERLIN, build, delivered.append, clock=clock, sleep=clock.sleep
    )
    await run_until(s, clock, berlin(2026, 5, 5, 10, 0))
    assert len(calls) == 2 and len(delivered) == 1
    assert "store unusable" in caplog.text


# --- report content from a store with known history -----------------------------------------

# History: every minute from 2026-02-27 22:00 to 2026-03-01 00:00 UTC. Berlin's 2026-02-28 is
# [2026-02-27 23:00, 2026-02-28 23:00) UTC; "api" is down 10:00-12:00 UTC that day.
HISTORY_START = utc(2026, 2, 27, 22).timestamp()
HISTORY_END = utc(2026, 3, 1).timestamp()
OUTAGE = (utc(2026, 2, 28, 10).timestamp(), utc(2026, 2, 28, 12).timestamp())


def write_config(tmp_path: Path, log_file: Path) -> Config:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"""
http:
  - name: api
    url: http://127.0.0.1:1/health
  - name: db
    url: http://127.0.0.1:2/health
  - name: new
    url: http://127.0.0.1:3/health
notify:
  log:
    - name: reports
      file: {log_file}
      channels: [sla]
settings:
  timezone: Europe/Berlin
  sla:
    schedule: daily
    time: "09:00"
    channels: [sla]
  store:
    path: {tmp_path / "probe.db"}
"""
    )
    return load_config(path)


async def filled_store(path: Path) -> Store:
    store = Store.open(path, clock=Clock())
    await store.start()
    feeder = Feeder()
    times = every(HISTORY_START, HISTORY_END, 60)

    def api_status(t: float) -> Status:
        return Status.DOWN if OUTAGE[0] <= t < OUTAGE[1] else Status.UP

    for obs in feeder.series("api", times, api_status):
        store.submit(obs)
    for obs in feeder.series("db", times, latency=0.2):
        store.submit(obs)
    await store.flush()
    return store


async def test_build_report_rows_from_known_history(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "sla.log")
    store = await filled_store(tmp_path / "probe.db")
    try:
        report = build_report(store, config.probes, "day", berlin(2026, 3, 1, 9, 0), BERLIN)
    finally:
        await store.close()
    assert report.event is Event.SLA and report.probe is None
    assert report.report["window"] == "day" and report.report["label"] == "2026-02-28"
    rows = {row["name"]: row for row in report.report["rows"]}
    assert list(rows) == ["api", "db", "new"]
    api, db, new = rows["api"], rows["db"], rows["new"]
    assert api["sla"] == pytest.approx(100 * (86400 - 7200) / 86400, abs=1e-3)
    assert api["down_s"] == pytest.approx(7200, abs=1)
    assert (api["incidents"], api["checks"]) == (1, 24 * 60)
    assert api["p95_ms"] == pytest.approx(50, abs=1)
    assert (db["sla"], db["down_s"], db["incidents"]) == (100.0, 0.0, 0)
    assert db["p95_ms"] == pytest.approx(200, abs=1)
    assert (new["sla"], new["checks"], new["p95_ms"]) == (None, 0, None)
    assert api["kind"] == "http" and api["endpoint"].startswith("http://127.0.0.1:1")
    # Every template the notifiers use renders it.
    templates = Templates("Europe/Berlin", name="probe")
    text = templates.render("text", Event.SLA, report)
    assert "SLA report: 2026-02-28" in text and "91.667%" in text
    for fmt in ("slack", "discord", "teams", "webhook"):
        templates.render_json(fmt, Event.SLA, report)
    for fmt in ("telegram", "email", "markdown"):
        assert "api" in templates.render(fmt, Event.SLA, report)


async def test_weekly_and_monthly_reports_cover_the_period_ending_at_the_report_time(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, tmp_path / "sla.log")
    store = await filled_store(tmp_path / "probe.db")
    try:
        # Sunday 2026-03-01 00:00 (EaseProbe's default time): the seven days before it.
        week = build_report(store, config.probes, "week", berlin(2026, 3, 1), BERLIN)
        # Saturday 2026-02-28 23:59:59, the last day of February: the month, to the second.
        month = build_report(store, config.probes, "month", berlin(2026, 2, 28, 23, 59, 59), BERLIN)
    finally:
        await store.close()
    assert week.report["window"] == "week"
    assert week.report["label"] == "2026-02-22 00:00 to 2026-03-01 00:00"
    assert (week.report["start"], week.report["end"]) == (
        berlin(2026, 2, 22).timestamp(),
        berlin(2026, 3, 1).timestamp(),
    )
    api = {row["name"]: row for row in week.report["rows"]}["api"]
    assert (api["incidents"], api["down_s"]) == (1, pytest.approx(7200, abs=1))
    assert month.report["label"] == ("February 2026 (2026-01-31 23:59:59 to 2026-02-28 23:59:59)")
    api = {row["name"]: row for row in month.report["rows"]}["api"]
    assert (api["incidents"], api["down_s"]) == (1, pytest.approx(7200, abs=1))
    assert Templates("Europe/Berlin").render("text", Event.SLA, month)


# --- end to end: scheduler -> real Dispatcher -> log notifier -------------------------------


async def test_scheduler_delivers_through_a_dispatcher_to_the_log_notifier(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "sla.log"
    config = write_config(tmp_path, log_file)
    settings = config.settings
    store = await filled_store(settings.store.path)
    context = NotifyContext(
        http=None, templates=Templates(settings.timezone), timeout=5.0, dry=False
    )
    notifiers = build_notifiers(config.notifiers, context)
    dispatcher = Dispatcher(notifiers, store, sla_channels=settings.sla.channels)
    await dispatcher.start()

    clock = FakeTime(berlin(2026, 3, 1, 8, 0))
    stop_at = berlin(2026, 3, 1, 12, 0)

    async def sleep(seconds: float) -> None:
        if clock() >= stop_at:  # the test is over: the next report is a day away
            await asyncio.Event().wait()
        await clock.sleep(seconds)

    tz = ZoneInfo(settings.timezone)
    reports = ReportScheduler(
        settings.sla.schedule,
        settings.sla.time,
        tz,
        store_report_builder(store, config.probes, tz),
        dispatcher.notify_sla,
        clock=clock,
        sleep=sleep,
    )
    try:
        reports.start()
        for _ in range(500):
            if log_file.exists() and log_file.read_text().strip():
                break
            await asyncio.sleep(0.02)
        await dispatcher.drain()
    finally:
        await reports.stop()
        await dispatcher.stop()
        await store.close()
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and reports.sent == 1
    doc = json.loads(lines[0])
    assert doc["event"] == "sla" and doc["probe"] is None
    assert doc["title"] == "SLA report: 2026-02-28"
    assert doc["time"] == "2026-03-01T08:00:00Z"  # 09:00 in Berlin
    assert doc["report"]["window"] == "day"
    rows = {row["name"]: row for row in doc["report"]["rows"]}
    assert rows["api"]["incidents"] == 1 and rows["api"]["down_s"] == pytest.approx(7200, abs=1)
    assert rows["db"]["sla"] == 100.0 and rows["new"]["sla"] is None
