"""The score's inputs from fleetmon's own evidence: a MetricSource (monitor.assess.inputs) over
one period's availability report (monitor.assess.availability) and the work orders reported
in it (WorkOrderBook.facts → monitor.assess.order_ratios).

What each metric of the catalog is here, and what it carries as evidence (so that every figure
of a score opens down to which points, which orders, which minutes):

| metric | value | evidence |
|---|---|---|
| online_rate_pct | the fleet's cameras on basis `online`, by the configured definition and unknown policy (point_time: up ÷ counted minutes; daily_snapshot: the mean over the daily checks) | each camera with offline, unknown or excluded time: its minutes, its outages |
| availability_pct | the same over every point of every kind | each system's rate and offline minutes; each point with offline time |
| max_outage_minutes | the longest single outage of a point on `online` (down and unreachable joined) | each system's longest outage with its point and times; each point's longest |
| camera_replacement_timely_pct, other_replacement_timely_pct, arrival_timely_pct | order_ratios over the period's orders | each order, its outcome |
| faults_per_system_half_year, major_faults_per_system_half_year | order_ratios.faults_per_system, the system of an order's first device | each order, each system |
| report_nonconformities, serious_incidents, data_leaks | entered by hand (`manual`) | none: fleetmon does not measure them |

A "system" (系统) is the points of one site, one region or one kind (`assessment.score.systems`).
Downtime of work orders with an excluded cause is excluded time in the report already (the
caller passes WorkOrderBook.excluded to availability), so it neither lowers a rate nor makes an
outage. A metric the source cannot give (a manual one not entered, a rate with nothing counted)
raises LookupError saying why: the score then fails instead of scoring on a guess.
"""

from __future__ import annotations

from typing import Callable, Iterable, Literal, Mapping, Sequence

from monitor.assess.availability import AvailabilityReport, Figures, PointAvailability
from monitor.assess.config import Definition, UnknownPolicy
from monitor.assess.inputs import METRICS, Evidence, MetricValue, PeriodLike, Unit
from monitor.assess.order_ratios import (
    OrderFacts,
    arrival_timely_pct,
    camera_replacement_timely_pct,
    faults_per_system,
    other_replacement_timely_pct,
)
from monitor.assess.periods import format_local
from monitor.core.model import Basis, Device, Kind

NS_PER_MINUTE = 60 * 10**9
MANUAL = ("report_nonconformities", "serious_incidents", "data_leaks")
"""Metrics fleetmon does not measure: they are entered by hand for the period."""
MAX_OUTAGES_SHOWN = 3
"""Outages spelled out in a point's evidence line (the rest are counted)."""

Systems = Literal["site", "region", "kind"]


def system_of(systems: Systems) -> Callable[[Device], str]:
    """The function naming a device's system: its site, region or kind."""
    if systems == "site":
        return lambda d: d.site
    if systems == "region":
        return lambda d: d.region
    return lambda d: d.kind.value


def manual_values(values: Mapping[str, float]) -> dict[str, MetricValue]:
    """Values entered by hand ({metric: value}) as MetricValues. Raises ValueError naming the
    metric for a name that is not a manual metric, or a value its unit refuses."""
    out = {}
    for name, value in values.items():
        if name not in MANUAL:
            raise ValueError(f"{name} is not entered by hand (those are: {', '.join(MANUAL)})")
        try:
            out[name] = MetricValue(name, value, METRICS[name].unit, note="entered by hand")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return out


class AssessmentSource:
    """MetricSource of one period: `report` is the availability of every point of the fleet
    over it (exclusions applied), `orders` the work orders reported in it, `as_of_ns` the
    moment of evaluation (a deadline not yet passed then is pending, not late), `systems` what
    a system is, `manual` the values entered by hand."""

    def __init__(
        self,
        report: AvailabilityReport,
        orders: Sequence[OrderFacts],
        as_of_ns: int,
        *,
        systems: Systems = "site",
        manual: Mapping[str, MetricValue] | None = None,
    ) -> None:
        self.report = report
        self.orders = tuple(orders)
        self.as_of_ns = as_of_ns
        self.systems = systems
        self._system = system_of(systems)
        self._manual = dict(manual or {})

    def metric(self, name: str, period: PeriodLike) -> MetricValue:
        """The value of catalog metric `name` over `period` (the report's). Raises LookupError
        for a period other than the report's, an unknown metric, a manual metric not entered,
        or a rate with nothing counted."""
        if (period.start_ns, period.end_ns) != (self.report.period.start_ns, self.report.period.end_ns):
            raise LookupError(f"this source holds {self.report.period.label}, not {period.label}")
        if name == "online_rate_pct":
            return self._online_rate()
        if name == "availability_pct":
            return self._availability()
        if name == "max_outage_minutes":
            return self._longest_outage()
        if name == "camera_replacement_timely_pct":
            return camera_replacement_timely_pct(self.orders, period, self.as_of_ns)
        if name == "other_replacement_timely_pct":
            return other_replacement_timely_pct(self.orders, period, self.as_of_ns)
        if name == "arrival_timely_pct":
            return arrival_timely_pct(self.orders, period, self.as_of_ns)
        if name == "faults_per_system_half_year":
            return faults_per_system(self.orders, period)
        if name == "major_faults_per_system_half_year":
            return faults_per_system(self.orders, period, major_only=True)
        if name in MANUAL:
            if name not in self._manual:
                raise LookupError(
                    f"metric {name} ({METRICS[name].label.zh}) is not measured by fleetmon: enter its value for "
                    f"{period.label} by hand"
                )
            return self._manual[name]
        raise LookupError(f"no metric {name} (known: {', '.join(METRICS)})")

    # -- availability metrics ---------------------------------------------------------------------

    def _rate(self, name: str, kind: str, evidence: Sequence[Evidence], points: int, shown: str) -> MetricValue:
        """The fleet group of `kind` ("all" or a kind) on basis online over its `points`, with
        `evidence` (described as `shown` in the note)."""
        report = self.report
        try:
            figures = report.group("fleet", "all", kind).figures[Basis.ONLINE]
        except KeyError:
            figures = None
        if figures is None or figures.rate_pct is None:
            what = "camera" if kind == "camera" else "point"
            raise LookupError(f"{name}: no {what} time was counted in {report.period.label} (nothing to rate)")
        policy = {UnknownPolicy.EXCLUDE: "left out", UnknownPolicy.COUNT_AS_UP: "counted as online",
                  UnknownPolicy.COUNT_AS_DOWN: "counted as offline"}[report.unknown_policy]
        requires = "+".join(b.value for b in report.online_requires)
        if report.definition is Definition.POINT_TIME:
            formula = "minutes online ÷ minutes counted"
        else:
            formula = f"the mean over {len(report.check_instants_ns)} daily checks of points online ÷ points counted"
        note = (f"{report.definition.value}: {formula}, basis online ({requires}), {points} points; unknown time "
                f"{policy}; 延建/拆除, maintenance and excluded causes taken out; evidence: {shown}")
        if report.definition is Definition.POINT_TIME:
            assert figures.rate_parts is not None  # point_time rates always have their parts
            up, counted = figures.rate_parts
            return MetricValue(name, 100 * up / counted, Unit.PCT, up / NS_PER_MINUTE, counted / NS_PER_MINUTE,
                               tuple(evidence), note)
        return MetricValue(name, figures.rate_pct, Unit.PCT, evidence=tuple(evidence), note=note)

    def _point_evidence(self, point: PointAvailability) -> Iterable[Evidence]:
        figures = point.figures.get(Basis.ONLINE)
        if figures is None:
            return
        device = point.device
        if figures.offline_ns:
            yield Evidence("point", device.id, "down", figures.offline_ns / NS_PER_MINUTE,
                           f"{device.name}, {device.site}: {self._outages(point)}")
        if figures.unknown_ns:
            yield Evidence("point", device.id, "unknown", figures.unknown_ns / NS_PER_MINUTE,
                           f"{device.name}: not watched {_min(figures.blind_ns)} min, probe agent silent "
                           f"{_min(figures.agent_silent_ns)} min, undecided "
                           f"{_min(figures.undecided_ns)} min ({self.report.unknown_policy.value})")
        if figures.excluded_ns:
            reasons = "; ".join(dict.fromkeys(f"{e.kind} {e.reason}" for e in point.exclusions)) or "-"
            yield Evidence("point", device.id, "excluded", figures.excluded_ns / NS_PER_MINUTE,
                           f"{device.name}: {reasons}")

    def _outages(self, point: PointAvailability) -> str:
        spans = _joined(point)
        tz = self.report.period.timezone
        shown = [f"{format_local(s, tz)} – {format_local(e, tz)[11:]}" for s, e in spans[:MAX_OUTAGES_SHOWN]]
        more = f" and {len(spans) - MAX_OUTAGES_SHOWN} more" if len(spans) > MAX_OUTAGES_SHOWN else ""
        longest = max((e - s for s, e in spans), default=0)
        return f"{len(spans)} outage(s): {', '.join(shown)}{more}; longest {_min(longest)} min"

    def _online_rate(self) -> MetricValue:
        cameras = [p for p in self.report.points.values() if p.device.kind is Kind.CAMERA]
        evidence = [e for p in cameras for e in self._point_evidence(p)]
        return self._rate("online_rate_pct", "camera", evidence, len(cameras),
                          "the cameras with offline, unknown or excluded time")

    def _availability(self) -> MetricValue:
        points = list(self.report.points.values())
        evidence = []
        for system, figures in sorted(self._system_figures().items()):
            rate = "-" if figures.rate_pct is None else f"{figures.rate_pct:.4f} %"
            evidence.append(Evidence("system", system, "counted", figures.offline_ns / NS_PER_MINUTE,
                                     f"{self.systems} {system}: availability {rate}; minutes offline"))
        evidence += [e for p in points for e in self._point_evidence(p) if e.outcome == "down"]
        return self._rate("availability_pct", "all", evidence, len(points),
                          "each system (its offline minutes), the points with offline time")

    def _system_figures(self) -> dict[str, Figures]:
        scope = {"site": "site", "region": "region", "kind": "fleet"}[self.systems]
        out = {}
        for group in self.report.groups:
            if group.scope != scope or Basis.ONLINE not in group.figures:
                continue
            if self.systems == "kind" and group.kind != "all":
                out[group.kind] = group.figures[Basis.ONLINE]
            elif self.systems != "kind" and group.kind == "all":
                out[group.group] = group.figures[Basis.ONLINE]
        return out

    def _longest_outage(self) -> MetricValue:
        tz = self.report.period.timezone
        per_system: dict[str, tuple[int, str, int, int]] = {}
        points = []
        longest = 0
        for point in self.report.points.values():
            spans = _joined(point)
            if not spans:
                continue
            start, end = max(spans, key=lambda s: (s[1] - s[0], -s[0]))
            length = end - start
            longest = max(longest, length)
            device = point.device
            points.append((length, device.id, Evidence(
                "point", device.id, "down", length / NS_PER_MINUTE,
                f"{device.name}: longest outage {format_local(start, tz)} – {format_local(end, tz)}")))
            system = self._system(device)
            if system not in per_system or length > per_system[system][0]:
                per_system[system] = (length, device.id, start, end)
        evidence = [
            Evidence("system", system, "down", length / NS_PER_MINUTE,
                     f"{self.systems} {system}: point {device_id}, {format_local(start, tz)} – {format_local(end, tz)}")
            for system, (length, device_id, start, end) in sorted(per_system.items())
        ]
        evidence += [e for _, _, e in sorted(points, key=lambda p: (-p[0], p[1]))]
        note = ("the longest counted outage of one point on basis online (down and unreachable joined) in the "
                "period; excluded causes and maintenance are not outages")
        return MetricValue("max_outage_minutes", longest / NS_PER_MINUTE, Unit.MINUTES, evidence=tuple(evidence),
                           note=note)


def _joined(point: PointAvailability) -> list[tuple[int, int]]:
    """The point's counted offline stretches on basis online, down and unreachable joined where
    one follows the other (one fault), in time order."""
    spans: list[tuple[int, int]] = []
    for outage in point.outages(Basis.ONLINE):
        if spans and spans[-1][1] == outage.start_ns:
            spans[-1] = (spans[-1][0], outage.end_ns)
        else:
            spans.append((outage.start_ns, outage.end_ns))
    return spans


def _min(ns: int) -> str:
    return f"{ns / NS_PER_MINUTE:.1f}"
