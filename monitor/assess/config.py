"""config.yaml section `assessment` (考核): how availability over a period is computed, and the
sections of work orders (`workorders`, `sla`: monitor.assess.config_workorders) and of the
score (`score`: monitor.assess.config_score).

Buyers' platforms differ in what "online rate of the quarter" means (CONTRACTS.md A: "前端设备
整体正常运行率不得低于95%"), so the definition is configuration, not code:

- `point_time`: Σ online time ÷ Σ counted time over the points (time-weighted);
- `daily_snapshot`: the platform looks at the fleet at fixed times each day (e.g. 09:00 and
  15:00) and the period's rate is the mean of the rates it saw.

`unknown_policy` says what the contract does with time fleetmon could not observe (daemon
stopped, probe stalled, state not yet decided): left out of the ratio (`exclude`, default),
or counted as online / offline.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PrivateAttr, field_validator

from monitor.assess.config_score import ScoreConfig
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.core.config_base import Strict

_CHECK_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class Definition(StrEnum):
    POINT_TIME = "point_time"
    DAILY_SNAPSHOT = "daily_snapshot"


class UnknownPolicy(StrEnum):
    EXCLUDE = "exclude"
    COUNT_AS_UP = "count_as_up"
    COUNT_AS_DOWN = "count_as_down"


class AvailabilityAssessmentConfig(Strict):
    """`assessment.availability`."""

    definition: Definition = Definition.POINT_TIME
    """point_time (time-weighted) | daily_snapshot (mean of the rates at `daily_check_times`)."""
    daily_check_times: Annotated[list[str], Field(min_length=1, max_length=24)] = ["09:00", "15:00"]
    """Local times ("HH:MM", the config's `timezone`) of the daily checks, for daily_snapshot."""
    unknown_policy: UnknownPolicy = UnknownPolicy.EXCLUDE
    """What unknown time (not watched, probe stalled, undecided) counts as in the rate."""

    @field_validator("daily_check_times")
    @classmethod
    def _times(cls, times: list[str]) -> list[str]:
        for text in times:
            if not _CHECK_TIME.fullmatch(text):
                raise ValueError(f"daily check time {text!r} is not HH:MM (00:00 … 23:59)")
        if len(set(times)) != len(times):
            raise ValueError("daily_check_times lists a time twice")
        return sorted(times)

    def check_minutes(self) -> tuple[int, ...]:
        """The check times as minutes after local midnight, ascending."""
        return tuple(int(t[:2]) * 60 + int(t[3:]) for t in self.daily_check_times)


class AssessmentConfig(Strict):
    """config.yaml section `assessment`.

    - availability: how the online rate of a period is computed (above).
    - workorders: which faults open work orders, automatic closing, notice routes, long-offline
      points (monitor.assess.config_workorders.WorkOrderConfig).
    - sla: the SLA clocks of work orders: a tender preset, policies, the working-time calendar
      (monitor.assess.config_workorders.SlaConfig).
    - score: the assessment scheme and the fee of one period (monitor.assess.config_score);
      None: no score is computed (`fleetmon score` says how to configure one).
    """

    availability: AvailabilityAssessmentConfig = AvailabilityAssessmentConfig()
    workorders: WorkOrderConfig = WorkOrderConfig()
    sla: SlaConfig = SlaConfig()
    score: ScoreConfig | None = None

    # The SLA clocks built from `sla` when the config file was loaded (its holiday file read
    # then, so that a bad one is a config error at its line): see clocks().
    _sla: Sla | None = PrivateAttr(default=None)

    def clocks(self, timezone: str) -> Sla:
        """The SLA clocks of `sla`: those built by the config loader (monitor.app.config), or,
        for a config made in code, built now (calendar file relative to the working
        directory). Raises CalendarError for a bad holiday file."""
        if self._sla is None:
            self._sla = Sla.from_config(self.sla, timezone)
        return self._sla
