"""Config of the alerting layer: maintenance windows (config.yaml section `maintenance`) and
notifications (`notify`: routes and the duty roster)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Union

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.model import Selector
from monitor.core.timecheck import EARLIEST, LATEST, RANGE_TEXT, check_datetime
from rules.alerting.recurrence import MAX_OCCURRENCE_S, parse_duration_s, parse_every
from rules.alerting.duty import DutyShift
from rules.alerting.notifiers import ROUTE_TYPES


class MaintenanceMatch(SelectorConfig):
    """The points a maintenance window covers: SelectorConfig plus `devices` (point ids of the
    point list). Every list empty = all devices; a device must match every non-empty list.
    Group faults (a region's or a site's) are covered only by windows without kind, tags and
    devices (rules.alerting.maintenance)."""

    devices: list[Annotated[str, Field(min_length=1, max_length=128)]] = []

    def selector(self) -> Selector:
        return Selector.of(self.region, self.site, self.kind, self.tags, self.devices)


def _as_match(value: object) -> object:
    # A plain SelectorConfig (code written before `devices`) is the same selection.
    if isinstance(value, SelectorConfig) and not isinstance(value, MaintenanceMatch):
        return value.model_dump()
    return value


Match = Annotated[MaintenanceMatch, BeforeValidator(_as_match)]


def _every(text: str) -> str:
    parse_every(text)  # RuleError (a ValueError) names what is wrong
    return " ".join(text.split())


Every = Annotated[str, Field(max_length=100), AfterValidator(_every)]
"""A recurrence rule as written: "tue 01:00", "mon,thu 22:30", "daily 03:00" or a 5-field cron
expression (rules.alerting.recurrence.parse_every)."""
DurationS = Annotated[int, BeforeValidator(parse_duration_s)]
"""Seconds of one occurrence: "4h", "90m", "1h30m", "2d" or a number of seconds; > 0, ≤ 31 days."""


def check_day(day: date | None) -> date | None:
    """`day` (a schedule's from/until) when it lies in monitor.core.timecheck's range; raises ValueError."""
    if day is not None and not EARLIEST.date() <= day < LATEST.date():
        raise ValueError(f"{day.isoformat()} is out of range: dates must lie {RANGE_TEXT}")
    return day


def check_schedule(start: datetime | None, end: datetime | None, every: str | None, duration_s: int | None,
                   first: date | None, last: date | None) -> None:
    """A window is one-off (start and end) or recurring (every and duration, optionally from
    and until). Raises ValueError saying which keys go together, end ≤ start, a one-off
    window over 31 days, until before from."""
    if every is None and duration_s is None:
        if start is None or end is None:
            raise ValueError("give start and end (a one-off window) or every and duration (a recurring one)")
        if first is not None or last is not None:
            raise ValueError("from and until go with every and duration (a recurring window)")
        if end <= start:
            raise ValueError("end must be after start")
        if (end - start).total_seconds() > MAX_OCCURRENCE_S:
            raise ValueError("a one-off maintenance window may last at most 31 days (a longer one recurs: every)")
        return
    if start is not None or end is not None:
        raise ValueError("give either start and end (a one-off window) or every and duration (a recurring one), not both")
    if every is None:
        raise ValueError("duration goes with every (e.g. every: \"tue 01:00\")")
    if duration_s is None:
        raise ValueError("every needs a duration, e.g. duration: 4h")
    if first is not None and last is not None and last < first:
        raise ValueError(f"until {last.isoformat()} is before from {first.isoformat()}")


class MaintenanceWindowConfig(Strict):
    """A scheduled maintenance window (计划维护): faults of matching devices are not notified
    inside it, and the time is marked in the state database so reports can exclude it.

    One-off: `start` and `end` (with a UTC offset; at most 31 days apart). Recurring: `every`
    (days and a local time in the config's `timezone`, or a 5-field cron expression) and
    `duration` (one occurrence, at most 31 days), optionally `from` and `until` (local dates,
    both included: the first and last day an occurrence may start)."""

    match: Match
    start: datetime | None = None
    end: datetime | None = None
    every: Every | None = None
    duration: DurationS | None = None
    from_: Annotated[date | None, Field(alias="from")] = None
    until: date | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)]

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, moment: datetime | None) -> datetime | None:
        # Stored as int64 ns (ends in 2262): a later date crashed `run` instead of erring here.
        return check_datetime(moment) if moment is not None and moment.tzinfo is not None else moment

    @field_validator("from_", "until")
    @classmethod
    def _day_in_range(cls, day: date | None) -> date | None:
        return check_day(day)

    @field_validator("until")
    @classmethod
    def _after_from(cls, until: date | None, info: ValidationInfo) -> date | None:
        first = info.data.get("from_")
        if until is not None and first is not None and until < first:
            raise ValueError(f"until {until.isoformat()} is before from {first.isoformat()}")
        return until

    @model_validator(mode="after")
    def _order(self) -> "MaintenanceWindowConfig":
        if (self.start and self.start.tzinfo is None) or (self.end and self.end.tzinfo is None):
            raise ValueError("start and end need a UTC offset, e.g. 2026-12-01T02:00:00+08:00")
        check_schedule(self.start, self.end, self.every, self.duration, self.from_, self.until)
        return self


RouteConfig = Annotated[Union[tuple(cfg for cfg, _ in ROUTE_TYPES.values())], Field(discriminator="type")]
"""One entry of `notify.routes`: the registered route type its `type` names."""


class NotifyConfig(Strict):
    """Where faults are sent (`routes`, each with its own selector, minimum severity,
    reminders and escalation) and who is on duty (`duty`, for WeCom @mentions)."""

    routes: list[RouteConfig] = []
    duty: list[DutyShift] = []

    @model_validator(mode="after")
    def _names(self) -> "NotifyConfig":
        names = [r.name for r in self.routes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route names must be unique: {', '.join(twice)}")
        for r in self.routes:
            if r.escalate_to is not None and r.escalate_to not in names:
                raise ValueError(f"route {r.name}: escalate_to names no route: {r.escalate_to}")
            if r.escalate_to == r.name:
                raise ValueError(f"route {r.name}: escalate_to must name another route")
            if (r.escalate_to is None) != (r.escalate_after_s is None):
                raise ValueError(f"route {r.name}: escalate_after_s and escalate_to go together")
        return self
