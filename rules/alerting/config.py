"""Config of the alerting layer: maintenance windows (config.yaml section `maintenance`) and
notifications (`notify`: routes and the duty roster)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Union

from pydantic import Field, field_validator, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.timecheck import check_datetime
from rules.alerting.duty import DutyShift
from rules.alerting.notifiers import ROUTE_TYPES


class MaintenanceWindowConfig(Strict):
    """A scheduled maintenance window (计划维护): faults of matching devices are not notified
    inside it, and the time is marked in the state database so reports can exclude it."""

    match: SelectorConfig
    start: datetime
    end: datetime
    reason: Annotated[str, Field(min_length=1, max_length=200)]

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, moment: datetime) -> datetime:
        # Stored as int64 ns (ends in 2262): a later date crashed `run` instead of erring here.
        return check_datetime(moment) if moment.tzinfo is not None else moment

    @model_validator(mode="after")
    def _order(self) -> "MaintenanceWindowConfig":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-12-01T02:00:00+08:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
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
