"""The report document model (monitor/reports/document.py): every cell checked against its column
at construction, errors that name the part, row and column, and a JSON round trip that gives
back the same document."""

from __future__ import annotations

import json

import pytest

from lab.reports import sample_report
from monitor.reports.document import (
    BarChart,
    Column,
    ColumnType,
    Kpi,
    LineChart,
    Part,
    Period,
    Report,
    ReportError,
    Series,
)

T = ColumnType
NS = 1_000_000_000
DAY = Period("2026-12-03", 1_764_691_200 * NS, 1_764_777_600 * NS)


def part(rows, columns=None, **kw) -> Part:
    columns = columns or (Column("id", "点位", "Point"), Column("rate", "在线率", "Online rate", T.PCT))
    return Part("点位", columns, rows, **kw)


def test_the_sample_report_round_trips_through_json_unchanged():
    report = sample_report(120)
    text = report.to_json()
    json.loads(text)  # plain JSON, nothing Python-specific
    again = Report.from_json(text)
    assert again == report
    assert again.part("点位可用性").column("online") == report.part("点位可用性").column("online")
    assert isinstance(again.parts[0].charts[0], BarChart) and isinstance(again.parts[0].charts[1], LineChart)


@pytest.mark.parametrize(
    "rows, message",
    [
        ((("CAM-1", 0.95, 3),), "part '点位', row 1: 3 values for 2 columns"),
        ((("CAM-1", 0.95), ("CAM-2", "95%")), "part '点位', row 2, column 'rate': expected a finite number (pct), got '95%'"),
        ((("CAM-1", float("nan")),), "row 1, column 'rate': expected a finite number (pct), got nan"),
        ((("CAM-1", True),), "row 1, column 'rate': expected a finite number (pct), got True"),
        (((7, 0.9),), "row 1, column 'id': expected text, got 7"),
    ],
)
def test_a_bad_cell_is_refused_with_its_part_row_and_column(rows, message):
    with pytest.raises(ReportError) as info:
        part(rows)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kind, good, bad, why",
    [
        (T.INT, 1850, 18.5, "expected an integer"),
        (T.DATETIME, 1_764_691_200 * NS, 1.5e18, "expected an integer (UTC ns)"),
        (T.DURATION, 3600, -1, "a duration cannot be negative"),
        (T.MS, 12.5, "12 ms", "expected a finite number (ms)"),
        (T.TEXT, "城东区", 3, "expected text"),
    ],
)
def test_each_column_type_takes_its_unit_and_nothing_else(kind, good, bad, why):
    columns = (Column("v", "值", "Value", kind),)
    assert part(((good,), (None,)), columns).column("v") == (good, None)
    with pytest.raises(ReportError) as info:
        part(((bad,),), columns)
    assert why in str(info.value)


def test_columns_charts_and_kpis_are_checked_too():
    with pytest.raises(ReportError, match="column keys used twice: id"):
        part((), (Column("id", "点位", "Point"), Column("id", "名称", "Name")))
    with pytest.raises(ReportError, match="decimals must be 0 … 6"):
        Column("x", "值", "Value", T.PCT, decimals=9)
    with pytest.raises(ReportError, match="2 categories but 1 values"):
        BarChart("各区域在线率", ("城东区", "城西区"), (0.9,))
    with pytest.raises(ReportError, match="series '全部' has 2 values for 3 x labels"):
        LineChart("每日在线率", ("12-01", "12-02", "12-03"), (Series("全部", (0.9, 0.95)),))
    with pytest.raises(ReportError, match="a headline figure is a number, not text"):
        Kpi("在线率", None, T.TEXT)
    with pytest.raises(ReportError, match="KPI '点位数': value: expected an integer"):
        Kpi("点位数", 12.5, T.INT)


def test_a_report_needs_a_known_kind_zone_and_unique_part_titles():
    base = dict(title="巡检日报", period=DAY, generated_ns=DAY.end_ns)
    with pytest.raises(ReportError, match="report kind 'hourly' is not one of daily, weekly"):
        Report(kind="hourly", **base)
    with pytest.raises(ReportError, match="unknown time zone 'Asia/Beijing'"):
        Report(kind="daily", timezone="Asia/Beijing", **base)
    with pytest.raises(ReportError, match="part titles used twice: 点位"):
        Report(kind="daily", parts=(part(()), part(())), **base)
    with pytest.raises(ReportError, match="the end is not after the start"):
        Period("2026-12-03", DAY.end_ns, DAY.start_ns)


def test_lookups_name_what_is_missing():
    report = sample_report(20)
    with pytest.raises(KeyError, match="no part titled '工单统计'"):
        report.part("工单统计")
    with pytest.raises(KeyError, match="has no column 'uptime'"):
        report.part("点位可用性").column("uptime")
