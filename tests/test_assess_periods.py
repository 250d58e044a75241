"""Assessment periods: boundaries at local midnights of the configured zone, clear errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.assess.periods import NS, PeriodError, check_instants, parse_instant, parse_period

ZONE = "Asia/Shanghai"
NOW = int(datetime(2026, 12, 5, 1, 2, 3, tzinfo=ZoneInfo(ZONE)).timestamp()) * NS


def local(*parts: int, zone: str = ZONE) -> int:
    return int(datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()) * NS


@pytest.mark.parametrize("text, label, kind, start, end", [
    ("2026-12-01", "2026-12-01", "day", (2026, 12, 1), (2026, 12, 2)),
    ("2026-W01", "2026-W01", "week", (2025, 12, 29), (2026, 1, 5)),   # ISO: the week with the 1st Thursday
    ("2026w40", "2026-W40", "week", (2026, 9, 28), (2026, 10, 5)),
    ("2026-02", "2026-02", "month", (2026, 2, 1), (2026, 3, 1)),
    ("2026Q3", "2026Q3", "quarter", (2026, 7, 1), (2026, 10, 1)),
    ("2026-q1", "2026Q1", "quarter", (2026, 1, 1), (2026, 4, 1)),
    ("2026H1", "2026H1", "half", (2026, 1, 1), (2026, 7, 1)),
    ("2025", "2025", "year", (2025, 1, 1), (2026, 1, 1)),
    ("2026-10-01..2026-10-31", "2026-10-01..2026-10-31", "custom", (2026, 10, 1), (2026, 11, 1)),
    ("2026-10-01 08:00..2026-10-01 18:30", "2026-10-01 08:00..2026-10-01 18:30", "custom",
     (2026, 10, 1, 8), (2026, 10, 1, 18, 30)),
])
def test_periods_start_and_end_at_local_midnight(text, label, kind, start, end):
    period = parse_period(text, ZONE, NOW)
    assert (period.label, period.kind) == (label, kind)
    assert (period.start_ns, period.end_ns) == (local(*start), local(*end))
    assert not period.clipped and period.note is None


def test_the_zone_moves_the_boundaries():
    shanghai, utc = parse_period("2026Q3", ZONE, NOW), parse_period("2026Q3", "UTC", NOW)
    assert utc.start_ns - shanghai.start_ns == 8 * 3600 * NS
    assert shanghai.start_ns == local(2026, 7, 1)


def test_a_period_not_over_yet_ends_now_and_says_so():
    period = parse_period("2026Q4", ZONE, NOW)
    assert period.start_ns == local(2026, 10, 1) and period.end_ns == NOW and period.clipped
    assert period.note == "2026Q4 has not ended yet: counted up to now (2026-12-05 01:02:03)"
    assert parse_period("2026-12-05", ZONE, NOW).end_ns == NOW


@pytest.mark.parametrize("text, message", [
    ("2026Q5", "period '2026Q5': a quarter is Q1 … Q4"),
    ("2026H3", "period '2026H3': a half-year is H1 or H2"),
    ("2026-13", "period '2026-13': month must be in 1..12"),
    ("2026-02-30", "period '2026-02-30': day is out of range for month"),
    ("2026-W54", "period '2026-W54': "),
    ("last quarter", "period 'last quarter': not one of: 2026-12-01, 2026-W49"),
    ("", "period '': not one of"),
    ("2026-12-05..2026-12-01", "period '2026-12-05..2026-12-01': the end is not after the start"),
    ("2026-10-01..tomorrow", "period '2026-10-01..tomorrow': 'tomorrow' is neither a date"),
    ("2027", "period '2027' starts in the future (2027-01-01 00:00:00)"),
    ("2026-12-06", "period '2026-12-06' starts in the future"),
])
def test_bad_periods_are_clear_errors(text, message):
    with pytest.raises(PeriodError) as err:
        parse_period(text, ZONE, NOW)
    assert str(err.value).startswith(message)


def test_instants_for_people():
    assert parse_instant("2026-12-01 10:00", ZONE) == local(2026, 12, 1, 10)
    assert parse_instant("2026-12-01T10:00:30", ZONE) == local(2026, 12, 1, 10, 0, 30)
    assert parse_instant("2026-12-01T02:00Z", ZONE) == local(2026, 12, 1, 10)
    assert parse_instant("2026-12-01 10:00+09:00", ZONE) == local(2026, 12, 1, 9)
    for bad in ("2026-12-01", "yesterday 10:00", "2026-12-32 10:00", "2026-12-01 25:00"):
        with pytest.raises(PeriodError, match="time '"):
            parse_instant(bad, ZONE)


def test_daily_check_instants_fall_inside_the_period():
    q3 = parse_period("2026Q3", ZONE, NOW)
    instants = check_instants(q3, (9 * 60, 15 * 60))
    assert len(instants) == 92 * 2
    assert instants[0] == local(2026, 7, 1, 9) and instants[-1] == local(2026, 9, 30, 15)
    today = parse_period("2026-12-05", ZONE, NOW)  # now is 01:02: no check yet
    assert check_instants(today, (9 * 60, 15 * 60)) == ()
