"""The XLSX rendering (monitor/reports/xlsx.py), read back with openpyxl: every number equal to the
document's, number formats per column type, times in the report's zone, Chinese (or English)
headers, frozen and filterable header rows, legal sheet names, the cover's headline figures."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from lab.reports import sample_report
from monitor.reports.document import Column, ColumnType, Part, Report
from monitor.reports.xlsx import HEADER_ROW, render_xlsx, sheet_names

T = ColumnType
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def report() -> Report:
    return sample_report(1850)


@pytest.fixture(scope="module")
def workbook(report):
    return load_workbook(io.BytesIO(render_xlsx(report)))


def expected(kind: ColumnType, value):
    """What the cell must hold for a document value."""
    if value is None:
        return None
    if kind is T.DURATION:  # openpyxl reads [h]:mm cells back as durations
        return timedelta(seconds=value)
    if kind is T.DATETIME:
        return datetime.fromtimestamp(value / 1e9, SH).replace(tzinfo=None)
    return value


def test_every_cell_of_every_part_equals_the_document(report, workbook):
    assert workbook.sheetnames == ["概览", "区域在线率", "点位可用性", "工单", "排除时段"]
    for part in report.parts:
        ws = workbook[part.title]
        assert [c.value for c in ws[HEADER_ROW]] == [c.zh for c in part.columns]
        cells = list(ws.iter_rows(min_row=HEADER_ROW + 1, max_col=len(part.columns), values_only=True))
        if not part.rows:
            assert cells == [("本期无记录。",) + (None,) * (len(part.columns) - 1)]
            continue
        assert len(cells) == len(part.rows)
        for r, (row, got) in enumerate(zip(part.rows, cells)):
            for col, value, cell in zip(part.columns, row, got):
                want = expected(col.type, value)
                if col.type in (T.DATETIME, T.DURATION) and want is not None:
                    # Excel keeps times as fractions of days, read back to the millisecond
                    assert abs(cell - want) < timedelta(milliseconds=1), (part.title, r, col.key)
                elif isinstance(want, float):
                    assert cell == pytest.approx(want, rel=1e-12), (part.title, r, col.key)
                else:
                    assert cell == want, (part.title, r, col.key)


def test_number_formats_follow_the_column_types(report, workbook):
    ws = workbook["点位可用性"]
    # the first row with every value (a None is an empty cell, without format)
    row = HEADER_ROW + 1 + next(i for i, r in enumerate(report.part("点位可用性").rows) if None not in r)
    formats = {ws.cell(HEADER_ROW, c).value: ws.cell(row, c).number_format for c in range(5, 10)}
    assert formats == {
        "在线率": "0.00%",
        "离线时长": "[h]:mm",
        "排除时长": "[h]:mm",
        "最近离线": "yyyy-mm-dd hh:mm",
        "平均时延(ms)": "#,##0.0",
    }
    assert workbook["区域在线率"].cell(HEADER_ROW + 1, 2).number_format == "#,##0"
    assert workbook["区域在线率"].cell(HEADER_ROW + 1, 4).number_format == "0%"  # decimals=0 on that column


def test_header_rows_are_frozen_and_filterable_and_columns_sized(report, workbook):
    for part in report.parts:
        ws = workbook[part.title]
        assert ws.freeze_panes == f"A{HEADER_ROW + 1}"
        last = chr(ord("A") + len(part.columns) - 1)
        assert ws.auto_filter.ref == f"A{HEADER_ROW}:{last}{HEADER_ROW + max(1, len(part.rows))}"
    ws = workbook["点位可用性"]
    assert ws.column_dimensions["B"].width > ws.column_dimensions["A"].width  # Chinese names are wider
    assert ws.column_dimensions["H"].width >= 16  # a whole "2026-12-31 23:59"


def test_a_part_says_what_data_it_could_not_see(report, workbook):
    ws = workbook["点位可用性"]
    assert ws["A1"].value == "点位可用性"
    assert ws["A2"].value == report.part("点位可用性").note
    assert "CAM-00006" in ws["A2"].value
    assert "A2:I2" in {str(r) for r in ws.merged_cells.ranges}
    assert workbook["工单"]["A2"].value is None  # no note, nothing said


def test_the_cover_has_the_facts_the_headline_figures_and_links(report, workbook):
    ws = workbook["概览"]
    assert ws["A1"].value == "邛崃雪亮工程 季度考核报告（示例数据）"
    facts = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, 6)}
    assert facts == {
        "统计周期": "2026-10-01 至 2026-12-31",
        "范围": "全部区域",
        "时区": "Asia/Shanghai",
        "生成时间": "2027-01-01 08:00",
    }
    rows = {row[0]: row[1:4] for row in ws.iter_rows(min_row=7, max_col=4, values_only=True) if row[0]}
    online = report.kpis[0]
    assert rows["前端摄像机在线率"] == (online.value, 0.95, "达标")
    assert rows["故障及时更换率"][2] == "未达标"
    assert rows["考核点位"][0] == report.kpis[2].value
    assert abs(rows["平均修复时长"][0] - timedelta(seconds=report.kpis[3].value)) < timedelta(milliseconds=1)
    links = {c.value: c.hyperlink.location for c in ws["A"] if c.hyperlink is not None}
    assert links == {p.title: f"'{p.title}'!A1" for p in report.parts}


def test_english_headers_and_words_when_the_report_is_in_english():
    wb = load_workbook(io.BytesIO(render_xlsx(sample_report(40, language="en"))))
    assert wb.sheetnames[0] == "Summary"
    ws = wb["Availability per point"]
    assert [c.value for c in ws[HEADER_ROW]][:5] == ["Point", "Name", "Region", "Kind", "Online rate"]
    assert wb["Summary"]["A2"].value == "Period" and wb["Summary"]["B2"].value == "2026-10-01 to 2026-12-31"


def test_sheet_names_are_legal_and_unique_whatever_the_titles():
    columns = (Column("n", "数量", "Count", T.INT),)
    titles = ["概览", "a/b:c?*[d]", "很长的标题" * 8, "很长的标题" * 8 + "二", "Sheet", "SHEET"]
    report = sample_report(10)
    parts = tuple(Part(t, columns, ((1,),)) for t in titles)
    report = dataclasses.replace(report, parts=parts)
    names = sheet_names(report)
    assert names[1] == "a_b_c___d_"
    assert all(len(n) <= 31 for n in names)
    lowered = [n.lower() for n in names]  # Excel compares sheet names case-insensitively
    assert len(set(lowered)) == len(names) and "概览" not in lowered
    assert names[0] == "概览(2)" and names[3] == ("很长的标题" * 8)[:28] + "(2)"
    wb = load_workbook(io.BytesIO(render_xlsx(report)))
    assert wb.sheetnames == ["概览"] + names
