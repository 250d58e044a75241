"""What a report is built from: `ReportFacts`, gathered once (gather.py) from the state database,
the work-order book and InfluxDB through the functions the API and the CLI use, and handed to
the builders (daily.py, periodic.py, quarterly.py) as plain data, so that building is a pure
function and every figure in a report is one those functions gave.

Units: UTC ns for times, percent (0–100) for the layers' rates (the builders turn them into the
document's fractions), ms and % for InfluxDB's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from monitor.assess.availability import ALL, AvailabilityReport, Figures
from monitor.assess.model import Exclusion
from monitor.assess.orders import WorkOrder
from monitor.assess.periods import Period
from monitor.assess.score import EvaluatedScore
from monitor.assess.sla import BreachReport, ClockStatus
from monitor.core.model import Basis
from monitor.metrics.results import IcmpSummary
from rules.model import Fault

NS = 1_000_000_000
DAY_NS = 86_400 * NS


@dataclass(frozen=True, slots=True)
class TrendStep:
    """One step of a trend (a day, a week or a month of the period): its label for people
    ("07-01", "W27", "2026-07"), its bounds, and the online rate in % (basis online, None when
    nothing was counted) of the fleet and of each region, all kinds and cameras:
    (scope, group, kind) → rate, as availability() gave it for the step."""

    label: str
    start_ns: int
    end_ns: int
    rates: Mapping[tuple[str, str, str], float | None]

    def rate(self, scope: str = "fleet", group: str = ALL, kind: str = ALL) -> float | None:
        return self.rates.get((scope, group, kind))


@dataclass(frozen=True, slots=True)
class Links:
    """Line quality from InfluxDB (icmp results summed per device, InfluxResults.icmp_summary):
    `stats` by device id, or None with `unavailable` saying why (InfluxDB disabled, not
    reachable); the limits a line is judged against (RTT in ms, loss in %)."""

    stats: Mapping[str, IcmpSummary] | None
    unavailable: str | None
    rtt_limit_ms: float
    loss_limit_pct: float


@dataclass(frozen=True, slots=True)
class ScoreMissing:
    """Why a report that could carry a score has none: `reason` "no_scheme" (none configured),
    "other_period" (the scheme assesses another period: `detail` names it), "no_value" (a
    metric had no value: `detail` is the error)."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """Everything one report shows.

    - kind: the report type; period: the assessment period (clipped to now when it has not
      ended: `period.clipped`); generated_ns: when gathered; timezone, language: for people.
    - availability: every point of the fleet over the period, the downtime of work orders with
      an excluded cause taken out (`exclusions`, WorkOrderBook.excluded).
    - trend: the period step by step (days; weeks for a half-year; months for a year).
    - faults: every fault open at some time of the period (rules.alerting.faults.faults_between).
    - orders: every work order open at some time of the period, as it stands when gathered;
      at_end: those still open at the period's end as they stood then (their events up to the
      end), with their SLA clocks at the end (`clocks`, by reference); breaches: clocks whose
      deadline fell in the period (WorkOrderBook.breaches).
    - offline: points offline at the period's end → the start of their offline run (UTC ns),
      on the bases of the long-offline check; long_offline_days: its threshold.
    - links: line quality from InfluxDB.
    - score: the period's evaluated score when a scheme assesses this kind of period, else None
      with `score_missing` saying why (for the quarterly, half-year and annual reports).
    - trend_step: "day", "week" or "month".
    - target_pct: the online-rate target (monitor.core.contract).
    """

    kind: str
    period: Period
    generated_ns: int
    timezone: str
    language: str
    availability: AvailabilityReport
    exclusions: tuple[Exclusion, ...]
    trend: tuple[TrendStep, ...]
    faults: tuple[Fault, ...]
    orders: tuple[WorkOrder, ...]
    at_end: tuple[WorkOrder, ...]
    clocks: Mapping[str, tuple[ClockStatus, ...]]
    breaches: BreachReport
    offline: Mapping[str, int]
    long_offline_days: float
    links: Links
    target_pct: float
    score: EvaluatedScore | None = None
    score_missing: ScoreMissing | None = None
    trend_step: str = "day"

    @property
    def start_ns(self) -> int:
        return self.period.start_ns

    @property
    def end_ns(self) -> int:
        return self.period.end_ns

    def figures(self, scope: str = "fleet", group: str = ALL, kind: str = ALL,
                basis: Basis = Basis.ONLINE) -> Figures | None:
        """A group's figures on `basis` (None when the group or the basis has none)."""
        try:
            return self.availability.group(scope, group, kind).figures.get(basis)
        except KeyError:
            return None

    def rate(self, scope: str = "fleet", group: str = ALL, kind: str = ALL, basis: Basis = Basis.ONLINE) -> float | None:
        """A group's rate in %, None when nothing was counted."""
        figures = self.figures(scope, group, kind, basis)
        return None if figures is None else figures.rate_pct

    def fired(self) -> list[Fault]:
        """Faults that fired in the period (pending ones never notified are left out)."""
        return [f for f in self.faults if f.fired_ns is not None and self.start_ns <= f.fired_ns < self.end_ns]

    def reported(self) -> list[WorkOrder]:
        """Orders reported in the period, cancelled ones (误报/重复) left out."""
        return [o for o in self.orders if self.start_ns <= o.reported_ns < self.end_ns and not o.cancelled]
