"""Config of work orders (工单), their SLA clocks and long-offline points: the sections
`assessment.workorders` and `assessment.sla` of config.yaml, and the shape of SLA preset files
(monitor/assess/presets/*.yaml, shipped for the tenders in ../shared/CONTRACTS.md).

Durations are written as seconds (a number) or as text: "15m", "2h", "48h", "3d", "1h30m",
"90s" (d = 24 h of calendar time, or of working time for a clock counted in business hours).
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from monitor.core.config_base import Strict
from monitor.core.model import Basis, Kind
from rules.model import Severity

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(value: object) -> float:
    """Seconds from 900, 900.0, "15m", "1h30m", "3d" (> 0). Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is seconds (a number) or text like 15m, 2h, 3d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.fullmatch(value.strip().lower()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.strip().lower()))
    else:
        raise ValueError(f"{value!r} is not a duration: seconds (a number) or text like 15m, 2h, 48h, 3d, 1h30m")
    if seconds <= 0:
        raise ValueError("a duration must be more than 0 s")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds (float > 0), written as a number or as "15m", "2h", "3d" …"""


class Clock(StrEnum):
    """The SLA clocks of a work order, each started when the fault is reported and stopped by
    a stamp (see monitor.assess.sla for which)."""

    RESPONSE = "response"  # 响应
    ARRIVAL = "arrival"  # 到场
    RESTORE = "restore"  # 修复 / 排除
    REPLACEMENT = "replacement"  # 更换


class ClockSpec(Strict):
    """One clock of a policy: how long the contractor has.

    - within: the deadline, from the report.
    - basis: "calendar" (every hour counts) or "business" (only working hours of the calendar
      count, 工作时间).
    - off_hours: the deadline instead when the report falls outside working hours (非工作时间;
      counted in calendar time, so only with basis calendar), e.g. Zhangjiagang "工作时间1小时
      响应，非工作时间 3小时响应".
    - on_site: the deadline instead once the order is on site (resolution on_site, an arrival or
      a replacement stamped), e.g. Qionglai "须现场处理的故障 48小时内排除".
    - no_spare: the deadline instead when the order is marked "no spare part" (无备件), e.g.
      Songjiang 48 h.
    - label: the contract's own word for the clock, shown to people (default: 响应/到场/修复/更换).
    Precedence when several apply: no_spare, on_site, off_hours, within.
    """

    within: Duration
    basis: Literal["calendar", "business"] = "calendar"
    off_hours: Duration | None = None
    on_site: Duration | None = None
    no_spare: Duration | None = None
    label: Annotated[str, Field(min_length=1, max_length=40)] | None = None

    @model_validator(mode="after")
    def _off_hours_in_calendar_time(self) -> "ClockSpec":
        if self.off_hours is not None and self.basis == "business":
            raise ValueError("off_hours is a deadline in calendar time for reports outside working hours: "
                             "it needs basis calendar")
        return self


class PolicyMatch(Strict):
    """Which orders a policy applies to: by the order's severity and the kind of its (first)
    device. Empty lists match any."""

    severity: list[Severity] = []
    kinds: list[Kind] = []


class Policy(Strict):
    """Clocks for the orders it matches. Every matching policy applies, in order (a preset's
    first, then the config's): a later one replaces the clocks it names, and `null` removes a
    clock. `source`: the tender clause the figures come from."""

    match: PolicyMatch = PolicyMatch()
    clocks: dict[Clock, ClockSpec | None]
    source: str | None = None


class Preset(Strict):
    """An SLA preset file (monitor/assess/presets/NAME.yaml): a tender's clocks as data.

    - name: as selected in config (`assessment.sla.preset`), equal to the file's stem.
    - title / source: the tender and its clauses, for people.
    - long_offline_days: a point offline this long is escalated (default when config gives none).
    """

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    title: str
    source: str
    policies: Annotated[list[Policy], Field(min_length=1)]
    long_offline_days: Annotated[float, Field(gt=0)] | None = None


PRESETS_DIR = Path(__file__).with_name("presets")
"""The shipped SLA presets (NAME.yaml) and the example holiday calendar (package data)."""


def preset_names() -> list[str]:
    """Names of the shipped SLA presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if not p.name.startswith("calendar-"))


@lru_cache(maxsize=None)
def load_preset(name: str) -> Preset:
    """The shipped preset `name`, validated. Raises ValueError naming the known presets, or
    the file and the problem when a shipped file is broken (a bug, caught by the tests)."""
    if name not in preset_names():
        raise ValueError(f"unknown SLA preset {name!r}; shipped: {', '.join(preset_names())}")
    path = PRESETS_DIR / f"{name}.yaml"
    try:
        preset = Preset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if preset.name != name:
        raise ValueError(f"{path}: name {preset.name!r} differs from the file name")
    return preset


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_hours(text: str) -> tuple[time, time | None]:
    """"09:00-17:30" → (09:00, 17:30); an end of 24:00 is None (midnight at the day's end).
    Raises ValueError."""
    m = _HOURS.match(text)
    if not m:
        raise ValueError(f"{text!r}: working hours are written HH:MM-HH:MM, e.g. 09:00-17:30")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: not a time of day")
    start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
    if end is not None and end <= start:
        raise ValueError(f"{text!r}: the end must be after the start (a span over midnight is two spans)")
    return start, end


class CalendarConfig(Strict):
    """Working time (工作时间) for business-hour clocks and off-hours deadlines.

    - workdays: the usual working days of the week.
    - hours: the working spans of a working day, local time, in order, not overlapping
      (e.g. ["09:00-12:00", "13:30-17:30"] for a lunch break; "00:00-24:00" for all day).
    - file: holidays (放假) and swapped working days (调休上班) as YAML or CSV (see
      monitor.assess.calendar); relative to the config file. The shipped
      monitor/assess/presets/calendar-cn-2026.example.yaml is an EXAMPLE to check and copy.
    The time zone is the config's `timezone`.
    """

    workdays: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    hours: Annotated[list[str], Field(min_length=1)] = ["09:00-17:30"]
    file: Path | None = None

    @field_validator("workdays")
    @classmethod
    def _distinct_days(cls, days: list[str]) -> list[str]:
        if len(set(days)) != len(days):
            raise ValueError("a weekday is listed twice")
        return days

    @field_validator("hours")
    @classmethod
    def _spans(cls, hours: list[str]) -> list[str]:
        spans = [parse_hours(h) for h in hours]
        for (_, end), (start, _), text in zip(spans, spans[1:], hours[1:]):
            if end is None or start < end:
                raise ValueError(f"{text!r}: spans must be in order and must not overlap")
        return hours

    def weekday_numbers(self) -> frozenset[int]:
        """Monday = 0 … Sunday = 6, as datetime.weekday()."""
        return frozenset(_WEEKDAYS.index(d) for d in self.workdays)


class SlaConfig(Strict):
    """config.yaml `assessment.sla`: the SLA clocks of work orders.

    - preset: a shipped tender preset by name (qionglai, nantong, zhangjiagang, songjiang), or
      none; `policies` apply after it (a later policy replaces the clocks it names).
    - calendar: working time, for business-hour clocks and off-hours deadlines.
    - warn_at_pct: warn the routes once a running clock has used this share of its time
      (null: no early warning; breaches are always sent).
    """

    preset: str | None = None
    policies: list[Policy] = []
    calendar: CalendarConfig = CalendarConfig()
    warn_at_pct: Annotated[float, Field(gt=0, lt=100)] | None = 80.0

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str | None) -> str | None:
        if name is not None:
            load_preset(name)
        return name


class OpenRule(Strict):
    """Open a work order when a fault fires that matches: its rule name (config `rules[].name`;
    empty: any), at least `min_severity`, and its device of one of `kinds` (empty: any). Only
    faults about a device open orders (the device and the points it affects)."""

    rules: list[str] = []
    min_severity: Severity = Severity.MINOR
    kinds: list[Kind] = []


class LongOfflineConfig(Strict):
    """Points offline this long (tender: "保证掉线点位一周内要重新上线").

    - days: the threshold (default: the preset's, else 7).
    - bases: a point is offline while any of these bases of it is down or unreachable
      (default: network and video, the contract's "online").
    - escalate: "order" opens a work order (source long_offline) for a point without an open
      one, or marks its open order escalated, with one message on the routes; "off" lists only.
      A point whose open order has an excluded cause is listed, never escalated.
    - severity: of the orders opened for long-offline points.
    """

    days: Annotated[float, Field(gt=0, le=365)] | None = None
    bases: Annotated[list[Basis], Field(min_length=1)] = [Basis.NETWORK, Basis.VIDEO]
    escalate: Literal["order", "off"] = "order"
    severity: Severity = Severity.MAJOR

    @field_validator("bases")
    @classmethod
    def _measured(cls, bases: list[Basis]) -> list[Basis]:
        if Basis.ONLINE in bases:
            raise ValueError("bases lists measured bases: network, service, video, picture")
        return bases


class WorkOrderConfig(Strict):
    """config.yaml `assessment.workorders`.

    - open_on: the faults that open a work order when they fire (none by default).
    - auto_close: when an order's fault resolves on its own: "close" records the restore and
      closes the order, "propose" records the restore and proposes closing to the duty engineer,
      "off" leaves the order alone.
    - routes: notification routes (`notify.routes[].name`) that hear SLA warnings, breaches and
      long-offline escalations.
    - tick_s: how often clocks are evaluated (also right after a fault fires or resolves).
    - prefix: of the reference numbers, e.g. WO-20261204-0007.
    """

    open_on: list[OpenRule] = []
    auto_close: Literal["close", "propose", "off"] = "propose"
    routes: list[str] = []
    long_offline: LongOfflineConfig = LongOfflineConfig()
    tick_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    prefix: Annotated[str, Field(pattern=r"^[A-Z]{1,8}$")] = "WO"

    @field_validator("routes")
    @classmethod
    def _distinct_routes(cls, routes: list[str]) -> list[str]:
        if len(set(routes)) != len(routes):
            raise ValueError("a route is listed twice")
        return routes
