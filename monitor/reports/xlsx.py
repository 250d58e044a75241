"""A report as an XLSX workbook (openpyxl): a cover sheet with the headline figures and one sheet
per part.

Layout (fixed, so that people and tests find things in the same place):
- Cover (概览 / Summary): A1 the title; rows 2… period, scope, time zone, generated at; then the
  headline figures as a table (指标 | 数值 | 目标 | 结论) and a contents list linking to each sheet.
- Part sheets, named after the part (Excel's limits: at most 31 characters, none of []:*?/\\,
  unique): A1 the part's title, A2 its note ("data not seen: …") or nothing, row 3 the headers
  (the report's language), data from row 4. Rows 1–3 stay frozen; the header row has a filter.
- Numbers stay numbers, with formats per column type: pct as a fraction with 0.00% (the
  document's value itself), int #,##0, ms #,##0.0, number #,##0.00 (its decimals), duration as days (Excel's time unit:
  seconds / 86400) with [h]:mm, datetime as the local time of the report's zone (Excel has no
  zones; the cover names the zone) with yyyy-mm-dd hh:mm. Empty cells for None.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from monitor.reports.document import ColumnType, Kpi, Part, Report
from monitor.reports.text import (
    MISSING,
    column_width,
    display_width,
    local_time,
    period_text,
    unit_suffix,
    verdict,
    words,
)

HEADER_ROW = 3
"""Row of a part sheet's column headers; data starts on the next row."""

_NS = 1_000_000_000
_DAY_S = 86_400
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_SHEET_MAX = 31

_TITLE = Font(bold=True, size=14)
_BOLD = Font(bold=True)
_GREY = Font(color="666666")
_WARN = Font(color="9C5700")
_OK = Font(color="006100")
_BAD = Font(color="9C0006", bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="DDE4EE")
_HEAD_BORDER = Border(bottom=Side(style="thin", color="7F8FA6"))
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


def number_format(kind: ColumnType, places: int) -> str:
    """Excel number format of a column type with `places` decimals."""
    decimals = "." + "0" * places if places else ""
    if kind is ColumnType.PCT:
        return f"0{decimals}%"
    if kind in (ColumnType.INT, ColumnType.MS, ColumnType.NUMBER):
        return f"#,##0{decimals}"
    if kind is ColumnType.DURATION:
        return "[h]:mm"
    if kind is ColumnType.DATETIME:
        return "yyyy-mm-dd hh:mm"
    return "General"


def excel_value(kind: ColumnType, value: object, zone: ZoneInfo) -> object:
    """The value written to the cell for a document value (None stays None: an empty cell)."""
    if value is None:
        return None
    if kind is ColumnType.DURATION:
        return value / _DAY_S  # type: ignore[operator]
    if kind is ColumnType.DATETIME:
        return datetime.fromtimestamp(value / _NS, zone).replace(tzinfo=None)  # type: ignore[operator]
    return value


def sheet_names(report: Report) -> list[str]:
    """The sheet name of each part, in order: the title made legal for Excel and unique."""
    taken = {words(report.language)["summary_sheet"].lower()}
    names = []
    for part in report.parts:
        base = _SHEET_BAD.sub("_", part.title).strip("'") or "Sheet"
        name, n = base[:_SHEET_MAX], 2
        while name.lower() in taken:  # Excel compares sheet names case-insensitively
            suffix = f"({n})"
            name, n = base[: _SHEET_MAX - len(suffix)] + suffix, n + 1
        taken.add(name.lower())
        names.append(name)
    return names


def render_xlsx(report: Report) -> bytes:
    """The workbook as XLSX bytes (see the module docstring for the layout)."""
    wb = Workbook()
    cover = wb.active
    names = sheet_names(report)
    _cover(cover, report, names)
    zone = ZoneInfo(report.timezone)
    for part, name in zip(report.parts, names):
        _part_sheet(wb.create_sheet(name), part, report, zone)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cover(ws: Worksheet, report: Report, names: list[str]) -> None:
    w = words(report.language)
    ws.title = w["summary_sheet"]
    ws["A1"] = report.title
    ws["A1"].font = _TITLE
    facts = [(w["period"], period_text(report))]
    if report.scope:
        facts.append((w["scope"], report.scope))
    facts += [(w["timezone"], report.timezone), (w["generated"], local_time(report.generated_ns, report.timezone))]
    row = 2
    for label, value in facts:
        ws.cell(row, 1, label).font = _GREY
        ws.cell(row, 2, value)
        row += 1
    if report.kpis:
        row += 1
        ws.cell(row, 1, w["kpis"]).font = _BOLD
        row += 1
        for col, label in enumerate((w["kpi"], w["value"], w["target"], w["verdict"]), start=1):
            _header_cell(ws.cell(row, col, label))
        for kpi in report.kpis:
            row += 1
            _kpi_row(ws, row, kpi, report)
    if report.parts:
        row += 2
        ws.cell(row, 1, w["contents"]).font = _BOLD
        for part, name in zip(report.parts, names):
            row += 1
            link = ws.cell(row, 1, part.title)
            link.hyperlink = Hyperlink(ref=link.coordinate, location=f"'{name}'!A1")  # within the workbook
            link.font = Font(color="1F4E79", underline="single")
            ws.cell(row, 2, w["rows"].format(n=len(part.rows))).font = _GREY
            if part.note:
                ws.cell(row, 3, part.note).font = _WARN
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 34
    ws.column_dimensions["C"].width = 16
    ws.column_dimensions["D"].width = 10


def _kpi_row(ws: Worksheet, row: int, kpi: Kpi, report: Report) -> None:
    ws.cell(row, 1, kpi.label)
    fmt = number_format(kpi.type, kpi.places)
    zone = ZoneInfo(report.timezone)
    for col, value in ((2, kpi.value), (3, kpi.target)):
        cell = ws.cell(row, col, excel_value(kpi.type, value, zone))
        cell.number_format = fmt
        if value is None and col == 2:
            cell.value = MISSING
    if kpi.unit and kpi.type in (ColumnType.INT, ColumnType.NUMBER):
        ws.cell(row, 2).number_format = f'{fmt}"{unit_suffix(kpi.unit)}"'
    text = verdict(kpi, report.language)
    if text:
        ws.cell(row, 4, text).font = _OK if kpi.ok else _BAD


def _part_sheet(ws: Worksheet, part: Part, report: Report, zone: ZoneInfo) -> None:
    ws["A1"] = part.title
    ws["A1"].font = _TITLE
    last_col = get_column_letter(len(part.columns))
    # Room for the filter button and a margin.
    widths = [column_width(part, i, report.language) + 5 for i in range(len(part.columns))]
    for col, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    if part.note:
        ws["A2"] = part.note
        ws["A2"].font = _WARN
        ws["A2"].alignment = _WRAP
        if len(part.columns) > 1:
            ws.merge_cells(f"A2:{last_col}2")
        lines = -(-display_width(part.note) // max(1, int(sum(widths))))  # ceiling
        ws.row_dimensions[2].height = 15 * max(1, lines)
    for col, column in enumerate(part.columns, start=1):
        _header_cell(ws.cell(HEADER_ROW, col, column.header(report.language)))
    formats = [number_format(c.type, c.places) for c in part.columns]
    kinds = [c.type for c in part.columns]
    for r, row in enumerate(part.rows, start=HEADER_ROW + 1):
        for c, (value, kind, fmt) in enumerate(zip(row, kinds, formats), start=1):
            if value is None:
                continue
            cell = ws.cell(r, c, excel_value(kind, value, zone))
            if kind is not ColumnType.TEXT:
                cell.number_format = fmt
    ws.freeze_panes = f"A{HEADER_ROW + 1}"
    last_row = HEADER_ROW + max(1, len(part.rows))
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_col}{last_row}"
    if not part.rows:
        ws.cell(HEADER_ROW + 1, 1, words(report.language)["empty"]).font = _GREY


def _header_cell(cell) -> None:
    cell.font = _BOLD
    cell.fill = _HEAD_FILL
    cell.border = _HEAD_BORDER
    cell.alignment = _CENTER
