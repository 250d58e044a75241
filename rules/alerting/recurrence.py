"""Recurring maintenance windows (每周二 01:00–05:00 光缆割接): the rule, its duration, and the
occurrences it makes over a period, computed in the configured time zone.

A rule (`every`) is written either as days and a local time — "tue 01:00", "mon,thu 22:30",
"mon-fri 02:00", "daily 03:00" — or as a 5-field cron expression ("0 1 * * 2": minute hour
day-of-month month day-of-week, as crontab(5)); both become a cron expression that croniter
iterates. Durations are written "4h", "90m", "1h30m", "2d" (or seconds as a number).

Occurrences are iterated on the zone's wall clock (naive local times, so croniter never sees
an offset change) and each start is then placed in the zone: a window at 01:00 stays at 01:00
across a DST change; a start that does not exist on the spring-forward day (02:30 in
Europe/Berlin) falls at the same offset as before the change, i.e. one hour later on the
clock; on the fall-back day the first of the two 01:30s counts. China has no DST, but the zone
is configurable. A duration is elapsed time, not wall time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Iterator
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

NS = 1_000_000_000
MAX_OCCURRENCE_S = 31 * 86_400
"""One occurrence (and one one-off window) lasts at most this long: longer is a typo, not maintenance."""

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbering: 0 = Sunday
_FULL = {"sunday": "sun", "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
         "friday": "fri", "saturday": "sat"}
_EVERY_DAY = ("daily", "day", "everyday")
_DAYS_AT = re.compile(r"(?P<days>[a-z,\-]+)\s+(?P<h>\d{1,2}):(?P<m>\d{2})")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[dhms])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


class RuleError(ValueError):
    """A rule, duration or date range that cannot be a maintenance schedule; the message says why."""


def parse_every(text: str) -> str:
    """The cron expression of a rule written as "tue 01:00" (days: mon…sun or full names, comma
    lists, ranges like mon-fri, or daily) or as a 5-field cron expression. Raises RuleError
    naming what is wrong (an unknown weekday, a time out of range, a cron that never fires)."""
    raw = " ".join(text.strip().lower().split())
    if not raw:
        raise RuleError("every must not be empty: e.g. \"tue 01:00\" or \"0 1 * * 2\"")
    m = _DAYS_AT.fullmatch(raw)
    if m:
        hour, minute = int(m["h"]), int(m["m"])
        if hour > 23 or minute > 59:
            raise RuleError(f"every {text!r}: {m['h']}:{m['m']} is not a time of day (00:00–23:59)")
        days = "*" if m["days"] in _EVERY_DAY else _days(m["days"], text)
        cron = f"{minute} {hour} * * {days}"
    elif len(raw.split(" ")) == 5:
        cron = raw
        if not croniter.is_valid(cron):
            raise RuleError(f"every {text!r}: not a valid 5-field cron expression (minute hour day month weekday)")
    else:
        raise RuleError(
            f"every {text!r}: write days and a local time (\"tue 01:00\", \"mon,thu 22:30\", \"daily 03:00\") "
            "or a 5-field cron expression (\"0 1 * * 2\")"
        )
    try:  # a valid expression may still never fire (30 February)
        croniter(cron, datetime(2000, 1, 1), max_years_between_matches=8).get_next(datetime)
    except (CroniterBadDateError, CroniterError):
        raise RuleError(f"every {text!r}: this rule never occurs") from None
    return cron


def _days(spec: str, text: str) -> str:
    """Cron's day-of-week field (0 = Sunday) of "tue", "mon,thu", "mon-fri"."""
    out = []
    for item in spec.split(","):
        ends = item.split("-")
        if len(ends) > 2 or not all(ends):
            raise RuleError(f"every {text!r}: {item!r} is not a weekday or a range of weekdays (mon-fri)")
        numbers = []
        for day in ends:
            name = _FULL.get(day, day)
            if name not in DAYS:
                raise RuleError(f"every {text!r}: unknown weekday {day!r} (mon tue wed thu fri sat sun, or daily)")
            numbers.append(str(DAYS.index(name)))
        out.append("-".join(numbers))
    return ",".join(out)


_ZH_DAYS = {"sun": "周日", "mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五", "sat": "周六"}
_EN_DAYS = {"sun": "Sun", "mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat"}


def describe_every(text: str, language: str) -> str:
    """A rule for people: "tue 01:00" → "每周二 01:00" / "every Tue 01:00", "mon-fri 02:00" →
    "每周一至周五 02:00", "daily 03:00" → "每天 03:00"; a cron expression as it is ("cron 0 1 * * 2")."""
    raw = " ".join(text.strip().lower().split())
    m = _DAYS_AT.fullmatch(raw)
    if m is None:
        return f"cron {raw}"
    at = f"{int(m['h']):02d}:{m['m']}"
    if m["days"] in _EVERY_DAY:
        return f"每天 {at}" if language == "zh" else f"daily {at}"
    names = _ZH_DAYS if language == "zh" else _EN_DAYS
    items = ["至".join(names[_FULL.get(d, d)] for d in item.split("-")) if language == "zh"
             else "–".join(names[_FULL.get(d, d)] for d in item.split("-")) for item in m["days"].split(",")]
    return f"每{'、'.join(items)} {at}" if language == "zh" else f"every {', '.join(items)} {at}"


def parse_duration_s(value: object) -> int:
    """Whole seconds of "4h", "90m", "1h30m", "2d" or a number of seconds. Raises RuleError for
    anything else, zero, a negative value or more than 31 days."""
    if isinstance(value, bool):
        raise RuleError("duration: write it as 4h, 90m, 1h30m or 2d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.fullmatch(value.strip().lower()):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value.strip().lower()))
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        seconds = float(value.strip())
    else:
        raise RuleError(f"duration {value!r}: write it as 4h, 90m, 1h30m or 2d")
    if seconds <= 0:
        raise RuleError(f"duration {value!r}: must be longer than zero")
    if seconds > MAX_OCCURRENCE_S:
        raise RuleError(f"duration {value!r}: one occurrence may last at most 31 days")
    return int(round(seconds))


def local_midnight_ns(day: date, zone: ZoneInfo) -> int:
    """UTC ns of 00:00 on `day` in `zone`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * NS


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A stored schedule: occurrences start when `cron` fires on the wall clock of `zone` and
    last `duration_ns`."""

    cron: str
    duration_ns: int
    zone: str

    def occurrences(self, start_ns: int, end_ns: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
        """(start_ns, end_ns) of each occurrence overlapping [start_ns, end_ns), in order; at most
        `limit` of them. Bounded: cron fires at most once a minute, so a period of N minutes
        yields at most N + duration/60 occurrences."""
        zone = ZoneInfo(self.zone)
        # Begin one duration (plus a minute, cron's resolution) early: an occurrence that began
        # before the period may still be running in it.
        first = start_ns - self.duration_ns - 60 * NS
        local = datetime.fromtimestamp(first // NS, UTC).astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        it = croniter(self.cron, local)
        count = 0
        while limit is None or count < limit:
            wall = it.get_next(datetime)
            begin = int(wall.replace(tzinfo=zone).timestamp()) * NS
            if begin >= end_ns:
                return
            if begin + self.duration_ns > start_ns:
                count += 1
                yield begin, begin + self.duration_ns

    def around(self, ts_ns: int) -> tuple[int, int] | None:
        """The occurrence running at `ts_ns`, or None."""
        for occurrence in self.occurrences(ts_ns, ts_ns + 1, limit=1):
            return occurrence
        return None


def span_of(first: date | None, last: date | None, duration_ns: int, zone: ZoneInfo, now_ns: int) -> tuple[int, int]:
    """[start_ns, end_ns) a recurring window is in force: from 00:00 of `first` (None: `now_ns`,
    when it is stored) until the end of the day `last` plus one duration, so that the last
    occurrence keeps its length (None: open-ended, FOREVER). Raises RuleError when last < first."""
    if first is not None and last is not None and last < first:
        raise RuleError(f"until {last.isoformat()} is before from {first.isoformat()}")
    start = now_ns if first is None else local_midnight_ns(first, zone)
    end = FOREVER_NS if last is None else local_midnight_ns(last + timedelta(days=1), zone) + duration_ns
    return start, end


FOREVER_NS = 2**62
"""The end of an open-ended schedule (year 2116)."""
