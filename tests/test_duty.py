"""Duty roster: who is on duty at a given instant (local time, shifts over midnight)."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from rules.alerting.duty import DutyRoster, DutyShift

SH = ZoneInfo("Asia/Shanghai")


def ns(y, mo, d, h, mi=0):
    return int(datetime(y, mo, d, h, mi, tzinfo=SH).timestamp() * 1e9)


ROSTER = DutyRoster(
    [
        DutyShift(name="张工", mobile="13800000001", weekdays=[1, 2, 3, 4, 5], start=time(8), end=time(20)),
        DutyShift(name="李工", mobile="13800000002", weekdays=[5], start=time(20), end=time(8)),
        DutyShift(name="王工", mobile="13800000003", weekdays=[6, 7]),
    ]
)


def names(ts):
    return [s.name for s in ROSTER.on_duty(ts)]


def test_day_shift_night_shift_over_midnight_and_whole_days():
    # 2026-11-20 is a Friday.
    assert names(ns(2026, 11, 20, 9)) == ["张工"]
    assert names(ns(2026, 11, 20, 20)) == ["李工"]  # end is exclusive, start inclusive
    assert names(ns(2026, 11, 21, 7, 59)) == ["李工", "王工"]  # Friday's night shift runs into Saturday
    assert names(ns(2026, 11, 21, 8)) == ["王工"]
    assert names(ns(2026, 11, 19, 23)) == []  # Thursday night: nobody rostered


def test_bad_mobile_and_weekday_are_config_errors():
    with pytest.raises(ValidationError):
        DutyShift(name="x", mobile="call me")
    with pytest.raises(ValidationError):
        DutyShift(name="x", mobile="13800000000", weekdays=[8])
