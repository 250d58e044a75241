"""When scheduled reports are due (monitor/reports/schedule.py): the period each firing makes,
catch-up after a stop (once, and at most `catch_up` per type), nothing twice, the next firing,
local times of the configured zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.reports.config import ScheduleEntry
from monitor.reports.schedule import due, last_period, next_firing, period_start

SH = "Asia/Shanghai"
NS = 1_000_000_000


def at(*args, zone: str = SH) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()) * NS


def local(ns: int, zone: str = SH) -> str:
    return datetime.fromtimestamp(ns / NS, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def labels(items) -> list[tuple[str, str]]:
    return [(d.report, d.label) for d in items]


DAILY = ScheduleEntry(report="daily", at="08:00")
WEEKLY = ScheduleEntry(report="weekly", at="08:30", weekday=1)
MONTHLY = ScheduleEntry(report="monthly", at="09:00")
QUARTERLY = ScheduleEntry(report="quarterly", at="09:00", day=5)
HALF = ScheduleEntry(report="half-year", at="09:00")
ANNUAL = ScheduleEntry(report="annual", at="10:00", day=15)
ALL = [DAILY, WEEKLY, MONTHLY, QUARTERLY, HALF, ANNUAL]


def test_the_daily_report_is_for_yesterday_and_due_from_eight_local_time():
    assert due(at(2026, 12, 4, 7, 59), {"daily": "2026-12-02"}, [DAILY], SH) == []
    [item] = due(at(2026, 12, 4, 8, 0), {"daily": "2026-12-02"}, [DAILY], SH)
    assert (item.report, item.label) == ("daily", "2026-12-03")
    assert (local(item.start_ns), local(item.end_ns), local(item.fired_ns)) == (
        "2026-12-03 00:00",
        "2026-12-04 00:00",
        "2026-12-04 08:00",
    )
    # made: not due again, however often the scheduler asks
    assert due(at(2026, 12, 4, 23, 59), {"daily": "2026-12-03"}, [DAILY], SH) == []


def test_a_daemon_down_at_eight_makes_the_report_when_it_starts_once():
    runs = {"daily": "2026-12-02"}
    later = due(at(2026, 12, 4, 15, 27), runs, [DAILY], SH)
    assert labels(later) == [("daily", "2026-12-03")]
    runs["daily"] = later[0].label
    assert due(at(2026, 12, 4, 15, 28), runs, [DAILY], SH) == []


def test_after_a_long_stop_at_most_catch_up_periods_per_type_oldest_first():
    runs = {"daily": "2026-11-01", "monthly": "2026-10"}
    items = due(at(2026, 12, 4, 9, 30), runs, [DAILY, MONTHLY], SH, catch_up=3)
    assert labels(items) == [
        ("monthly", "2026-11"),  # fired 2026-12-01 09:00
        ("daily", "2026-12-01"),
        ("daily", "2026-12-02"),
        ("daily", "2026-12-03"),
    ]
    assert [local(i.fired_ns) for i in items] == sorted(local(i.fired_ns) for i in items)


def test_a_type_never_made_gets_its_latest_period_only():
    items = due(at(2026, 12, 4, 9, 30), {}, ALL, SH)
    assert [(i.report, i.label, local(i.fired_ns)) for i in items] == [
        ("annual", "2025", "2026-01-15 10:00"),
        ("half-year", "2026H1", "2026-07-01 09:00"),
        ("quarterly", "2026Q3", "2026-10-05 09:00"),
        ("weekly", "2026-W48", "2026-11-30 08:30"),
        ("monthly", "2026-11", "2026-12-01 09:00"),
        ("daily", "2026-12-03", "2026-12-04 08:00"),
    ]


@pytest.mark.parametrize(
    "entry, now, expected, fired",
    [
        (WEEKLY, (2026, 12, 7, 8, 30), "2026-W49", "2026-12-07 08:30"),  # Monday: the week Nov 30 – Dec 6
        (WEEKLY, (2026, 12, 7, 8, 29), "2026-W48", "2026-11-30 08:30"),
        (ScheduleEntry(report="weekly", weekday=3), (2026, 12, 10, 9, 0), "2026-W49", "2026-12-09 08:00"),
        (MONTHLY, (2027, 1, 1, 9, 0), "2026-12", "2027-01-01 09:00"),
        (ScheduleEntry(report="monthly", day=28), (2027, 3, 1, 0, 0), "2027-01", "2027-02-28 08:00"),
        (QUARTERLY, (2027, 1, 5, 9, 0), "2026Q4", "2027-01-05 09:00"),  # the 5th: work orders had time to close
        (QUARTERLY, (2027, 1, 5, 8, 59), "2026Q3", "2026-10-05 09:00"),
        (HALF, (2027, 7, 1, 9, 0), "2027H1", "2027-07-01 09:00"),
        (ANNUAL, (2027, 1, 15, 10, 0), "2026", "2027-01-15 10:00"),
        (DAILY, (2027, 1, 1, 8, 0), "2026-12-31", "2027-01-01 08:00"),
        (WEEKLY, (2027, 1, 4, 8, 30), "2026-W53", "2027-01-04 08:30"),  # 2026 has 53 ISO weeks
    ],
)
def test_each_firing_makes_the_last_whole_period_before_it(entry, now, expected, fired):
    [item] = due(at(*now), {}, [entry], SH)
    assert item.label == expected
    assert local(item.fired_ns) == fired
    assert item.end_ns <= item.fired_ns


def test_the_next_firing_is_the_earliest_of_all_entries():
    assert local(next_firing(at(2026, 12, 4, 8, 0), ALL, SH)) == "2026-12-05 08:00"
    assert local(next_firing(at(2026, 12, 4, 7, 0), [QUARTERLY], SH)) == "2027-01-05 09:00"
    assert local(next_firing(at(2026, 12, 31, 23, 0), [MONTHLY, ANNUAL], SH)) == "2027-01-01 09:00"
    assert next_firing(at(2026, 12, 4), [], SH) is None


def test_times_are_local_to_the_configured_zone():
    # 08:00 in Berlin is 15:00 in Shanghai; across the change to summer time too
    [item] = due(at(2027, 3, 29, 8, 0, zone="Europe/Berlin"), {}, [DAILY], "Europe/Berlin")
    assert item.label == "2027-03-28"
    assert item.end_ns - item.start_ns == 23 * 3600 * NS  # the day the clocks went forward
    assert due(at(2027, 3, 29, 7, 59, zone="Europe/Berlin"), {"daily": "2027-03-27"}, [DAILY], "Europe/Berlin") == []


@pytest.mark.parametrize(
    "report, label",
    [("daily", "2026-13-01"), ("weekly", "2026-49"), ("quarterly", "2026Q5"), ("annual", "twenty"), ("monthly", "")],
)
def test_a_label_in_the_record_that_is_not_of_its_type_is_an_error(report, label):
    with pytest.raises(ValueError, match=f"{label!r} is not a {report} period label"):
        period_start(report, label)
    with pytest.raises(ValueError):
        due(at(2026, 12, 4, 9), {report: label}, [e for e in ALL if e.report == report], SH)


@pytest.mark.parametrize("report, label", [
    ("daily", "2027-01-03"), ("weekly", "2026-W53"), ("monthly", "2026-12"), ("quarterly", "2026Q4"),
    ("half-year", "2026H2"), ("annual", "2026"),
])
def test_the_last_whole_period_is_what_a_firing_today_makes(report, label):
    now = at(2027, 1, 4, 0, 30)  # 00:30 local, Monday 4 January 2027 (16:30 UTC the day before)
    assert last_period(report, now, SH) == label
    # In UTC it is still Sunday 3 January: the day before, and the week before that week (2026 has 53).
    assert last_period(report, now, "UTC") == {"daily": "2027-01-02", "weekly": "2026-W52"}.get(report, label)


def test_last_period_names_an_unknown_type():
    with pytest.raises(ValueError, match="unknown report type 'fortnightly'"):
        last_period("fortnightly", at(2027, 1, 4), SH)
