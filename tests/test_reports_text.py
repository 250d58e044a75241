"""How values are written for people (monitor/reports/text.py), the same in the PDF, the XLSX cover
and the WeCom and e-mail summaries."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lab.reports import sample_report
from monitor.reports.document import ColumnType, Kpi, Period
from monitor.reports.text import cell_text, clock_duration, kpi_text, period_text, word_duration

T = ColumnType
NS = 1_000_000_000


def at(*args: int) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()) * NS


@pytest.mark.parametrize(
    "kind, value, places, text",
    [
        (T.PCT, 0.951234, 2, "95.12%"),
        (T.PCT, 1.0, 0, "100%"),
        (T.INT, 10000, 0, "10,000"),
        (T.MS, 1234.56, 1, "1,234.6"),
        (T.DURATION, 3725, 0, "1:02"),
        (T.DURATION, 90_000, 0, "25:00"),  # hours go past 24, as Excel's [h]:mm
        (T.DURATION, 29, 0, "0:00"),
        (T.DATETIME, at(2026, 12, 3, 8, 15), 0, "2026-12-03 08:15"),  # in the report's zone, not UTC
        (T.TEXT, "城东区", 0, "城东区"),
        (T.PCT, None, 2, "—"),
    ],
)
def test_cells(kind, value, places, text):
    assert cell_text(kind, value, places, "Asia/Shanghai") == text


def test_durations_and_headline_figures():
    assert clock_duration(59 * 60 + 31) == "1:00"
    assert word_duration(3725, "zh") == "1小时2分" and word_duration(3725, "en") == "1 h 2 min"
    assert word_duration(2 * 86400 + 13 * 3600 + 59, "zh") == "2天13小时"
    assert word_duration(20, "zh") == "0分"
    assert kpi_text(Kpi("点位", 1850, T.INT, unit="个"), 1850, "zh") == "1,850个"
    assert kpi_text(Kpi("Points", 1850, T.INT, unit="points"), 1850, "en") == "1,850 points"
    assert kpi_text(Kpi("RTT", 92.46, T.MS), 92.46, "zh") == "92.5 ms"
    assert kpi_text(Kpi("在线率", None), None, "zh") == "—"


def test_periods_of_whole_days_show_the_last_day_inclusive():
    report = sample_report(5)
    assert period_text(report) == "2026-10-01 至 2026-12-31"
    day = dataclasses.replace(report, period=Period("2026-12-03", at(2026, 12, 3), at(2026, 12, 4)))
    assert period_text(day) == "2026-12-03"
    shift = dataclasses.replace(report, period=Period("custom", at(2026, 12, 3, 8), at(2026, 12, 4, 8)), language="en")
    assert period_text(shift) == "2026-12-03 08:00 to 2026-12-04 08:00"
