"""The count ratios of the assessment, computed from work-order facts: replacement in time
(cameras; other front-end devices), arrival in time, and faults per system. Pure functions of
a list of `OrderFacts` (the work-order layer's orders, reduced to what the ratios read), a
period and the moment of evaluation.

How fleetmon reads the tenders (../shared/CONTRACTS.md):

- Which orders: an order belongs to the period in which it was reported
  (start_ns ≤ reported_ns < end_ns). Every fault order counts as a 故障申告, whether the buyer
  phoned it in or the monitor opened it: the buyer's platform sees the same offline camera, and
  counting only phoned-in faults would let the figure depend on who noticed first.
- Excluded causes (市政, 电力, 人为破坏, 不可抗力, 运营商, 采购方原因; Qionglai
  "…均不在考核范围内", Zhangjiagang "运营商和基础设施造成的故障不计算在服务维护故障内") take
  an order out of every ratio; it stays in the evidence as "excluded" with its cause.
- Replacement (Qionglai 更换率 = 摄像头及时更换次数 ÷ 故障申告次数, "故障摄像头3天内更换为
  及时更换"): the denominator is the orders whose fix is a replacement (a replacement recorded,
  or the device declared to need one); a fault fixed without replacing anything is not a
  replacement and counts in neither part ("not_needed") — otherwise every cable fix would lower
  the replacement rate. Timely: replaced within 3 × 24 h of the report (calendar time,
  ≤ 72 h exactly). A needed replacement not made 72 h after the report is late even if it comes
  later; one still inside its 72 h at `as_of_ns` is "pending" and counts in neither part yet.
  Cameras: kind camera. Other front-end devices: switch, UPS, link (servers and platforms are
  back end, assessed elsewhere: "后端支撑平台正常运行率").
- Arrival (及时率 = 技术人员及时到达指定地点次数 ÷ 故障申告次数): the denominator is the orders
  that needed someone on site: all but those resolved remotely with nobody arriving
  ("not_needed"). Timely: arrived by `arrival_due_ns`, the deadline of the SLA preset's arrival
  clock (computed by the work-order layer, business hours included). Not arrived and the
  deadline passed at `as_of_ns`: late; not yet passed: pending.
- No counted order in the period: 100 % (nothing was late), with a note saying so.
- Faults per system (Zhangjiagang "单一故障次数每系统半年不得超过2次，其中重大故障不超过1次"): the
  counted orders per system; the figure is the worst system's count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal

from monitor.assess.inputs import Evidence, MetricValue, PeriodLike, Unit
from monitor.assess.model import Cause
from monitor.core.model import Kind

NS_PER_MINUTE = 60 * 10**9
REPLACE_WITHIN_NS = 3 * 24 * 3600 * 10**9
"""Qionglai: "故障摄像头3天内更换为及时更换" — 3 days as 72 h of calendar time."""

_REPLACEMENT_READING = (
    "timely = replaced ≤ 72 h after the report ÷ orders of the period needing a replacement; "
    "excluded causes, fixes without a replacement and orders still inside their 72 h not counted"
)
_ARRIVAL_READING = (
    "timely = on site by the SLA arrival deadline ÷ orders of the period needing someone on site; "
    "excluded causes, remote fixes and orders still before their deadline not counted"
)

CAMERA_KINDS = frozenset({Kind.CAMERA})
OTHER_FRONT_END_KINDS = frozenset({Kind.SWITCH, Kind.UPS, Kind.LINK})


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the ratios read of one work order (工单). Times are UTC ns.

    `cause`: the order's cause class, None while unclassified (counted). `arrived_ns`: the
    engineer's arrival on site (到场); `arrival_due_ns`: the arrival deadline from the SLA
    clock, required when the order needs someone on site. `resolution`: "remote" or "on_site"
    once restored, None while open. `replaced_ns`: when the device was replaced (更换);
    `replacement_needed`: the device is declared to need a replacement not made yet (a recorded
    replacement implies it). `system`: the system the device belongs to (Zhangjiagang counts
    faults per system); `major`: a major fault (重大故障).

    Raises ValueError when a stamp precedes the report or the resolution is unknown.
    """

    ref: str
    device_id: str
    device_kind: Kind
    reported_ns: int
    cause: Cause | None = None
    arrived_ns: int | None = None
    arrival_due_ns: int | None = None
    resolution: Literal["remote", "on_site"] | None = None
    replaced_ns: int | None = None
    replacement_needed: bool = False
    system: str | None = None
    major: bool = False

    def __post_init__(self) -> None:
        for name in ("arrived_ns", "arrival_due_ns", "replaced_ns"):
            stamp = getattr(self, name)
            if stamp is not None and stamp < self.reported_ns:
                raise ValueError(f"order {self.ref}: {name} {stamp} is before reported_ns {self.reported_ns}")
        if self.resolution not in (None, "remote", "on_site"):
            raise ValueError(f"order {self.ref}: resolution must be remote or on_site, not {self.resolution!r}")

    @property
    def cause_excluded(self) -> bool:
        return self.cause is not None and self.cause.excluded

    @property
    def needs_replacement(self) -> bool:
        return self.replaced_ns is not None or self.replacement_needed


def camera_replacement_timely_pct(orders: Iterable[OrderFacts], period: PeriodLike, as_of_ns: int) -> MetricValue:
    """`camera_replacement_timely_pct`: cameras replaced within 72 h of the report ÷ camera
    orders needing a replacement × 100 (see the module docstring)."""
    return _replacement("camera_replacement_timely_pct", CAMERA_KINDS, orders, period, as_of_ns)


def other_replacement_timely_pct(orders: Iterable[OrderFacts], period: PeriodLike, as_of_ns: int) -> MetricValue:
    """`other_replacement_timely_pct`: the same for switches, UPS units and links."""
    return _replacement("other_replacement_timely_pct", OTHER_FRONT_END_KINDS, orders, period, as_of_ns)


def arrival_timely_pct(orders: Iterable[OrderFacts], period: PeriodLike, as_of_ns: int) -> MetricValue:
    """`arrival_timely_pct`: orders with the engineer on site by the arrival deadline ÷ orders
    needing someone on site × 100 (see the module docstring). Raises ValueError for a counted
    order without `arrival_due_ns`."""
    evidence: list[Evidence] = []
    for order in _in_period(orders, period):
        if order.cause_excluded:
            evidence.append(_excluded(order))
        elif order.resolution == "remote" and order.arrived_ns is None:
            evidence.append(Evidence("order", order.ref, "not_needed", detail="resolved remotely"))
        elif order.arrival_due_ns is None:
            raise ValueError(f"order {order.ref}: needs someone on site but has no arrival_due_ns")
        elif order.arrived_ns is not None:
            outcome = "timely" if order.arrived_ns <= order.arrival_due_ns else "late"
            evidence.append(Evidence("order", order.ref, outcome, _minutes(order.arrived_ns - order.reported_ns),
                                     f"due {_minutes(order.arrival_due_ns - order.reported_ns):g} min after report"))
        else:
            outcome = "late" if as_of_ns > order.arrival_due_ns else "pending"
            evidence.append(Evidence("order", order.ref, outcome, None, "not arrived"))
    return _ratio("arrival_timely_pct", evidence, _ARRIVAL_READING)


def faults_per_system(orders: Iterable[OrderFacts], period: PeriodLike, *, major_only: bool = False) -> MetricValue:
    """`faults_per_system_half_year` (or, `major_only`, `major_faults_per_system_half_year`):
    the largest number of counted fault orders of one system in `period` (meant to be a
    half-year). Evidence: each order ("counted"/"excluded", its system) and each system's count.
    Raises ValueError for a counted order without a system."""
    name = "major_faults_per_system_half_year" if major_only else "faults_per_system_half_year"
    evidence: list[Evidence] = []
    per_system: dict[str, list[str]] = defaultdict(list)
    for order in _in_period(orders, period):
        if major_only and not order.major:
            continue
        if order.cause_excluded:
            evidence.append(_excluded(order))
            continue
        if order.system is None:
            raise ValueError(f"order {order.ref}: no system, cannot count faults per system")
        per_system[order.system].append(order.ref)
        evidence.append(Evidence("order", order.ref, "counted", detail=f"system {order.system}"))
    for system, refs in sorted(per_system.items()):
        evidence.append(Evidence("system", system, "counted", detail=f"{len(refs)}: {', '.join(refs)}"))
    worst = max((len(refs) for refs in per_system.values()), default=0)
    return MetricValue(name, worst, Unit.COUNT, evidence=tuple(evidence))


def _replacement(name: str, kinds: frozenset[Kind], orders: Iterable[OrderFacts], period: PeriodLike,
                 as_of_ns: int) -> MetricValue:
    evidence: list[Evidence] = []
    for order in _in_period(orders, period):
        if order.device_kind not in kinds:
            continue
        if order.cause_excluded:
            evidence.append(_excluded(order))
        elif not order.needs_replacement:
            evidence.append(Evidence("order", order.ref, "not_needed", detail="fixed without a replacement"))
        elif order.replaced_ns is not None:
            took = order.replaced_ns - order.reported_ns
            outcome = "timely" if took <= REPLACE_WITHIN_NS else "late"
            evidence.append(Evidence("order", order.ref, outcome, _minutes(took), f"device {order.device_id}"))
        else:
            outcome = "late" if as_of_ns - order.reported_ns > REPLACE_WITHIN_NS else "pending"
            evidence.append(Evidence("order", order.ref, outcome, None, f"device {order.device_id} not replaced"))
    return _ratio(name, evidence, _REPLACEMENT_READING)


def _in_period(orders: Iterable[OrderFacts], period: PeriodLike) -> list[OrderFacts]:
    return sorted((o for o in orders if period.start_ns <= o.reported_ns < period.end_ns),
                  key=lambda o: (o.reported_ns, o.ref))


def _excluded(order: OrderFacts) -> Evidence:
    assert order.cause is not None
    return Evidence("order", order.ref, "excluded", detail=f"cause {order.cause.value} ({order.cause.label('zh')})")


def _ratio(name: str, evidence: list[Evidence], reading: str) -> MetricValue:
    timely = sum(1 for e in evidence if e.outcome == "timely")
    counted = timely + sum(1 for e in evidence if e.outcome == "late")
    if counted == 0:
        return MetricValue(name, 100.0, Unit.PCT, 0, 0, tuple(evidence),
                           f"{reading}; no counted order: 100 %, nothing was late")
    return MetricValue(name, timely * 100 / counted, Unit.PCT, timely, counted, tuple(evidence), reading)


def _minutes(ns: int) -> float:
    return ns / NS_PER_MINUTE
