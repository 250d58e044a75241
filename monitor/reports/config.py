"""config.yaml section `reports`: where reports are kept and for how long, when each type is made,
in which formats, and where they go (WeCom group robots, e-mail).

Example:

    reports:
      directory: /var/lib/fleetmon/reports
      keep_days: 400
      formats: [pdf, xlsx]
      schedule:
        - {report: daily, at: "08:00"}
        - {report: weekly, at: "08:30", weekday: 1}     # Monday, for the week before
        - {report: monthly, at: "09:00", day: 1}         # the 1st, for the month before
        - {report: quarterly, at: "09:00", day: 1}       # 1 Jan/Apr/Jul/Oct, for the quarter before
      delivery:
        wecom: [duty-group]                              # names of notify.routes of type wecom
        email:
          host: smtp.example.cn
          port: 465
          security: tls
          username: reports@example.cn
          password_env: FLEETMON_SMTP_PASSWORD
          sender: reports@example.cn
          to: [buyer@example.cn]

Times are local times of the top-level `timezone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import ConfigDict, Field, field_validator, model_validator

from monitor.core.config_base import Strict
from monitor.reports.document import REPORT_TYPES
from rules.alerting.notifiers.base import RouteConfigBase
from rules.alerting.notifiers.email import SmtpConfig
from rules.alerting.notifiers.wecom import WeComConfig

ReportType = Literal["daily", "weekly", "monthly", "quarterly", "half-year", "annual"]
assert get_args(ReportType) == REPORT_TYPES, "the config's report types are the document's"
Format = Literal["pdf", "xlsx"]



class ScheduleEntry(Strict):
    """One scheduled report type (config `reports.schedule[]`).

    - report: the type; the report made is for the last whole period before the run time
      (daily: yesterday; weekly: the ISO week before; monthly: the month before; quarterly,
      half-year, annual: the quarter, half or year before).
    - at: local time of day ("08:00").
    - weekday: weekly only, ISO (1 = Monday … 7 = Sunday); default Monday.
    - day: monthly and longer, the day of the month after the period ends (1 … 28, so that it
      exists in every month); default 1. A later day leaves time for work orders to close.
    - formats: overrides `reports.formats` for this type.
    - deliver: send it (WeCom, e-mail) or only keep it in the directory.
    """

    report: ReportType
    at: time = time(8, 0)
    weekday: Annotated[int, Field(ge=1, le=7)] | None = None
    day: Annotated[int, Field(ge=1, le=28)] | None = None
    formats: list[Format] | None = None
    deliver: bool = True

    @field_validator("at")
    @classmethod
    def _whole_minute(cls, at: time) -> time:
        if at.second or at.microsecond or at.tzinfo is not None:
            raise ValueError('a local time of day in whole minutes, like "08:00" (the zone is the top-level timezone)')
        return at

    @field_validator("formats")
    @classmethod
    def _some_formats(cls, formats: list[str] | None) -> list[str] | None:
        if formats is not None and not formats:
            raise ValueError("list at least one format, or leave formats out to use reports.formats")
        return formats

    @model_validator(mode="after")
    def _fields_for_type(self) -> ScheduleEntry:
        if self.weekday is not None and self.report != "weekly":
            raise ValueError(f"weekday is for weekly reports, not {self.report}")
        if self.day is not None and self.report in ("daily", "weekly"):
            raise ValueError(f"day is for monthly and longer reports, not {self.report}")
        return self


class EmailConfig(SmtpConfig):
    """Reports by e-mail (config `reports.delivery.email`): the SMTP server, account and
    recipients (rules.alerting.notifiers.email.SmtpConfig, shared with the e-mail alarm route), and

    - max_attachment_mb: a report file larger than this is not attached (the mail says where it
      is kept instead); many servers refuse messages over 20–25 MB.
    """

    max_attachment_mb: Annotated[float, Field(gt=0, le=100)] = 20.0


class DeliveryConfig(Strict):
    """Where scheduled reports go (config `reports.delivery`).

    - wecom: names of WeCom robot routes in `notify.routes` (type wecom): each group gets the
      report files and a short markdown summary with the headline figures; the robot key and
      URL are the route's.
    - email: an SMTP server and recipients (None: no e-mail).
    """

    # An error must not echo its input: it may hold an inline password.
    model_config = ConfigDict(hide_input_in_errors=True)

    wecom: list[str] = []
    email: EmailConfig | None = None

    @field_validator("wecom")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"route named twice: {', '.join(twice)}")
        return names


class ReportsConfig(Strict):
    """config.yaml section `reports` (see the module docstring for an example).

    - directory: where report files are kept (made if missing).
    - keep_days: files older than this (by the time they were written) are deleted.
    - formats: the formats made by default.
    - pdf_max_rows: a table longer than this is cut short in the PDF, with a note that the XLSX
      has every row (None: never cut); a 10,000-row table costs WeasyPrint two minutes and 2 GB.
    - catch_up: after a stop, how many missed periods of one type are made at start (the most
      recent ones), so that a month offline does not bury the group in 30 daily reports.
    - schedule: which types are made when; empty = none (reports only on demand).
    - delivery: WeCom routes and e-mail.
    """

    model_config = ConfigDict(hide_input_in_errors=True)  # see DeliveryConfig

    directory: Path = Path("/var/lib/fleetmon/reports")
    keep_days: Annotated[int, Field(ge=1, le=3660)] = 400
    formats: Annotated[list[Format], Field(min_length=1)] = ["pdf", "xlsx"]
    pdf_max_rows: Annotated[int, Field(ge=10)] | None = None
    catch_up: Annotated[int, Field(ge=1, le=366)] = 7
    schedule: list[ScheduleEntry] = []
    delivery: DeliveryConfig = DeliveryConfig()

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, formats: list[str]) -> list[str]:
        return list(dict.fromkeys(formats))

    @field_validator("schedule")
    @classmethod
    def _one_entry_per_type(cls, entries: list[ScheduleEntry]) -> list[ScheduleEntry]:
        types = [e.report for e in entries]
        twice = sorted({t for t in types if types.count(t) > 1})
        if twice:
            raise ValueError(f"one schedule entry per report type; twice: {', '.join(twice)}")
        return entries

    def formats_for(self, report: str) -> list[str]:
        """The formats made for scheduled `report` (its entry's, else `formats`)."""
        entry = next((e for e in self.schedule if e.report == report), None)
        return list(entry.formats) if entry is not None and entry.formats else list(self.formats)


def wecom_routes(reports: ReportsConfig, routes: Sequence[RouteConfigBase]) -> list[WeComConfig]:
    """The WeCom route configs named by `reports.delivery.wecom`, in that order, from the
    configured routes (`notify.routes`). Raises ValueError listing every name that is no route
    or names a route that is not a WeCom robot: for FleetmonConfig's cross-section check and
    for the wiring."""
    by_name = {r.name: r for r in routes}
    found, problems = [], []
    for name in reports.delivery.wecom:
        route = by_name.get(name)
        if isinstance(route, WeComConfig):
            found.append(route)
        elif route is None:
            known = ", ".join(sorted(n for n, r in by_name.items() if isinstance(r, WeComConfig))) or "none"
            problems.append(f"reports.delivery.wecom: no route named {name!r} in notify.routes (WeCom routes: {known})")
        else:
            problems.append(f"reports.delivery.wecom: route {name!r} is a {route.type} route, not a WeCom robot")
    if problems:
        raise ValueError("; ".join(problems))
    return found
