"""Assessment periods (考核周期) and instants, in the configured time zone, as UTC ns.

A period is a half-open interval [start_ns, end_ns) of UTC ns whose boundaries are local
midnights of the configured zone (Asia/Shanghai by default): the contract's "quarter" starts
at 00:00 Beijing time, not UTC. Accepted texts (case-insensitive):

    2026-12-01                day
    2026-W49   2026W49        ISO week (Monday to Sunday, ISO 8601)
    2026-12                   month
    2026Q4     2026-Q4        quarter
    2026H2     2026-H2        half-year
    2026                      year
    A..B                      custom: A and B are dates (B inclusive: to the end of that day) or
                              local times "2026-12-01 08:00[:ss]" (B exclusive)

A period may not start in the future; one that ends in the future ends now instead
(`clipped`, and `note` says so), since nothing after now has happened yet.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.core.timecheck import check_ns

NS = 1_000_000_000

FORMATS = "2026-12-01, 2026-W49, 2026-12, 2026Q4, 2026H2, 2026, or 2026-10-01..2026-12-31"

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-?W(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-?Q(\d)")
_HALF = re.compile(r"(\d{4})-?H(\d)")
_YEAR = re.compile(r"(\d{4})")
_LOCAL_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?")
_INSTANT_OFFSET = re.compile(r"(.*?)(Z|[+-]\d{2}:\d{2})")


class PeriodError(ValueError):
    """A period or instant text that cannot be read; the message quotes it and says what is
    accepted."""


@dataclass(frozen=True, slots=True)
class Period:
    """[start_ns, end_ns) in UTC ns. `label` is the canonical text (2026Q4 …), `kind` one of
    day, week, month, quarter, half, year, custom; `timezone` the zone its boundaries are in;
    `clipped` when the end was moved back to the moment of parsing."""

    label: str
    kind: str
    start_ns: int
    end_ns: int
    timezone: str
    clipped: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS

    @property
    def note(self) -> str | None:
        """Why the period is shorter than its name says, for people; None when it is not."""
        if not self.clipped:
            return None
        return f"{self.label} has not ended yet: counted up to now ({format_local(self.end_ns, self.timezone)})"


def parse_period(text: str, timezone: str, now_ns: int | None = None) -> Period:
    """The period named by `text` (see the module docstring) with boundaries in `timezone`
    (an IANA name). Raises PeriodError for an unreadable text, an impossible date, an empty or
    reversed custom range, or a period starting at or after `now_ns` (default: now)."""
    zone = ZoneInfo(timezone)
    now_ns = time.time_ns() if now_ns is None else now_ns
    raw = text.strip()
    try:
        label, kind, start, end = _bounds(raw.upper(), zone)
        start_ns, end_ns = check_ns(_ns(start)), _ns(end)
        check_ns(end_ns - 1)  # the end is exclusive: 2099 ends at 2100-01-01 00:00
    except (ValueError, OverflowError) as exc:  # ours, or date()'s: month 13, week 54, 9999-12-31 + 1 day …
        raise PeriodError(f"period {text!r}: {exc}") from None
    if end_ns <= start_ns:
        raise PeriodError(f"period {text!r}: the end is not after the start")
    if start_ns >= now_ns:
        raise PeriodError(f"period {text!r} starts in the future ({format_local(start_ns, timezone)})")
    clipped = end_ns > now_ns
    return Period(label, kind, start_ns, min(end_ns, now_ns), timezone, clipped)


def _bounds(text: str, zone: ZoneInfo) -> tuple[str, str, datetime, datetime]:
    """(label, kind, local start, local end) of a period text, upper-cased."""
    if ".." in text:
        first, _, last = text.partition("..")
        start, _ = _endpoint(first.strip(), zone)
        end, whole_day = _endpoint(last.strip(), zone)
        if whole_day:  # the last day counts whole: to the next local midnight
            end = _midnight(end.date() + timedelta(days=1), zone)
        return f"{first.strip()}..{last.strip()}", "custom", start, end
    if m := _DAY.fullmatch(text):
        day = date(int(m[1]), int(m[2]), int(m[3]))
        return day.isoformat(), "day", _midnight(day, zone), _midnight(day + timedelta(days=1), zone)
    if m := _WEEK.fullmatch(text):
        year, week = int(m[1]), int(m[2])
        monday = date.fromisocalendar(year, week, 1)
        return f"{year}-W{week:02d}", "week", _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone)
    if m := _MONTH.fullmatch(text):
        first = date(int(m[1]), int(m[2]), 1)
        return f"{first:%Y-%m}", "month", _midnight(first, zone), _midnight(_add_months(first, 1), zone)
    if m := _QUARTER.fullmatch(text):
        year, q = int(m[1]), int(m[2])
        if not 1 <= q <= 4:
            raise ValueError("a quarter is Q1 … Q4")
        first = date(year, 3 * q - 2, 1)
        return f"{year}Q{q}", "quarter", _midnight(first, zone), _midnight(_add_months(first, 3), zone)
    if m := _HALF.fullmatch(text):
        year, h = int(m[1]), int(m[2])
        if h not in (1, 2):
            raise ValueError("a half-year is H1 or H2")
        first = date(year, 6 * h - 5, 1)
        return f"{year}H{h}", "half", _midnight(first, zone), _midnight(_add_months(first, 6), zone)
    if _YEAR.fullmatch(text):
        year = int(text)
        return str(year), "year", _midnight(date(year, 1, 1), zone), _midnight(date(year + 1, 1, 1), zone)
    raise ValueError(f"not one of: {FORMATS}")


def _endpoint(text: str, zone: ZoneInfo) -> tuple[datetime, bool]:
    """A custom range's end point: (local datetime, True when it was a date)."""
    if m := _DAY.fullmatch(text):
        return _midnight(date(int(m[1]), int(m[2]), int(m[3])), zone), True
    if m := _LOCAL_TIME.fullmatch(text):
        return datetime(*(int(g or 0) for g in m.groups()), tzinfo=zone), False
    raise ValueError(f"{text.lower()!r} is neither a date (2026-10-01) nor a local time (2026-10-01 08:00)")


def parse_instant(text: str, timezone: str) -> int:
    """UTC ns of a moment written for people: "2026-12-01 10:00[:ss]" (local time of
    `timezone`), the same with "T", or with an explicit offset ("…+08:00", "…Z").
    Raises PeriodError."""
    raw = text.strip().upper()
    offset = None
    if (m := _INSTANT_OFFSET.fullmatch(raw)) and _LOCAL_TIME.fullmatch(m[1]):
        raw, offset = m[1], m[2]
    m = _LOCAL_TIME.fullmatch(raw)
    if not m:
        raise PeriodError(f"time {text!r} is not like 2026-12-01 10:00 (local time) or 2026-12-01T10:00+08:00")
    try:
        local = datetime(*(int(g or 0) for g in m.groups()))
    except ValueError as exc:
        raise PeriodError(f"time {text!r}: {exc}") from None
    if offset is not None:
        stamp = datetime.fromisoformat(local.isoformat() + ("+00:00" if offset == "Z" else offset))
    else:
        stamp = local.replace(tzinfo=ZoneInfo(timezone))
    try:
        return check_ns(_ns(stamp))
    except (ValueError, OverflowError) as exc:  # stored as int64 ns: see monitor.core.timecheck
        raise PeriodError(f"time {text!r}: {exc}") from None


def check_instants(period: Period, minutes: tuple[int, ...]) -> tuple[int, ...]:
    """UTC ns of every daily check (local `minutes` after midnight, in the period's zone) that
    falls inside the period, ascending."""
    zone = ZoneInfo(period.timezone)
    day = datetime.fromtimestamp(period.start_ns // NS, zone).date()
    last = datetime.fromtimestamp((period.end_ns - 1) // NS, zone).date()
    out = []
    while day <= last:
        for minute in minutes:
            ts = _ns(datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone))
            if period.start_ns <= ts < period.end_ns:
                out.append(ts)
        day += timedelta(days=1)
    return tuple(out)


def format_local(ts_ns: int, timezone: str) -> str:
    """"2026-12-01 10:00:00" in `timezone`, for people."""
    return datetime.fromtimestamp(ts_ns / NS, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _ns(stamp: datetime) -> int:
    # Whole seconds only (periods and check times never carry fractions): exact in a float.
    return round(stamp.timestamp()) * NS
