"""When scheduled reports are due (config `reports.schedule`), catch-up safe.

Each schedule entry fires at local times of the configured zone: daily at `at`; weekly on
`weekday` at `at`; monthly on `day` of every month; quarterly on `day` of January, April, July
and October; half-year on `day` of January and July; annual on `day` of January. A firing makes
the report of the last whole period before its date: yesterday, the ISO week before, the month,
quarter, half-year or year before.

`due(now_ns, last_runs, …)` is a pure function of the clock and of what was made already
(`last_runs`: report type → label of the latest period made, which the caller keeps, e.g. with
ReportStore.mark_done): it returns every period whose firing has passed and that is newer than
the last one made, at most `catch_up` per type (the most recent), oldest first. So a daemon
that was down at 08:00 makes the daily report when it starts, once; one down for a month makes
the last `catch_up` daily reports and one monthly report; a type never made before gets its
latest period only.

Period labels are the canonical texts of monitor.assess's period parser: 2026-12-03 (day),
2026-W49 (ISO week), 2026-12 (month), 2026Q4, 2026H2, 2026 (year).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

from monitor.reports.config import ScheduleEntry

NS = 1_000_000_000

# Months in which each longer type fires (the month after its period ends), and its length.
_FIRE_MONTHS = {
    "monthly": tuple(range(1, 13)),
    "quarterly": (1, 4, 7, 10),
    "half-year": (1, 7),
    "annual": (1,),
}
_MONTHS = {"monthly": 1, "quarterly": 3, "half-year": 6, "annual": 12}


@dataclass(frozen=True, slots=True)
class Due:
    """A report to make: its type, its period's label and [start_ns, end_ns) in UTC ns, and
    when it was due (the firing, UTC ns)."""

    report: str
    label: str
    start_ns: int
    end_ns: int
    fired_ns: int


def due(
    now_ns: int,
    last_runs: Mapping[str, str],
    schedule: Sequence[ScheduleEntry],
    timezone: str,
    catch_up: int = 7,
) -> list[Due]:
    """The scheduled reports due at `now_ns` (see the module docstring), ordered by firing time,
    oldest first. `last_runs` maps a report type to the label of the latest period made; a label
    that is not a canonical label of that type raises ValueError."""
    zone = ZoneInfo(timezone)
    out: list[Due] = []
    for entry in schedule:
        last = last_runs.get(entry.report)
        last_start = None if last is None else period_start(entry.report, last)
        found: list[Due] = []
        for fired in _firings_before(entry, now_ns, zone):
            label, first, after = _period_of(entry.report, fired)
            if last_start is not None and first.toordinal() <= last_start:
                break
            found.append(Due(entry.report, label, _ns(first, zone), _ns(after, zone), _fire_ns(fired, entry, zone)))
            if last_start is None or len(found) >= catch_up:
                break
        out += reversed(found)
    return sorted(out, key=lambda d: (d.fired_ns, d.start_ns))


def next_firing(now_ns: int, schedule: Sequence[ScheduleEntry], timezone: str) -> int | None:
    """UTC ns of the earliest firing after `now_ns` of any entry (None for an empty schedule):
    how long a scheduler may sleep."""
    zone = ZoneInfo(timezone)
    later = []
    for entry in schedule:
        # The firings before a moment one period-length ahead include the next one.
        ahead = now_ns + _max_gap_s(entry) * NS
        times = (_fire_ns(d, entry, zone) for d in _firings_before(entry, ahead, zone))
        later += takewhile(lambda t: t > now_ns, times)  # newest first: stop at the past
    return min(later, default=None)


def last_period(report: str, now_ns: int, timezone: str) -> str:
    """The label of the last whole period of `report`'s type before today (local date of
    `now_ns` in `timezone`): what a firing today makes (yesterday, the ISO week before, the
    month before …). ValueError for an unknown type."""
    if report not in _EXAMPLES:
        raise ValueError(f"unknown report type {report!r} (one of {', '.join(_EXAMPLES)})")
    today = datetime.fromtimestamp(now_ns / NS, ZoneInfo(timezone)).date()
    return _period_of(report, today)[0]


def period_start(report: str, label: str) -> int:
    """The first day of a period label of `report`'s type, as a day ordinal (comparable across
    labels of one type). ValueError for a label not in the type's canonical form."""
    try:
        if report == "daily":
            return date.fromisoformat(label).toordinal()
        if report == "weekly":
            year, _, week = label.partition("-W")
            return date.fromisocalendar(int(year), int(week), 1).toordinal()
        if report == "monthly":
            year, _, month = label.partition("-")
            return date(int(year), int(month), 1).toordinal()
        if report == "quarterly":
            year, _, q = label.partition("Q")
            return date(int(year), 3 * int(q) - 2, 1).toordinal()
        if report == "half-year":
            year, _, h = label.partition("H")
            return date(int(year), 6 * int(h) - 5, 1).toordinal()
        if report == "annual":
            return date(int(label), 1, 1).toordinal()
    except ValueError:
        pass
    raise ValueError(f"{label!r} is not a {report} period label (e.g. {_EXAMPLES.get(report, '?')})")


_EXAMPLES = {
    "daily": "2026-12-03",
    "weekly": "2026-W49",
    "monthly": "2026-12",
    "quarterly": "2026Q4",
    "half-year": "2026H2",
    "annual": "2026",
}


def _ns(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * NS


def _fire_ns(day: date, entry: ScheduleEntry, zone: ZoneInfo) -> int:
    at = entry.at
    return int(datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=zone).timestamp()) * NS


def _firings_before(entry: ScheduleEntry, now_ns: int, zone: ZoneInfo) -> Iterator[date]:
    """Dates of the entry's firings at or before `now_ns`, newest first (unbounded: the caller
    stops)."""
    today = datetime.fromtimestamp(now_ns / NS, zone).date()
    day = today if _fire_ns(today, entry, zone) <= now_ns else today - timedelta(days=1)
    if entry.report == "daily":
        while True:
            yield day
            day -= timedelta(days=1)
    if entry.report == "weekly":
        weekday = entry.weekday or 1
        day -= timedelta(days=(day.isoweekday() - weekday) % 7)
        while True:
            yield day
            day -= timedelta(days=7)
    fire_day, months = entry.day or 1, _FIRE_MONTHS[entry.report]
    year, month = day.year, day.month
    if day.day < fire_day:  # this month's firing is still ahead
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    while True:
        if month in months:
            yield date(year, month, fire_day)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)


def _period_of(report: str, fired: date) -> tuple[str, date, date]:
    """(label, first day, day after the last) of the last whole period before `fired`."""
    if report == "daily":
        day = fired - timedelta(days=1)
        return day.isoformat(), day, fired
    if report == "weekly":
        monday = fired - timedelta(days=fired.isoweekday() - 1) - timedelta(days=7)
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}", monday, monday + timedelta(days=7)
    end = date(fired.year, fired.month, 1)
    index = end.year * 12 + end.month - 1 - _MONTHS[report]
    start = date(index // 12, index % 12 + 1, 1)
    if report == "monthly":
        label = f"{start:%Y-%m}"
    elif report == "quarterly":
        label = f"{start.year}Q{(start.month - 1) // 3 + 1}"
    elif report == "half-year":
        label = f"{start.year}H{(start.month - 1) // 6 + 1}"
    else:
        label = str(start.year)
    return label, start, end


def _max_gap_s(entry: ScheduleEntry) -> int:
    """Longest time between two firings of the entry, in seconds (with a day to spare)."""
    days = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92, "half-year": 184, "annual": 366}
    return (days[entry.report] + 1) * 86_400
