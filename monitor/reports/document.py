"""The report document: what a report says, before it is a file.

A `Report` is pure data, frozen and JSON-able (`to_json()` / `Report.from_json()`): the content
builders (daily … annual) make one from the assessment's figures, the renderers turn the same
document into XLSX and PDF, delivery reads its headline figures for the WeCom summary. So every
format shows the same numbers, by construction.

Shapes and units (the project's rules: UTC ns inside, the zone for people):
- `Report`: kind (report type, e.g. "daily", "quarterly"), title, `period` (label such as
  "2026Q4" and its [start_ns, end_ns) in UTC ns), `timezone` (IANA, for every time shown),
  `language` ("zh" | "en": the language of every text in the document and of the renderers'
  own words), `generated_ns`, optional `scope` ("全部区域", "城东区"…), headline `kpis`, and
  ordered `parts`.
- `Kpi`: a headline figure: label, value (in its `type`'s unit, see below), optional target,
  and `ok` (True met, False missed, None: no judgement).
- `Part`: a titled table — `columns` (each with a Chinese and an English header and a
  `ColumnType`), `rows` (tuples, one value per column, None = no value) — an optional `note`
  (for "data not seen: …": a report must say which data it could not see) and optional `charts`.
- Cell values by column type: text → str; int → int; pct → a fraction (0.9512 is 95.12 %);
  duration → seconds (int or float); datetime → UTC ns (int); ms → milliseconds (int or float);
  number → any finite number (points of a score, 元), shown with the column's decimals.
- Charts: `BarChart` (one bar per group against a target line, e.g. online rate per region
  against 95 %) and `LineChart` (a daily trend, one or more series, optional target line).

Construction checks every cell against its column, so a renderer never meets a value it cannot
show; a bad value raises `ReportError` naming the part, the row and the column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Union

from monitor.core.timecheck import check_zone

REPORT_TYPES = ("daily", "weekly", "monthly", "quarterly", "half-year", "annual")
"""The report types (`Report.kind`): 巡检日报, 统计分析周报, 月报, 季度考核, 半年报, 年报."""

Cell = Union[str, int, float, None]
"""One table cell: see the module docstring for the unit per column type."""

Language = Literal["zh", "en"]


class ReportError(ValueError):
    """A report document that cannot be built: the message names the part, row and column."""


class ColumnType(StrEnum):
    """What a column holds, which decides its unit and number format (XLSX and PDF)."""

    TEXT = "text"
    INT = "int"
    PCT = "pct"  # a fraction: 0.9512 shown as 95.12 %
    DURATION = "duration"  # seconds, shown as h:mm
    DATETIME = "datetime"  # UTC ns, shown in the report's zone
    MS = "ms"  # milliseconds (RTT, jitter)
    NUMBER = "number"  # a plain number with decimals: score points (89.5 分), money (元)


# Decimal places when a column or KPI does not say.
DEFAULT_DECIMALS = {ColumnType.PCT: 2, ColumnType.MS: 1, ColumnType.INT: 0, ColumnType.NUMBER: 2}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_value(kind: ColumnType, value: object) -> str | None:
    """None when `value` may stand in a `kind` column (None always may), else what is wrong."""
    if value is None:
        return None
    if kind is ColumnType.TEXT:
        return None if isinstance(value, str) else f"expected text, got {value!r}"
    if kind in (ColumnType.INT, ColumnType.DATETIME):
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return f"expected an integer{' (UTC ns)' if kind is ColumnType.DATETIME else ''}, got {value!r}"
    if not _is_number(value):
        return f"expected a finite number ({kind.value}), got {value!r}"
    if kind is ColumnType.DURATION and value < 0:
        return f"a duration cannot be negative: {value!r}"
    return None


@dataclass(frozen=True, slots=True)
class Column:
    """One table column.

    - key: a short identifier (stable across languages; tests and builders use it).
    - zh / en: the header in Chinese and in English; the report's language picks one.
    - type: `ColumnType`; decimals: places shown for pct/ms/int (None: the type's default).
    - width: relative width hint (characters, roughly) for XLSX and PDF; None: from the header.
    """

    key: str
    zh: str
    en: str
    type: ColumnType = ColumnType.TEXT
    decimals: int | None = None
    width: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", ColumnType(self.type))
        if not self.key or not self.zh or not self.en:
            raise ReportError(f"column {self.key!r}: key, zh and en must not be empty")
        if self.decimals is not None and not 0 <= self.decimals <= 6:
            raise ReportError(f"column {self.key!r}: decimals must be 0 … 6, not {self.decimals}")

    def header(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en

    @property
    def places(self) -> int:
        return self.decimals if self.decimals is not None else DEFAULT_DECIMALS.get(self.type, 0)


@dataclass(frozen=True, slots=True)
class BarChart:
    """Bars per group against a target line (online rate per region against 95 %).

    - categories / values: one bar each, same length; values in `value_type`'s unit (pct: a
      fraction), None = no data (no bar, the category still shown).
    - target: drawn as a line; bars below it are marked as missing it (None: no line).
    """

    title: str
    categories: tuple[str, ...]
    values: tuple[float | None, ...]
    value_type: ColumnType = ColumnType.PCT
    target: float | None = None
    kind: Literal["bar"] = "bar"

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "value_type", ColumnType(self.value_type))
        if len(self.categories) != len(self.values):
            raise ReportError(
                f"bar chart {self.title!r}: {len(self.categories)} categories but {len(self.values)} values"
            )
        _check_series(self.title, self.values, self.target)


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a `LineChart`: its name (legend) and one value per x label (None = gap)."""

    name: str
    values: tuple[float | None, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))


@dataclass(frozen=True, slots=True)
class LineChart:
    """A trend (the daily online rate over a month): x labels (e.g. "12-01"), one or more
    series of the same length, an optional target line."""

    title: str
    x: tuple[str, ...]
    series: tuple[Series, ...]
    value_type: ColumnType = ColumnType.PCT
    target: float | None = None
    kind: Literal["line"] = "line"

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", tuple(self.x))
        object.__setattr__(
            self, "series", tuple(s if isinstance(s, Series) else Series(**s) for s in self.series)
        )
        object.__setattr__(self, "value_type", ColumnType(self.value_type))
        if not self.series:
            raise ReportError(f"line chart {self.title!r}: no series")
        for s in self.series:
            if len(s.values) != len(self.x):
                raise ReportError(
                    f"line chart {self.title!r}: series {s.name!r} has {len(s.values)} values for {len(self.x)} x labels"
                )
            _check_series(f"{self.title}/{s.name}", s.values, self.target)


Chart = Union[BarChart, LineChart]


def _check_series(title: str, values: tuple[float | None, ...], target: float | None) -> None:
    for i, v in enumerate(values):
        if v is not None and not _is_number(v):
            raise ReportError(f"chart {title!r}: value {i} is not a finite number: {v!r}")
    if target is not None and not _is_number(target):
        raise ReportError(f"chart {title!r}: target is not a finite number: {target!r}")


@dataclass(frozen=True, slots=True)
class Kpi:
    """A headline figure (cover sheet, PDF first page, WeCom summary).

    - value in `type`'s unit (pct: a fraction), None = could not be computed (shown as such).
    - target: the contract's figure in the same unit (None: none); ok: met or not (None: no
      judgement, e.g. a count).
    - unit: a word after int and number values ("个", "分", "元"); ignored for
      pct/duration/datetime/ms.
    """

    label: str
    value: float | int | None
    type: ColumnType = ColumnType.PCT
    target: float | int | None = None
    ok: bool | None = None
    unit: str = ""
    decimals: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", ColumnType(self.type))
        if self.type in (ColumnType.TEXT, ColumnType.DATETIME):
            raise ReportError(f"KPI {self.label!r}: a headline figure is a number, not {self.type.value}")
        for name, v in (("value", self.value), ("target", self.target)):
            problem = check_value(self.type, v)
            if problem:
                raise ReportError(f"KPI {self.label!r}: {name}: {problem}")

    @property
    def places(self) -> int:
        return self.decimals if self.decimals is not None else DEFAULT_DECIMALS.get(self.type, 0)


@dataclass(frozen=True, slots=True)
class Part:
    """A titled table with an optional note (what could not be seen) and charts."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str | None = None
    charts: tuple[Chart, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
        object.__setattr__(self, "charts", tuple(self.charts))
        if not self.title:
            raise ReportError("a part needs a title")
        if not self.columns:
            raise ReportError(f"part {self.title!r}: no columns")
        keys = [c.key for c in self.columns]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ReportError(f"part {self.title!r}: column keys used twice: {', '.join(twice)}")
        width = len(self.columns)
        for i, row in enumerate(self.rows, start=1):
            if len(row) != width:
                raise ReportError(f"part {self.title!r}, row {i}: {len(row)} values for {width} columns")
            for col, value in zip(self.columns, row):
                problem = check_value(col.type, value)
                if problem:
                    raise ReportError(f"part {self.title!r}, row {i}, column {col.key!r}: {problem}")

    def column(self, key: str) -> tuple[Cell, ...]:
        """The values of column `key`, in row order. KeyError for an unknown key."""
        index = next((i for i, c in enumerate(self.columns) if c.key == key), None)
        if index is None:
            raise KeyError(f"part {self.title!r} has no column {key!r}")
        return tuple(row[index] for row in self.rows)


@dataclass(frozen=True, slots=True)
class Period:
    """The period a report covers: `label` (canonical text: 2026-12-03, 2026-W49, 2026-12,
    2026Q4, 2026H2, 2026, or a custom A..B) and [start_ns, end_ns) in UTC ns."""

    label: str
    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        if not self.label:
            raise ReportError("a period needs a label")
        if self.end_ns <= self.start_ns:
            raise ReportError(f"period {self.label!r}: the end is not after the start")


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report; see the module docstring."""

    kind: str
    title: str
    period: Period
    generated_ns: int
    timezone: str = "Asia/Shanghai"
    language: Language = "zh"
    scope: str | None = None
    kpis: tuple[Kpi, ...] = ()
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kpis", tuple(self.kpis))
        object.__setattr__(self, "parts", tuple(self.parts))
        if self.kind not in REPORT_TYPES:
            raise ReportError(f"report kind {self.kind!r} is not one of {', '.join(REPORT_TYPES)}")
        if not self.title:
            raise ReportError("a report needs a title")
        if self.language not in ("zh", "en"):
            raise ReportError(f"report language must be zh or en, not {self.language!r}")
        _zone(self.timezone)
        titles = [p.title for p in self.parts]
        twice = sorted({t for t in titles if titles.count(t) > 1})
        if twice:
            # XLSX sheets are named after parts; two equal titles would be two equal sheets.
            raise ReportError(f"part titles used twice: {', '.join(twice)}")

    def part(self, title: str) -> Part:
        """The part titled `title`. KeyError when there is none."""
        for p in self.parts:
            if p.title == title:
                return p
        raise KeyError(f"no part titled {title!r}")

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, numbers, None, bool): json.dumps-able as it is."""
        return _plain(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The inverse of `to_dict()`; the same checks as construction (ReportError, or
        TypeError/KeyError for data of the wrong shape)."""
        parts = tuple(
            Part(
                title=p["title"],
                columns=tuple(Column(**c) for c in p["columns"]),
                rows=tuple(tuple(r) for r in p["rows"]),
                note=p.get("note"),
                charts=tuple(_chart(c) for c in p.get("charts", ())),
            )
            for p in data.get("parts", ())
        )
        return cls(
            kind=data["kind"],
            title=data["title"],
            period=Period(**data["period"]),
            generated_ns=data["generated_ns"],
            timezone=data.get("timezone", "Asia/Shanghai"),
            language=data.get("language", "zh"),
            scope=data.get("scope"),
            kpis=tuple(Kpi(**k) for k in data.get("kpis", ())),
            parts=parts,
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))


def _chart(data: dict[str, Any]) -> Chart:
    kind = data.get("kind")
    if kind == "bar":
        return BarChart(**data)
    if kind == "line":
        return LineChart(**data)
    raise ReportError(f"unknown chart kind {kind!r}")


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _zone(name: str) -> None:
    try:
        check_zone(name)
    except ValueError as exc:
        raise ReportError(str(exc)) from None


__all__ = [
    "BarChart",
    "Cell",
    "Chart",
    "Column",
    "ColumnType",
    "Kpi",
    "LineChart",
    "Part",
    "Period",
    "REPORT_TYPES",
    "Report",
    "ReportError",
    "Series",
    "check_value",
]
