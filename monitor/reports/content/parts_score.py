"""Parts about the score (考核得分): the scheme's table with each item's figure, the tier it fell
in, the points lost and kept, the vetoes, the total; and the payment of the period's fee.
Everything is the EvaluatedScore's (monitor.assess.score), as the API and `fleetmon score` give
it.
"""

from __future__ import annotations

from decimal import Decimal

from monitor.assess.inputs import MetricValue, Unit
from monitor.assess.score import EvaluatedScore
from monitor.reports.content.facts import ReportFacts
from monitor.reports.content.words import TOTAL, Say
from monitor.reports.document import Column, Kpi, Part
from monitor.reports.document import ColumnType as T

_UNITS = {Unit.PCT: ("%", "%"), Unit.COUNT: ("次", "times"), Unit.MINUTES: ("分钟", "min")}


def number(d: Decimal) -> int | float:
    """A Decimal of points or 元 as a document number (int when whole)."""
    return int(d) if d == d.to_integral_value() else float(d)


def _places(values: list[Decimal]) -> int:
    return 0 if all(v == v.to_integral_value() for v in values) else 2


_TIME_RATES = ("online_rate_pct", "availability_pct")
"""Rates divided from minutes (the others from counts of orders)."""


def _parts(m: MetricValue, say: Say) -> str | None:
    """What a rate was divided from, for people: point-hours for the time rates, orders for the
    count ratios; None when the metric has no parts."""
    if m.numerator is None or m.denominator is None:
        return None
    if not m.denominator:
        return say("无计入项", "nothing counted")
    if m.name in _TIME_RATES:
        return say(f"{m.numerator / 60:,.0f} / {m.denominator / 60:,.0f} 点时", f"{m.numerator / 60:,.0f} / "
                   f"{m.denominator / 60:,.0f} point-h")
    return say(f"{m.numerator:,.0f} / {m.denominator:,.0f} 单", f"{m.numerator:,.0f} / {m.denominator:,.0f} orders")


def score_table(score: EvaluatedScore, say: Say) -> Part:
    """One row per item (its figure, what it was computed from, the tier, the points), the
    vetoes, the total."""
    places = _places([x for i in score.items for x in (i.points, i.deduction, i.score)] + [score.total])
    rows = []
    for n, item in enumerate(score.items, start=1):
        m = item.metric
        parts = _parts(m, say)
        rows.append((n, item.name.zh if say.zh else item.name.en, number(item.points), float(item.value),
                     say.pick(_UNITS[m.unit]), parts, item.rule, number(item.deduction), number(item.score)))
    for veto in score.vetoes:
        hit = say("已否决", "vetoed") if veto.hit else say("未触发", "not hit")
        rows.append((None, say("一票否决：", "Veto: ") + (veto.name.zh if say.zh else veto.name.en), None,
                     float(veto.metric.value), say.pick(_UNITS[veto.metric.unit]), None, f"{veto.rule} · {hit}", None, None))
    rows.append((None, say.pick(TOTAL), number(sum((i.points for i in score.items), Decimal(0))), None, None, None, None,
                 number(sum((i.deduction for i in score.items), Decimal(0))), number(score.total)))
    columns = (
        Column("n", "序号", "No.", T.INT),
        Column("item", "考核项目", "Item", width=28),
        Column("points", "分值", "Points", T.NUMBER, decimals=places),
        Column("value", "指标值", "Figure", T.NUMBER, decimals=2),
        Column("unit", "单位", "Unit"),
        Column("parts", "计算依据", "From", width=24),
        Column("rule", "适用档位", "Tier"),
        Column("deduction", "扣分", "Deducted", T.NUMBER, decimals=places),
        Column("score", "得分", "Score", T.NUMBER, decimals=places),
    )
    title = score.title.zh if say.zh else score.title.en
    note = say(f"考核办法：{title}（{score.scheme}）。计算依据：在线率为在线点时 / 计入点时（点位·小时），工单类为及时单数 / 计入单数。",
               f"Scheme: {title} ({score.scheme}). From: online point-hours / counted point-hours for the online "
               "rate, timely orders / counted orders for the others.")
    return Part(say("考核得分", "Score"), columns, tuple(rows), note)


def payment_text(score: EvaluatedScore, say: Say) -> str:
    p = score.payment
    if p.basis == "full":
        return say("得分达到全额支付线，全额支付", "score at or above the full-pay line: paid in full")
    if p.basis == "per_point":
        return say(f"低于全额支付线 {number(p.points_short or Decimal(0))} 分，按分扣减",
                   f"{number(p.points_short or Decimal(0))} points below the full-pay line, deducted per point")
    if p.basis == "below_floor":
        return say(f"低于最低线，扣减服务费的 {number(p.cut_pct or Decimal(0))}%",
                   f"below the floor: {number(p.cut_pct or Decimal(0))} % of the fee deducted")
    grade = (p.grade_name.zh if say.zh else p.grade_name.en) if p.grade_name else p.grade
    cut = number(p.cut_pct or Decimal(0))
    if p.basis == "veto":
        return say(f"一票否决，按“{grade}”扣减 {cut}%", f"vetoed: graded {grade}, {cut} % deducted")
    return say(f"等级“{grade}”，扣减 {cut}%", f"grade {grade}: {cut} % deducted")


def payment(score: EvaluatedScore, say: Say) -> Part:
    p = score.payment
    rows = (
        (say("本期服务费", "Fee of the period"), number(p.fee_yuan), None),
        (say("扣减", "Deduction"), number(p.deduction_yuan), payment_text(score, say)),
        (say("应付服务费", "Payable"), number(p.payable_yuan), None),
    )
    return Part(
        say("服务费核算", "Payment"),
        (Column("what", "项目", "Item"), Column("yuan", "金额（元）", "Amount (元)", T.NUMBER, decimals=2),
         Column("basis", "依据", "Basis", width=40)),
        rows,
    )


def score_kpis(score: EvaluatedScore, say: Say) -> list[Kpi]:
    p = score.payment
    full = p.basis == "full"
    return [
        Kpi(say("考核得分", "Score"), number(score.total), T.NUMBER, unit=say("分", "points"),
            decimals=_places([score.total])),
        Kpi(say("应付服务费", "Payable fee"), number(p.payable_yuan), T.NUMBER, target=number(p.fee_yuan), ok=full,
            unit=say("元", "yuan"), decimals=2),
        Kpi(say("服务费扣减", "Fee deducted"), number(p.deduction_yuan), T.NUMBER, unit=say("元", "yuan"), decimals=2),
    ]


def missing_note(f: ReportFacts, say: Say) -> str | None:
    """Why a report that could carry a score has none."""
    m = f.score_missing
    if m is None:
        return None
    if m.reason == "no_scheme":
        return say("未配置考核办法（assessment.score），本报告不含考核得分。",
                   "No assessment scheme is configured (assessment.score): no score in this report.")
    if m.reason == "other_period":
        period = {"quarter": ("季度", "quarter"), "half_year": ("半年", "half-year"), "year": ("年度", "year")}
        return say(f"所配置的考核办法按{say.label(period, m.detail)}考核，本报告不含考核得分。",
                   f"The configured scheme assesses a {say.label(period, m.detail)}: no score in this report.")
    return say(f"考核得分无法计算：{m.detail}", f"The score could not be computed: {m.detail}")
