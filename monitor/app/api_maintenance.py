"""The request and response models of /api/v1/maintenance (routes in monitor.app.api): one-off
and recurring windows, listed with their next occurrences.

    POST {"match": {"devices": ["CAM-0001"]}, "start": "…+08:00", "end": "…+08:00", "reason", "by"}
    POST {"match": {"region": ["河西乡"]}, "every": "tue 01:00", "duration": "4h",
          "from": "2026-12-01", "until": "2027-03-31", "reason": "光缆割接", "by": "张工"}

Recurring rules are read in the daemon's zone (config `timezone`), as rules.alerting.recurrence
describes; `from`/`until` are local dates, both included.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from monitor.app.api_base import BodyModel, OutModel, Person, Reason, utc
from monitor.core.timecheck import check_datetime
from rules.alerting.config import DurationS, Every, Match, MaintenanceMatch, check_day, check_schedule
from rules.alerting.maintenance import MaintenanceBook, MaintenanceWindow
from rules.alerting.recurrence import FOREVER_NS, describe_every

NEXT_SHOWN = 3
"""Occurrences listed per window: the one running now (if any) and the next ones."""

_BY = ("who: absent (or the same name) with a personal token, which records its person; required with the shared "
       "write token")


class MaintenanceIn(BodyModel):
    match: Annotated[Match, Field(description="points covered: regions, sites, kinds, tags, devices (point ids); "
                                              "every list empty = all devices")]
    start: Annotated[
        Annotated[AwareDatetime, AfterValidator(check_datetime)] | None,
        Field(description="one-off: ISO-8601 with a UTC offset, e.g. 2026-12-01T02:00:00+08:00; before 2100"),
    ] = None
    end: Annotated[
        Annotated[AwareDatetime, AfterValidator(check_datetime)] | None,
        Field(description="one-off: after start, at most 31 days later; before 2100"),
    ] = None
    every: Annotated[
        Every | None,
        Field(description='recurring: days and a local time ("tue 01:00", "mon,thu 22:30", "daily 03:00") or a '
                          '5-field cron expression ("0 1 * * 2"), in the daemon\'s zone'),
    ] = None
    duration: Annotated[
        DurationS | None, Field(description='recurring: one occurrence, "4h", "90m", "1h30m" or seconds; ≤ 31 days'),
    ] = None
    from_: Annotated[
        Annotated[date, AfterValidator(check_day)] | None,
        Field(alias="from", description="recurring: first local day (default: now)"),
    ] = None
    until: Annotated[
        Annotated[date, AfterValidator(check_day)] | None,
        Field(description="recurring: last local day an occurrence starts (default: until ended)"),
    ] = None
    reason: Reason
    by: Annotated[Person | None, Field(description=_BY)] = None

    @model_validator(mode="after")
    def _shape(self) -> "MaintenanceIn":
        check_schedule(self.start, self.end, self.every, self.duration, self.from_, self.until)
        return self


class OccurrenceOut(OutModel):
    start: datetime
    start_ns: int
    end: datetime
    end_ns: int


class WindowOut(OutModel):
    id: int
    match: MaintenanceMatch
    start: Annotated[datetime, Field(description="one-off: its start; recurring: when the schedule is in force from")]
    start_ns: int
    end: Annotated[
        datetime | None,
        Field(description="one-off: its end; recurring: when the schedule ends (null: until ended)"),
    ]
    end_ns: int | None
    every: Annotated[str | None, Field(description="recurring: the rule as written; null: a one-off window")] = None
    every_label: Annotated[
        str | None, Field(description="recurring: the rule for people, in the configured language (每周二 01:00)"),
    ] = None
    cron: Annotated[str | None, Field(description="recurring: the rule as a cron expression")] = None
    duration_s: Annotated[int | None, Field(description="recurring: one occurrence, seconds")] = None
    timezone: Annotated[str | None, Field(description="recurring: the zone the rule is read in")] = None
    active: Annotated[bool, Field(description="in force now (a recurring window: an occurrence is running)")]
    next: Annotated[
        list[OccurrenceOut],
        Field(description=f"the occurrence running now, if any, and the next ones: {NEXT_SHOWN} in all"),
    ]
    reason: str
    created_by: str
    source: Annotated[Literal["config", "api"], Field(description="config windows cannot be deleted here")]


class InMaintenanceOut(OutModel):
    """The window a device is in now (the status page's 维护中)."""

    id: int
    reason: str
    until: Annotated[datetime, Field(description="the end of the running occurrence (of the window, if one-off)")]
    until_ns: int


class WindowListOut(OutModel):
    windows: list[WindowOut]


def window_out(w: MaintenanceWindow, now_ns: int, language: str) -> WindowOut:
    rec = w.recurrence
    forever = rec is not None and w.end_ns >= FOREVER_NS
    return WindowOut(
        id=w.id, match=w.match, start=utc(w.start_ns), start_ns=w.start_ns,
        end=None if forever else utc(w.end_ns), end_ns=None if forever else w.end_ns,
        every=w.every, every_label=describe_every(w.every, language) if w.every else None, cron=rec.cron if rec else None, duration_s=rec.duration_ns // 1_000_000_000 if rec else None,
        timezone=rec.zone if rec else None, active=w.active(now_ns),
        next=[OccurrenceOut(start=utc(s), start_ns=s, end=utc(e), end_ns=e)
              for s, e in w.next_occurrences(now_ns, NEXT_SHOWN)],
        reason=w.reason, created_by=w.created_by, source=w.source,  # type: ignore[arg-type]
    )


def in_maintenance(book: MaintenanceBook, device_id: str, now_ns: int) -> InMaintenanceOut | None:
    """The window covering the device now (book.device_covered), with the end of its running
    occurrence; None when none does."""
    w = book.device_covered(device_id, now_ns)
    if w is None:
        return None
    _, end = w.next_occurrences(now_ns, 1)[0]
    return InMaintenanceOut(id=w.id, reason=w.reason, until=utc(end), until_ns=end)
