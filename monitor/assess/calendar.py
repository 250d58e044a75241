"""Working time (工作时间) for SLA clocks counted in business hours and for off-hours deadlines
(非工作时间): working days of the week, working spans of a day, holidays (放假) and swapped
working days (调休上班, e.g. a Saturday worked to bridge a holiday), in the configured zone.

The holidays come from a file the operator keeps, one per year, as YAML:

    title: China public holidays 2026
    holidays:                          # days off, even on weekdays
      - {date: 2026-01-01, to: 2026-01-03, name: 元旦}
    workdays:                          # working days, even at the weekend (调休)
      - {date: 2026-01-04, name: 元旦调休上班}

or as CSV with a header `date,type,name` (type: holiday | workday, or 放假/休 | 上班/班):

    date,type,name
    2026-01-01,holiday,元旦
    2026-01-04,workday,元旦调休上班

monitor/assess/presets/calendar-cn-2026.example.yaml is an EXAMPLE (国务院办公厅关于2026年部分
节假日安排的通知, 2025-11-04, as published by Xinhua): the operator checks it against the notice
and the buyer's own rules, and copies it next to the config.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date as Date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Mapping, Sequence
from zoneinfo import ZoneInfo

import yaml
from pydantic import Field, ValidationError, model_validator

from monitor.assess.config_workorders import CalendarConfig, parse_hours
from monitor.core.config_base import ConfigError, Strict, expansion_problem, locate

_NS = 1_000_000_000
MAX_DAYS = 3660
"""How far `add` looks for working time (ten years) before it calls the calendar empty."""


class CalendarError(ConfigError):
    """A holiday file is invalid: every problem, "FILE:LINE: where: what"."""


@dataclass(frozen=True, slots=True)
class Days:
    """What a holiday file says: {date: name} of days off and of working days."""

    off: Mapping[Date, str]
    on: Mapping[Date, str]


class WorkCalendar:
    """Working time in zone `timezone`: `workdays` (Monday = 0), the working `spans` of a
    working day ((start, end) local times; end None = midnight at the day's end), and the
    holiday file's `days` (off wins over the weekday, on wins over the weekend).

    All instants are UTC ns; every method is exact to the nanosecond."""

    def __init__(
        self,
        timezone: str,
        workdays: frozenset[int],
        spans: Sequence[tuple[time, time | None]],
        days: Days = Days({}, {}),
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self._workdays = workdays
        self._spans = tuple(spans)
        self._days = days
        self._cache: dict[Date, tuple[tuple[int, int], ...]] = {}
        if not workdays and not days.on:
            raise ValueError("a calendar without working days: business-hour clocks could never run")

    @classmethod
    def from_config(cls, cfg: CalendarConfig, timezone: str, base_dir: Path = Path(".")) -> "WorkCalendar":
        """From config `assessment.sla.calendar`; `file` relative to `base_dir` (the config's
        folder). Raises CalendarError."""
        days = Days({}, {})
        if cfg.file is not None:
            days = load_days(cfg.file if cfg.file.is_absolute() else base_dir / cfg.file)
        return cls(timezone, cfg.weekday_numbers(), [parse_hours(h) for h in cfg.hours], days)

    # -- days -----------------------------------------------------------------------------------

    def working_day(self, day: Date) -> bool:
        """True for a working day: a listed working day (调休), else not a listed holiday and
        one of the working weekdays."""
        if day in self._days.on:
            return True
        return day not in self._days.off and day.weekday() in self._workdays

    def spans(self, day: Date) -> tuple[tuple[int, int], ...]:
        """The working spans of local `day` as [start, end) UTC ns; () on a day off."""
        cached = self._cache.get(day)
        if cached is None:
            out = []
            if self.working_day(day):
                for start, end in self._spans:
                    s = datetime.combine(day, start, self.tz)
                    e = datetime.combine(day + timedelta(days=1), time(0), self.tz) if end is None else (
                        datetime.combine(day, end, self.tz))
                    out.append((_ns(s), _ns(e)))
            cached = self._cache[day] = tuple(out)
        return cached

    def local_date(self, ts_ns: int) -> Date:
        return datetime.fromtimestamp(ts_ns // _NS, self.tz).date()

    # -- instants and durations -----------------------------------------------------------------

    def in_hours(self, ts_ns: int) -> bool:
        """True when `ts_ns` falls in working time (span start included, end excluded)."""
        return any(s <= ts_ns < e for s, e in self.spans(self.local_date(ts_ns)))

    def add(self, start_ns: int, seconds: float) -> int:
        """The instant by which `seconds` of working time have passed since `start_ns` (a start
        outside working time counts from the next working span). Raises ValueError when the
        calendar has no working time for MAX_DAYS days."""
        remaining = round(seconds * _NS)
        day = self.local_date(start_ns)
        for _ in range(MAX_DAYS):
            for s, e in self.spans(day):
                if e <= start_ns:
                    continue
                s = max(s, start_ns)
                if remaining <= e - s:
                    return s + remaining
                remaining -= e - s
            day += timedelta(days=1)
        raise ValueError(f"no working time in the {MAX_DAYS} days after {day - timedelta(days=MAX_DAYS)}")

    def between(self, start_ns: int, end_ns: int) -> float:
        """Seconds of working time in [start_ns, end_ns) (0 when end ≤ start)."""
        if end_ns <= start_ns:
            return 0.0
        total, day, last = 0, self.local_date(start_ns), self.local_date(end_ns)
        while day <= last:
            for s, e in self.spans(day):
                total += max(0, min(e, end_ns) - max(s, start_ns))
            day += timedelta(days=1)
        return total / _NS


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * _NS


# -- holiday files ------------------------------------------------------------------------------


class _Span(Strict):
    date: Date
    to: Date | None = None
    name: Annotated[str, Field(max_length=60)] = ""

    @model_validator(mode="after")
    def _order(self) -> "_Span":
        if self.to is not None and not self.date <= self.to <= self.date + timedelta(days=31):
            raise ValueError("'to' must be on or after 'date', at most 31 days later")
        return self

    def dates(self) -> list[Date]:
        end = self.to or self.date
        return [self.date + timedelta(days=i) for i in range((end - self.date).days + 1)]


class _File(Strict):
    title: str | None = None
    note: str | None = None
    holidays: list[_Span] = []
    workdays: list[_Span] = []


class _DatesAsText(yaml.SafeLoader):
    """YAML without timestamp conversion: PyYAML raises a bare ValueError for 2026-13-01, and
    pydantic reports a bad date with its place."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_TYPES = {"holiday": True, "放假": True, "休": True, "workday": False, "上班": False, "班": False}


def load_days(path: Path) -> Days:
    """Holidays and swapped working days from a YAML (.yaml/.yml) or CSV (.csv) file, UTF-8.
    Raises CalendarError with every problem located by line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CalendarError([f"{path}: cannot read the holiday calendar: {reason}"]) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        off, on = _from_yaml(path, text)
    elif path.suffix.lower() == ".csv":
        off, on = _from_csv(path, text)
    else:
        raise CalendarError([f"{path}: a holiday calendar is .yaml, .yml or .csv"])
    both = sorted(set(off) & set(on))
    if both:
        raise CalendarError([f"{path}: listed both as holiday and as working day: {', '.join(map(str, both))}"])
    return Days(off, on)


def _from_yaml(path: Path, text: str) -> tuple[dict[Date, str], dict[Date, str]]:
    try:
        root = yaml.compose(text)
        if root is not None and (too_large := expansion_problem(root)) is not None:
            raise CalendarError([f"{path}:{too_large[0].line + 1}: {too_large[1]}"])
        doc = yaml.load(text, Loader=_DatesAsText)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise CalendarError([f"{where}: YAML syntax error: {getattr(exc, 'problem', exc)}"]) from None
    try:
        parsed = _File.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            shown, line = locate(root, loc) if root is not None else ((), 1)
            where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in shown).replace(".[", "[")
            messages.append(f"{path}:{line}: {where or 'calendar'}: {err['msg']}")
        raise CalendarError(messages) from None
    off = {d: s.name for s in parsed.holidays for d in s.dates()}
    on = {d: s.name for s in parsed.workdays for d in s.dates()}
    return off, on


def _from_csv(path: Path, text: str) -> tuple[dict[Date, str], dict[Date, str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["date", "type"]:
        raise CalendarError([f"{path}:1: the header must be date,type,name"])
    off: dict[Date, str] = {}
    on: dict[Date, str] = {}
    problems = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        cells = [c.strip() for c in row] + [""] * 3
        try:
            day = Date.fromisoformat(cells[0])
        except ValueError:
            problems.append(f"{path}:{line}: date: {cells[0]!r} is not a date like 2026-10-01")
            continue
        kind = _TYPES.get(cells[1].lower())
        if kind is None:
            problems.append(f"{path}:{line}: type: {cells[1]!r} is not holiday/放假 or workday/上班")
            continue
        (off if kind else on)[day] = cells[2]
    if problems:
        raise CalendarError(problems)
    return off, on
