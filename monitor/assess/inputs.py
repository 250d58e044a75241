"""The named inputs of a score (the metrics an assessment item reads), their values with the
evidence behind them, and the interface through which the score asks for them.

The score never computes availability or reads work orders itself: it asks a `MetricSource`
for `metric(name, period)` and gets a `MetricValue` back. The lead's source builds those from
the availability layer (online rate, availability, outages) and the work-order layer (the
count ratios of monitor.assess.order_ratios, faults per system); figures nobody measures (report
non-conformities, serious incidents) come from a `StaticSource` of manual entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Iterable, Mapping, Protocol


class Unit(StrEnum):
    """How a metric is measured: a rate in % (0–100), a count (integer ≥ 0), a duration in
    minutes (≥ 0)."""

    PCT = "pct"
    COUNT = "count"
    MINUTES = "minutes"

    @property
    def domain(self) -> tuple[Decimal, Decimal | None]:
        """(low, high) of the closed range a value may take; high None = unbounded."""
        return (Decimal(0), Decimal(100)) if self is Unit.PCT else (Decimal(0), None)

    @property
    def symbol(self) -> str:
        return {Unit.PCT: " %", Unit.COUNT: "", Unit.MINUTES: " min"}[self]


@dataclass(frozen=True, slots=True)
class Label:
    """A text people read, in both languages (`language: zh|en` in config picks one)."""

    zh: str
    en: str

    def text(self, language: str = "zh") -> str:
        return self.zh if language == "zh" else self.en


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric a scheme item may read: its unit, what it means, and which layer supplies it."""

    name: str
    unit: Unit
    label: Label
    source: str


def _spec(name: str, unit: Unit, zh: str, en: str, source: str) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, unit, Label(zh, en), source)


METRICS: Mapping[str, MetricSpec] = dict(
    [
        _spec("online_rate_pct", Unit.PCT, "前端设备在线率", "front-end online rate (time-weighted, the period)",
              "availability: Σ online time ÷ Σ counted time of the counted points"),
        _spec("availability_pct", Unit.PCT, "系统可用性", "system availability (time-weighted, the period)",
              "availability: the systems in scope (Zhangjiagang 99.9 %)"),
        _spec("max_outage_minutes", Unit.MINUTES, "单一故障最长时间", "longest single outage",
              "availability: the longest counted outage of a system in the period (Zhangjiagang ≤ 56 min)"),
        _spec("camera_replacement_timely_pct", Unit.PCT, "前端摄像机故障及时更换率",
              "cameras replaced in time", "work orders: order_ratios.camera_replacement_timely_pct"),
        _spec("other_replacement_timely_pct", Unit.PCT, "前端其他设备故障及时更换率",
              "other front-end devices replaced in time", "work orders: order_ratios.other_replacement_timely_pct"),
        _spec("arrival_timely_pct", Unit.PCT, "技术人员及时到达率", "engineers on site in time",
              "work orders: order_ratios.arrival_timely_pct"),
        _spec("faults_per_system_half_year", Unit.COUNT, "每系统半年故障次数（最多的系统）",
              "faults per system in the half-year (the worst system)", "work orders: order_ratios.faults_per_system"),
        _spec("major_faults_per_system_half_year", Unit.COUNT, "每系统半年重大故障次数（最多的系统）",
              "major faults per system in the half-year (the worst system)",
              "work orders: order_ratios.faults_per_system(major_only=True)"),
        _spec("report_nonconformities", Unit.COUNT, "报告不符合项", "report non-conformities",
              "manual: found by the buyer in the half-year and annual reports"),
        _spec("serious_incidents", Unit.COUNT, "严重事故次数", "serious incidents", "manual or work orders"),
        _spec("data_leaks", Unit.COUNT, "数据泄露事件", "data leaks", "manual"),
    ]
)
"""Every metric a scheme may name; a scheme naming another is rejected."""


class PeriodLike(Protocol):
    """The assessment period as the score needs it: a label people read ("2026Q4") and its
    bounds [start_ns, end_ns) in UTC ns (boundaries fixed in the configured zone by whoever
    made it, e.g. the availability layer's period)."""

    @property
    def label(self) -> str: ...

    @property
    def start_ns(self) -> int: ...

    @property
    def end_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of what a figure stands on, to be opened by whoever doubts it.

    `kind` names what `ref` is ("point": a point id; "order": a work-order reference;
    "system": a system's name; anything else the source documents). `outcome` says what it did
    to the figure, e.g. "timely", "late", "pending", "excluded", "not_needed", "counted",
    "down". `minutes`: the time that counted (down minutes of a point, minutes from report to
    arrival) or None. `detail`: the rest in a few words (the excluded cause, the deadline).
    """

    kind: str
    ref: str
    outcome: str
    minutes: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not (self.kind and self.ref and self.outcome):
            raise ValueError(f"evidence needs a kind, a ref and an outcome: {self!r}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes >= 0):
            raise ValueError(f"evidence {self.kind} {self.ref}: minutes must be finite and ≥ 0, not {self.minutes}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "outcome": self.outcome, "minutes": self.minutes,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class MetricValue:
    """The value of metric `name` for a period, in its catalog unit, with the evidence.

    `value`: % (0–100) for a rate, an integer for a count, minutes for a duration. For a rate,
    `numerator`/`denominator` are what it was divided from (orders, or minutes) and must agree
    with it (value = numerator × 100 ÷ denominator); a zero denominator leaves the value to the
    source's stated convention (the order ratios say 100 %, nothing was late). `note`: that
    convention or any caveat, in a few words. Raises ValueError on an unknown name, a wrong
    unit, a value outside its unit's range, or a rate that disagrees with its parts.
    """

    name: str
    value: float
    unit: Unit
    numerator: float | None = None
    denominator: float | None = None
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    note: str = ""

    def __post_init__(self) -> None:
        spec = METRICS.get(self.name)
        if spec is None:
            raise ValueError(f"unknown metric {self.name!r} (known: {', '.join(METRICS)})")
        if self.unit is not spec.unit:
            raise ValueError(f"metric {self.name}: unit must be {spec.unit.value}, not {self.unit}")
        object.__setattr__(self, "evidence", tuple(self.evidence))
        value = self.value
        low, high = spec.unit.domain
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metric {self.name}: value must be a finite number, not {value!r}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"metric {self.name}: {value} is outside {low}–{high if high is not None else '∞'}")
        if spec.unit is Unit.COUNT and value != int(value):
            raise ValueError(f"metric {self.name}: a count must be a whole number, not {value}")
        self._check_parts()

    def _check_parts(self) -> None:
        if (self.numerator is None) != (self.denominator is None):
            raise ValueError(f"metric {self.name}: give both numerator and denominator, or neither")
        if self.numerator is None or self.denominator is None:
            return
        if not (0 <= self.numerator <= self.denominator) or not math.isfinite(self.denominator):
            raise ValueError(
                f"metric {self.name}: need 0 ≤ numerator ≤ denominator, got {self.numerator} / {self.denominator}"
            )
        if self.unit is Unit.PCT and self.denominator > 0:
            expected = self.numerator * 100 / self.denominator
            if not math.isclose(self.value, expected, rel_tol=1e-9, abs_tol=1e-9):
                raise ValueError(
                    f"metric {self.name}: value {self.value} disagrees with "
                    f"{self.numerator} × 100 ÷ {self.denominator} = {expected}"
                )

    def to_dict(self, evidence: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit.value,
                               "numerator": self.numerator, "denominator": self.denominator, "note": self.note}
        out["evidence"] = [e.to_dict() for e in self.evidence] if evidence else len(self.evidence)
        return out


class MetricSource(Protocol):
    """Where a score gets its inputs. `metric` returns the value of catalog metric `name` over
    `period`, or raises (LookupError when it has none; the evaluation then fails rather than
    scoring on a guess)."""

    def metric(self, name: str, period: PeriodLike) -> MetricValue: ...


class StaticSource:
    """A MetricSource of values given up front: manual entries (report non-conformities,
    serious incidents) and figures computed elsewhere. Ignores the period: the caller gives the
    values of the one period it evaluates."""

    def __init__(self, values: Iterable[MetricValue]) -> None:
        self._values: dict[str, MetricValue] = {}
        for value in values:
            if value.name in self._values:
                raise ValueError(f"metric {value.name} given twice")
            self._values[value.name] = value

    def metric(self, name: str, period: PeriodLike) -> MetricValue:
        try:
            return self._values[name]
        except KeyError:
            raise LookupError(f"no value for metric {name} in {period.label}") from None
