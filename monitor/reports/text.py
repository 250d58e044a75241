"""The renderers' own words (zh/en) and the way values are written for people, shared by the PDF,
the XLSX cover and the WeCom/e-mail summaries so that a figure reads the same everywhere.

Values (see document.py for the units): pct 0.95123 → "95.12%"; int 1850 → "1,850";
ms 123.45 → "123.5"; number 250000 with 2 decimals → "250,000.00"; duration 3725 s → "1:02" in tables (hours:minutes, as Excel's [h]:mm) and
"1小时2分" / "1 h 2 min" as a headline; datetime → "2026-12-03 08:15" in the report's zone;
None → "—".
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.reports.document import ColumnType, Kpi, Language, Part, Report

NS = 1_000_000_000
MISSING = "—"

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "period": "统计周期",
        "scope": "范围",
        "timezone": "时区",
        "generated": "生成时间",
        "to": " 至 ",
        "kpis": "主要指标",
        "kpi": "指标",
        "value": "数值",
        "target": "目标",
        "verdict": "结论",
        "ok": "达标",
        "bad": "未达标",
        "note": "说明",
        "empty": "本期无记录。",
        "rows": "共 {n:,} 行",
        "truncated": "PDF 仅列出前 {shown:,} 行（共 {total:,} 行），完整清单见同期 XLSX 文件。",
        "page": "第 {page} 页，共 {pages} 页",
        "summary_sheet": "概览",
        "contents": "目录",
        "item": "项目",
        "d": "{n}天",
        "h": "{n}小时",
        "m": "{n}分",
        "unit_sep": "",
        "target_line": "目标 {v}",
        "file": "报表文件",
    },
    "en": {
        "period": "Period",
        "scope": "Scope",
        "timezone": "Time zone",
        "generated": "Generated",
        "to": " to ",
        "kpis": "Headline figures",
        "kpi": "Figure",
        "value": "Value",
        "target": "Target",
        "verdict": "Verdict",
        "ok": "met",
        "bad": "missed",
        "note": "Note",
        "empty": "No records in this period.",
        "rows": "{n:,} rows",
        "truncated": "The PDF lists the first {shown:,} of {total:,} rows; the XLSX of the same period has them all.",
        "page": "Page {page} of {pages}",
        "summary_sheet": "Summary",
        "contents": "Contents",
        "item": "Item",
        "d": "{n} d",
        "h": "{n} h",
        "m": "{n} min",
        "unit_sep": " ",
        "target_line": "target {v}",
        "file": "Report file",
    },
}


def words(language: Language) -> dict[str, str]:
    return WORDS[language]


def local_time(ts_ns: int, timezone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """UTC ns → local time text in `timezone`."""
    return datetime.fromtimestamp(ts_ns / NS, ZoneInfo(timezone)).strftime(fmt)


def clock_duration(seconds: float) -> str:
    """3725 → "1:02" (hours:minutes, rounded to the minute; hours may exceed 24, as [h]:mm)."""
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def word_duration(seconds: float, language: Language) -> str:
    """3725 → "1小时2分" / "1 h 2 min": the two largest non-zero units, to the minute."""
    w = WORDS[language]
    minutes = round(seconds / 60)
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        n, minutes = divmod(minutes, size)
        if n:
            parts.append(w[unit].format(n=n))
    return w["unit_sep"].join(parts[:2]) or w["m"].format(n=0)


def cell_text(kind: ColumnType, value: object, places: int, timezone: str) -> str:
    """A table cell as the PDF shows it."""
    if value is None:
        return MISSING
    if kind is ColumnType.PCT:
        return f"{value * 100:.{places}f}%"  # type: ignore[operator]
    if kind is ColumnType.INT:
        return f"{value:,}"
    if kind in (ColumnType.MS, ColumnType.NUMBER):
        return f"{value:,.{places}f}"
    if kind is ColumnType.DURATION:
        return clock_duration(value)  # type: ignore[arg-type]
    if kind is ColumnType.DATETIME:
        return local_time(value, timezone)  # type: ignore[arg-type]
    return str(value)


def kpi_text(kpi: Kpi, value: float | int | None, language: Language) -> str:
    """A headline value (or target) with its unit: "95.12%", "1,850个", "5小时20分", "123.4 ms"."""
    if value is None:
        return MISSING
    if kpi.type is ColumnType.PCT:
        return f"{value * 100:.{kpi.places}f}%"
    if kpi.type is ColumnType.DURATION:
        return word_duration(value, language)
    if kpi.type is ColumnType.MS:
        return f"{value:,.{kpi.places}f} ms"
    text = f"{value:,.{kpi.places}f}" if isinstance(value, float) or kpi.type is ColumnType.NUMBER else f"{value:,}"
    return text + unit_suffix(kpi.unit)


def unit_suffix(unit: str) -> str:
    """A unit as written after a number: "个" right after it, "points" after a space."""
    if not unit:
        return ""
    return unit if _cjk(unit) else f" {unit}"


def verdict(kpi: Kpi, language: Language) -> str:
    """"达标" / "未达标" / "" (no judgement)."""
    if kpi.ok is None:
        return ""
    return WORDS[language]["ok" if kpi.ok else "bad"]


def period_text(report: Report) -> str:
    """The period for people: whole local days as "2026-10-01 至 2026-12-31" (the last day
    inclusive), else start and end times."""
    p, tz = report.period, report.timezone
    start = datetime.fromtimestamp(p.start_ns / NS, ZoneInfo(tz))
    end = datetime.fromtimestamp(p.end_ns / NS, ZoneInfo(tz))
    to = WORDS[report.language]["to"]
    midnight = {(d.hour, d.minute, d.second) for d in (start, end)} == {(0, 0, 0)}
    if midnight:
        last = datetime.fromtimestamp((p.end_ns - NS) / NS, ZoneInfo(tz))
        if last.date() == start.date():
            return f"{start:%Y-%m-%d}"
        return f"{start:%Y-%m-%d}{to}{last:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}{to}{end:%Y-%m-%d %H:%M}"


def _cjk(text: str) -> bool:
    return any("\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" for ch in text)


_TYPE_WIDTH = {
    ColumnType.PCT: 7,  # 100.00%
    ColumnType.INT: 6,
    ColumnType.MS: 7,
    ColumnType.NUMBER: 10,  # 250,000.00
    ColumnType.DURATION: 6,  # 123:45
    ColumnType.DATETIME: 16,  # 2026-12-03 08:15
}
_WIDTH_SAMPLE = 200  # rows looked at to size a text column
_MAX_WIDTH = 44


def display_width(text: str, narrow: float = 1.0) -> float:
    """Width in character cells: CJK (wide and full-width) characters count double, the others
    `narrow` each (1 for Excel's widths; a proportional font's Latin letters and digits are
    wider than half a CJK character, see pdf.py)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else narrow for ch in text)


def column_width(part: Part, index: int, language: Language, narrow: float = 1.0) -> float:
    """Width of column `index`'s content in character cells (CJK double, others `narrow`),
    without padding: the column's hint, else the widest of its header and its values as shown
    (of its first rows; the type's widest value when it has none)."""
    column = part.columns[index]
    if column.width is not None:
        return column.width
    widest = display_width(column.header(language), narrow)
    values = [row[index] for row in part.rows[:_WIDTH_SAMPLE] if row[index] is not None]
    if column.type is ColumnType.TEXT:
        shown = [str(v) for v in values]
    elif values:
        shown = [cell_text(column.type, v, column.places, "UTC") for v in values]
    else:
        shown = ["0" * _TYPE_WIDTH[column.type]]
    widest = max([widest] + [display_width(v, narrow) for v in shown])
    return min(_MAX_WIDTH, widest)
