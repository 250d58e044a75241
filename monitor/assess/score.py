"""The evaluated score of a period: each item's metric value, the tier it fell in, the points
lost and kept; the vetoes; the total; the payment in 元. Every figure keeps the MetricValue it
came from, so it can be opened down to its evidence (which points, which orders, which minutes).

    evaluate(scheme, source, period, fee_yuan) -> EvaluatedScore

Points and money are Decimals (exact: 89 分, 500.00 元); `to_dict()` gives JSON-ready numbers
(points as int when whole, 元 to 2 decimals).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from monitor.assess.inputs import METRICS, Label, MetricSource, MetricValue, PeriodLike
from monitor.assess.scheme import Grades, Item, Linear, Scheme

_FEN = Decimal("0.01")


class ScoreError(ValueError):
    """A source gave a value the scheme cannot score (wrong metric, wrong unit)."""


@dataclass(frozen=True, slots=True)
class ItemScore:
    """One item of the table. `value`: what the tiers were applied to (the metric's value,
    rounded when the item says `decimals`); `rule`: the tier that applied as written
    ("90 ≤ r < 95") or the per-unit rule; `score` = `points` − `deduction`."""

    key: str
    name: Label
    metric: MetricValue
    value: float
    rule: str
    points: Decimal
    deduction: Decimal
    score: Decimal

    def to_dict(self, evidence: bool = True) -> dict[str, Any]:
        return {"key": self.key, "name": _label(self.name), "metric": self.metric.to_dict(evidence),
                "value": self.value, "rule": self.rule, "points": _pts(self.points),
                "deduction": _pts(self.deduction), "score": _pts(self.score)}


@dataclass(frozen=True, slots=True)
class VetoCheck:
    """A veto condition, the value it was checked on and whether it holds (`hit`)."""

    key: str
    name: Label
    metric: MetricValue
    rule: str
    hit: bool

    def to_dict(self, evidence: bool = True) -> dict[str, Any]:
        return {"key": self.key, "name": _label(self.name), "metric": self.metric.to_dict(evidence),
                "rule": self.rule, "hit": self.hit}


@dataclass(frozen=True, slots=True)
class Payment:
    """What the period's fee becomes. `basis` says which part of the rule applied: "full",
    "per_point" (so many points below full_at × 元 per point), "below_floor" (a % cut), "grade"
    or "veto" (the grade's cut). `grade`/`grade_name`/`cut_pct` are set for grades and for the
    % cut below the floor."""

    fee_yuan: Decimal
    deduction_yuan: Decimal
    payable_yuan: Decimal
    basis: str
    points_short: Decimal | None = None
    cut_pct: Decimal | None = None
    grade: str | None = None
    grade_name: Label | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fee_yuan": float(self.fee_yuan), "deduction_yuan": float(self.deduction_yuan),
                "payable_yuan": float(self.payable_yuan), "basis": self.basis,
                "points_short": None if self.points_short is None else _pts(self.points_short),
                "cut_pct": None if self.cut_pct is None else _pts(self.cut_pct),
                "grade": self.grade, "grade_name": None if self.grade_name is None else _label(self.grade_name)}


@dataclass(frozen=True, slots=True)
class EvaluatedScore:
    """The score of one period under one scheme. `total`: the sum of the items' scores (out of
    100), kept as computed even when a veto hits; `vetoed`: some veto holds, and the payment
    then follows the scheme's veto grade."""

    scheme: str
    title: Label
    period: str
    start_ns: int
    end_ns: int
    items: tuple[ItemScore, ...]
    vetoes: tuple[VetoCheck, ...]
    total: Decimal
    payment: Payment

    @property
    def vetoed(self) -> bool:
        return any(v.hit for v in self.vetoes)

    def item(self, key: str) -> ItemScore:
        """The item `key`; KeyError naming the keys there are."""
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(f"no item {key!r} (items: {', '.join(i.key for i in self.items)})")

    def to_dict(self, evidence: bool = True) -> dict[str, Any]:
        """JSON-ready; `evidence=False` replaces each evidence list by its length (a fleet's
        points make long lists)."""
        return {"scheme": self.scheme, "title": _label(self.title), "period": self.period,
                "start_ns": self.start_ns, "end_ns": self.end_ns,
                "items": [i.to_dict(evidence) for i in self.items],
                "vetoes": [v.to_dict(evidence) for v in self.vetoes], "vetoed": self.vetoed,
                "total": _pts(self.total), "payment": self.payment.to_dict()}


def evaluate(scheme: Scheme, source: MetricSource, period: PeriodLike, fee_yuan: Decimal) -> EvaluatedScore:
    """Score `period` under `scheme` with the metrics `source` gives, and the payment out of
    `fee_yuan` (the fee of this one period, 元, ≥ 0). Asks the source once per metric. Raises
    ScoreError when the source answers with another metric or unit, ValueError on a negative
    fee, and whatever the source raises when it has no value."""
    if fee_yuan < 0:
        raise ValueError(f"fee must be ≥ 0 元, not {fee_yuan}")
    fee = Decimal(fee_yuan)
    cache: dict[str, MetricValue] = {}

    def get(name: str) -> MetricValue:
        if name not in cache:
            value = source.metric(name, period)
            if not isinstance(value, MetricValue) or value.name != name:
                got = value.name if isinstance(value, MetricValue) else type(value).__name__
                raise ScoreError(f"asked for metric {name}, the source gave {got}")
            if value.unit is not METRICS[name].unit:  # MetricValue checks this too; a source may subclass
                raise ScoreError(f"metric {name}: unit {value.unit}, the scheme needs {METRICS[name].unit}")
            cache[name] = value
        return cache[name]

    items = tuple(_score_item(item, get(item.metric)) for item in scheme.items)
    vetoes = tuple(
        VetoCheck(v.key, v.name.label(), get(v.metric), str(v.when), get(v.metric).value in v.when)
        for v in scheme.vetoes
    )
    total = sum((i.score for i in items), Decimal(0))
    vetoed = any(v.hit for v in vetoes)
    payment = scheme.payment
    if payment.linear is not None:
        pay = _linear(payment.linear, total, fee)
    else:
        assert payment.grades is not None  # the scheme validates: exactly one rule
        pay = _graded(payment.grades, total, fee, vetoed)
    return EvaluatedScore(scheme.name, scheme.title.label(), period.label, period.start_ns, period.end_ns,
                          items, vetoes, total, pay)


def _score_item(item: Item, metric: MetricValue) -> ItemScore:
    value = metric.value
    if item.decimals is not None:
        value = float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-item.decimals), ROUND_HALF_UP))
    if item.per_unit is not None:
        rule = item.per_unit
        over = max(Decimal(int(value)) - rule.allowed, Decimal(0))
        deduction = min(over * rule.deduct, item.points)
        text = f"{rule.deduct} per unit above {rule.allowed}"
    else:
        assert item.tiers is not None  # the scheme validates: exactly one of tiers, per_unit
        # The tiers cover the metric's whole range once (validated), and MetricValue keeps the
        # value inside it: exactly one tier matches.
        tier = next(t for t in item.tiers if value in t.when)
        deduction = item.points if tier.deduct == "all" else tier.deduct
        text = str(tier.when)
    return ItemScore(item.key, item.name.label(), metric, value, text, item.points, deduction,
                     item.points - deduction)


def _linear(rule: Linear, total: Decimal, fee: Decimal) -> Payment:
    if total >= rule.full_at:
        return Payment(fee, Decimal(0), fee, "full")
    if total < rule.floor:
        cut = _yuan(fee * rule.below_floor_cut_pct / 100)
        return Payment(fee, cut, fee - cut, "below_floor", cut_pct=rule.below_floor_cut_pct)
    short = rule.full_at - total
    cut = min(_yuan(short * rule.per_point_yuan), fee)
    return Payment(fee, cut, fee - cut, "per_point", points_short=short)


def _graded(rule: Grades, total: Decimal, fee: Decimal, vetoed: bool) -> Payment:
    if vetoed:
        grade = next(g for g in rule.levels if g.key == rule.veto)
    else:
        grade = next(g for g in rule.levels if total in g.when)  # levels cover 0–100 once
    cut = _yuan(fee * grade.cut_pct / 100)
    return Payment(fee, cut, fee - cut, "veto" if vetoed else "grade", cut_pct=grade.cut_pct,
                   grade=grade.key, grade_name=grade.name.label())


def _yuan(amount: Decimal) -> Decimal:
    return amount.quantize(_FEN, ROUND_HALF_UP)


def _pts(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def _label(label: Label) -> dict[str, str]:
    return {"zh": label.zh, "en": label.en}
