"""The contract score as data (monitor.assess.scheme, .score, .config_score): the shipped
Qionglai and Zhangjiagang schemes against hand-computed tables, boundaries, vetoes, evidence
carried through, and every kind of bad scheme with its located error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pydantic
import pytest

from monitor.assess.config_score import ScoreConfig
from monitor.assess.inputs import Evidence, MetricValue, StaticSource, Unit
from monitor.assess.ranges import parse_range
from monitor.assess.scheme import load_scheme_file, parse_scheme, shipped_scheme, shipped_schemes
from monitor.assess.score import ScoreError, evaluate
from monitor.core.config_base import ConfigError

FEE = Decimal("250000")  # one quarter's fee, 元


@dataclass(frozen=True)
class Period:
    label: str = "2026Q4"
    start_ns: int = 1_790_000_000 * 10**9
    end_ns: int = 1_798_000_000 * 10**9


def pct(name: str, value: float) -> MetricValue:
    return MetricValue(name, value, Unit.PCT)


def count(name: str, value: int) -> MetricValue:
    return MetricValue(name, value, Unit.COUNT)


def qionglai(online: float, camera: float, other: float, arrival: float):
    source = StaticSource([
        pct("online_rate_pct", online),
        pct("camera_replacement_timely_pct", camera),
        pct("other_replacement_timely_pct", other),
        pct("arrival_timely_pct", arrival),
    ])
    return evaluate(shipped_scheme("qionglai"), source, Period(), FEE)


# --- Qionglai: the hand-computed table ---------------------------------------------------------

# online, camera, other, arrival │ deductions (online, camera, other, arrival) │ total │ 元 cut, basis
QIONGLAI_TABLE = [
    # the brief's worked quarter: 93.2 → −3, 88 → −4, 96 → 0, 75 → −4; 89 分 → 1 × 500 元
    ((93.2, 88.0, 96.0, 75.0), (3, 4, 0, 4), 89, "500.00", "per_point"),
    # exact lower bounds of the best tiers cost nothing; 90.0 and 80.0 fall in the tier above them
    ((95.0, 90.0, 80.0, 100.0), (0, 2, 4, 0), 94, "0", "full"),
    ((90.0, 95.0, 90.0, 80.0), (3, 0, 2, 2), 93, "0", "full"),
    ((85.0, 80.0, 79.99, 99.99), (6, 4, 6, 2), 82, "4000.00", "per_point"),
    ((80.0, 70.0, 95.0, 60.0), (10, 6, 0, 6), 78, "6000.00", "per_point"),
    # just below the boundaries: 94.99 is not ≥ 95; < 80 loses all 40
    ((94.99, 94.99, 94.99, 99.999), (3, 2, 2, 2), 91, "0", "full"),
    ((100.0, 89.0, 89.9, 80.0), (0, 4, 4, 2), 90, "0", "full"),  # exactly 90: full pay
    ((79.0, 100.0, 100.0, 100.0), (40, 0, 0, 0), 60, "15000.00", "per_point"),  # exactly 60: per point
    ((79.99, 69.9, 79.9, 59.9), (40, 10, 6, 10), 34, "125000.00", "below_floor"),  # < 60: 50 % of the fee
    ((79.0, 91.0, 100.0, 100.0), (40, 2, 0, 0), 58, "125000.00", "below_floor"),
    ((0.0, 0.0, 0.0, 0.0), (40, 10, 6, 10), 34, "125000.00", "below_floor"),
]


@pytest.mark.parametrize("rates, deductions, total, cut, basis", QIONGLAI_TABLE)
def test_qionglai_score_equals_the_hand_computed_table(rates, deductions, total, cut, basis) -> None:
    score = qionglai(*rates)
    assert [i.deduction for i in score.items] == [Decimal(d) for d in deductions]
    assert [i.score for i in score.items] == [p - Decimal(d) for p, d in zip((40, 20, 20, 20), deductions)]
    assert score.total == total
    assert score.payment.basis == basis
    assert score.payment.deduction_yuan == Decimal(cut)
    assert score.payment.payable_yuan == FEE - Decimal(cut)
    assert not score.vetoed


def test_qionglai_items_show_the_tier_that_applied() -> None:
    score = qionglai(93.2, 88.0, 96.0, 100.0)
    assert [(i.key, i.rule) for i in score.items] == [
        ("online_rate", "90 ≤ r < 95"),
        ("camera_replacement", "80 ≤ r < 90"),
        ("other_replacement", "r ≥ 95"),
        ("arrival", "r = 100"),
    ]
    assert score.item("online_rate").name.zh == "前端摄像机在线率"
    with pytest.raises(KeyError, match="items: online_rate, camera_replacement"):
        score.item("nope")


def test_payment_deduction_never_exceeds_the_fee() -> None:
    source = StaticSource([pct("online_rate_pct", 79.0), pct("camera_replacement_timely_pct", 100.0),
                           pct("other_replacement_timely_pct", 100.0), pct("arrival_timely_pct", 100.0)])
    score = evaluate(shipped_scheme("qionglai"), source, Period(), Decimal("1000"))  # 30 points short × 500 > fee
    assert score.payment.deduction_yuan == Decimal("1000.00") and score.payment.payable_yuan == 0


def test_evidence_is_carried_through_and_serialises() -> None:
    evidence = (Evidence("order", "WO-2026-0007", "late", 4325.0, "device CAM-0012"),
                Evidence("order", "WO-2026-0009", "timely", 1440.0, "device CAM-0044"))
    source = StaticSource([
        MetricValue("online_rate_pct", 93.2, Unit.PCT, 932, 1000, (Evidence("point", "CAM-0012", "down", 9000.0),)),
        MetricValue("camera_replacement_timely_pct", 50.0, Unit.PCT, 1, 2, evidence),
        pct("other_replacement_timely_pct", 100.0),
        pct("arrival_timely_pct", 100.0),
    ])
    score = evaluate(shipped_scheme("qionglai"), source, Period(), FEE)
    assert score.item("camera_replacement").metric.evidence == evidence
    data = json.loads(json.dumps(score.to_dict()))
    camera = data["items"][1]
    assert camera["metric"]["evidence"][0] == {"kind": "order", "ref": "WO-2026-0007", "outcome": "late",
                                               "minutes": 4325.0, "detail": "device CAM-0012"}
    assert (camera["deduction"], camera["score"], camera["rule"]) == (10, 10, "r < 70")
    assert data["items"][0]["metric"]["evidence"][0]["ref"] == "CAM-0012"
    assert data["total"] == 87 and data["payment"]["deduction_yuan"] == 1500.0  # −3 −10: 3 points × 500
    assert data["period"] == "2026Q4" and data["start_ns"] == Period().start_ns
    short = score.to_dict(evidence=False)
    assert short["items"][1]["metric"]["evidence"] == 2


def test_decimals_round_the_rate_before_the_tiers() -> None:
    text = shipped_text("qionglai").replace(
        "    metric: online_rate_pct\n", "    metric: online_rate_pct\n    decimals: 2\n")
    source = StaticSource([pct("online_rate_pct", 94.995), pct("camera_replacement_timely_pct", 100.0),
                           pct("other_replacement_timely_pct", 100.0), pct("arrival_timely_pct", 100.0)])
    rounded = evaluate(parse_scheme(text, "t.yaml"), source, Period(), FEE).item("online_rate")
    exact = evaluate(shipped_scheme("qionglai"), source, Period(), FEE).item("online_rate")
    assert (rounded.value, rounded.deduction) == (95.0, 0)  # half up: 94.995 → 95.00
    assert (exact.value, exact.deduction) == (94.995, 3)


def test_the_source_is_asked_once_per_metric_with_the_period() -> None:
    asked: list[tuple[str, str]] = []

    class Counting:
        def metric(self, name: str, period: Period) -> MetricValue:
            asked.append((name, period.label))
            if name == "availability_pct":
                return pct(name, 100.0)
            if name == "max_outage_minutes":
                return MetricValue(name, 0.0, Unit.MINUTES)
            return count(name, 0)

    evaluate(shipped_scheme("zhangjiagang"), Counting(), Period(label="2026H2"), FEE)
    assert sorted(asked) == sorted((n, "2026H2") for n in (
        "availability_pct", "max_outage_minutes", "faults_per_system_half_year",
        "major_faults_per_system_half_year", "report_nonconformities", "serious_incidents", "data_leaks"))


# --- Zhangjiagang: grades and the veto -----------------------------------------------------------


def zhangjiagang(availability=99.95, outage=30.0, faults=1, major=0, nonconf=0, incidents=0, leaks=0):
    source = StaticSource([
        pct("availability_pct", availability),
        MetricValue("max_outage_minutes", outage, Unit.MINUTES),
        count("faults_per_system_half_year", faults),
        count("major_faults_per_system_half_year", major),
        count("report_nonconformities", nonconf),
        count("serious_incidents", incidents),
        count("data_leaks", leaks),
    ])
    return evaluate(shipped_scheme("zhangjiagang"), source, Period(label="2026H2"), Decimal("1200000"))


# kwargs │ deductions (availability, outage, faults, major, reports) │ total │ grade, basis, cut %, 元
ZHANGJIAGANG_TABLE = [
    ({}, (0, 0, 0, 0, 0), 100, "excellent", "grade", "0", "0.00"),
    # on the thresholds: 99.9 %, 56 min, 2 faults, 1 major are all met
    (dict(availability=99.9, outage=56.0, faults=2, major=1), (0, 0, 0, 0, 0), 100, "excellent", "grade", "0", "0.00"),
    (dict(nonconf=10), (0, 0, 0, 0, 10), 90, "excellent", "grade", "0", "0.00"),
    (dict(nonconf=11), (0, 0, 0, 0, 11), 89, "good", "grade", "0.5", "6000.00"),
    (dict(faults=3), (0, 0, 15, 0, 0), 85, "good", "grade", "0.5", "6000.00"),
    (dict(availability=99.89), (30, 0, 0, 0, 0), 70, "pass", "grade", "1", "12000.00"),
    (dict(outage=56.5, major=2, nonconf=5), (0, 20, 0, 15, 5), 60, "pass", "grade", "1", "12000.00"),
    (dict(availability=99.0, outage=57.0), (30, 20, 0, 0, 0), 50, "fail", "grade", "2", "24000.00"),
    (dict(nonconf=25), (0, 0, 0, 0, 20), 80, "good", "grade", "0.5", "6000.00"),  # capped at the item's 20
    # veto: two serious incidents, or one data leak, fail the period whatever the points
    (dict(incidents=2), (0, 0, 0, 0, 0), 100, "fail", "veto", "2", "24000.00"),
    (dict(leaks=1, availability=99.5), (30, 0, 0, 0, 0), 70, "fail", "veto", "2", "24000.00"),
    (dict(incidents=1), (0, 0, 0, 0, 0), 100, "excellent", "grade", "0", "0.00"),
]


@pytest.mark.parametrize("kwargs, deductions, total, grade, basis, cut_pct, cut", ZHANGJIAGANG_TABLE)
def test_zhangjiagang_grades_and_veto(kwargs, deductions, total, grade, basis, cut_pct, cut) -> None:
    score = zhangjiagang(**kwargs)
    assert [i.deduction for i in score.items] == [Decimal(d) for d in deductions]
    assert score.total == total
    assert (score.payment.grade, score.payment.basis) == (grade, basis)
    assert score.payment.cut_pct == Decimal(cut_pct)
    assert score.payment.deduction_yuan == Decimal(cut)
    assert score.vetoed == (basis == "veto")


def test_zhangjiagang_veto_is_shown_with_its_metric() -> None:
    score = zhangjiagang(incidents=3)
    veto = {v.key: v for v in score.vetoes}
    assert veto["serious_incidents"].hit and veto["serious_incidents"].rule == "r ≥ 2"
    assert veto["serious_incidents"].metric.value == 3
    assert not veto["data_leak"].hit
    data = score.to_dict()
    assert data["vetoed"] is True and data["payment"]["grade_name"] == {"zh": "不合格", "en": "fail"}
    assert data["items"][4]["rule"] == "1 per unit above 0"


# --- the source's answers are checked ----------------------------------------------------------


def test_source_answering_another_metric_is_an_error() -> None:
    class Wrong:
        def metric(self, name: str, period: Period) -> MetricValue:
            return pct("online_rate_pct", 99.0)

    with pytest.raises(ScoreError, match="asked for metric camera_replacement_timely_pct, the source gave online_rate_pct"):
        evaluate(shipped_scheme("qionglai"), Wrong(), Period(), FEE)


def test_source_without_a_value_fails_the_evaluation() -> None:
    with pytest.raises(LookupError, match="no value for metric camera_replacement_timely_pct in 2026Q4"):
        evaluate(shipped_scheme("qionglai"), StaticSource([pct("online_rate_pct", 99.0)]), Period(), FEE)


def test_negative_fee_is_an_error() -> None:
    with pytest.raises(ValueError, match="fee must be ≥ 0"):
        qionglai_scheme = shipped_scheme("qionglai")
        evaluate(qionglai_scheme, StaticSource([]), Period(), Decimal("-1"))


@pytest.mark.parametrize("make, message", [
    (lambda: MetricValue("online_rate_pct", 100.01, Unit.PCT), r"100.01 is outside 0–100"),
    (lambda: MetricValue("online_rate_pct", -0.5, Unit.PCT), r"-0.5 is outside 0–100"),
    (lambda: MetricValue("online_rate_pct", float("nan"), Unit.PCT), "must be a finite number"),
    (lambda: MetricValue("online_rate_pct", 95.0, Unit.COUNT), "unit must be pct, not count"),
    (lambda: MetricValue("online_rate", 95.0, Unit.PCT), "unknown metric 'online_rate'"),
    (lambda: MetricValue("data_leaks", 1.5, Unit.COUNT), "a count must be a whole number"),
    (lambda: MetricValue("max_outage_minutes", -1.0, Unit.MINUTES), "outside 0–∞"),
    (lambda: MetricValue("arrival_timely_pct", 75.0, Unit.PCT, 3, None), "both numerator and denominator"),
    (lambda: MetricValue("arrival_timely_pct", 75.0, Unit.PCT, 3, 5), r"disagrees with 3 × 100 ÷ 5 = 60.0"),
    (lambda: MetricValue("arrival_timely_pct", 100.0, Unit.PCT, 6, 5), "need 0 ≤ numerator ≤ denominator"),
    (lambda: Evidence("point", "", "down"), "needs a kind, a ref and an outcome"),
    (lambda: Evidence("point", "CAM-1", "down", -3.0), "minutes must be finite and ≥ 0"),
    (lambda: StaticSource([pct("online_rate_pct", 1.0), pct("online_rate_pct", 2.0)]), "given twice"),
])
def test_bad_metric_values_are_refused(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- bad schemes: clear, located errors ---------------------------------------------------------


def shipped_text(name: str) -> str:
    return (resources.files("monitor.assess") / "schemes" / f"{name}.yaml").read_text(encoding="utf-8")


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the `nth` line containing `needle`."""
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[nth]


def scheme_errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_scheme(text, "s.yaml")
    return info.value.messages


def edited(name: str, old: str, new: str, count: int = 1) -> str:
    text = shipped_text(name)
    assert text.count(old) >= count, old
    return text.replace(old, new, count)


def test_tiers_that_leave_a_gap() -> None:
    text = edited("qionglai", '      - {when: "85 <= r < 90", deduct: 6}\n', "")
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:')}: items[0].tiers: tiers leave a gap: 85 ≤ r < 90 is in none of them"
    ]


def test_tiers_that_leave_a_single_value_uncovered() -> None:
    # "r > 95" and "r < 95" both miss exactly 95
    text = edited("qionglai", '"r >= 95", deduct: 0', '"r > 95", deduct: 0')
    text = text.replace('"90 <= r < 95", deduct: 3', '"90 <= r < 95", deduct: 3', 1)
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:')}: items[0].tiers: tiers leave a gap: r = 95 is in none of them"
    ]


def test_tiers_that_stop_short_of_100() -> None:
    text = edited("qionglai", '{when: "r = 100", deduct: 0}', '{when: "r = 99", deduct: 0}')
    assert scheme_errors(text)[0].endswith(
        "items[3].tiers: tiers[1] (80 ≤ r < 100) and tiers[0] (r = 99) overlap")
    text = edited("qionglai", '      - {when: "r = 100", deduct: 0}\n', "")
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:', 3)}: items[3].tiers: tiers leave a gap: r = 100 is in none of them"
    ]


def test_tiers_that_overlap() -> None:
    text = edited("qionglai", '"90 <= r < 95", deduct: 3', '"90 <= r <= 95", deduct: 3')
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:')}: items[0].tiers: tiers[1] (90 ≤ r ≤ 95) and tiers[0] (r ≥ 95) overlap"
    ]
    text = edited("qionglai", '"80 <= r < 85", deduct: 10', '"80 <= r < 87", deduct: 10')
    assert scheme_errors(text)[0].endswith("tiers[3] (80 ≤ r < 87) and tiers[2] (85 ≤ r < 90) overlap")


def test_tier_outside_0_to_100_percent() -> None:
    text = edited("qionglai", '"r >= 95", deduct: 0', '"95 <= r <= 105", deduct: 0')
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:')}: items[0].tiers: tiers[0] (95 ≤ r ≤ 105) reaches outside 0–100 %"
    ]
    text = edited("qionglai", '"r < 80", deduct: all', '"-10 <= r < 80", deduct: all')
    assert scheme_errors(text)[0].endswith("tiers[4] (-10 ≤ r < 80) reaches outside 0–100 %")
    text = edited("zhangjiagang", '"r <= 2", deduct: 0', '"r <= -1", deduct: 0')
    assert scheme_errors(text)[0].endswith("items[2].tiers: tiers[0] (r ≤ -1) reaches outside ≥ 0")


def test_tier_covering_nothing_of_the_range() -> None:
    text = edited("qionglai", '      - {when: "r < 80", deduct: all}\n',
                  '      - {when: "r < 80", deduct: all}\n      - {when: "r > 100", deduct: all}\n')
    assert scheme_errors(text)[0].endswith("items[0].tiers: tiers[5] (r > 100) covers nothing of 0–100 %")


def test_deduction_above_the_items_points() -> None:
    text = edited("qionglai", '{when: "r < 70", deduct: 10}', '{when: "r < 70", deduct: 25}')
    assert scheme_errors(text) == [
        f"s.yaml:{line_of(text, 'tiers:', 1)}: items[1].tiers: tiers[4] (r < 70) deducts 25, more than the "
        "item's 20 points (write 'all' to take all of them)"
    ]


def test_unknown_metric() -> None:
    text = edited("qionglai", "metric: arrival_timely_pct", "metric: arrival_rate_pct")
    (message,) = scheme_errors(text)
    assert message.startswith(f"s.yaml:{line_of(text, 'arrival_rate_pct')}: items[3].metric: unknown metric "
                              "'arrival_rate_pct' (known: online_rate_pct, availability_pct")


def test_points_must_add_up_to_100() -> None:
    text = edited("qionglai", "points: 20", "points: 25")
    assert scheme_errors(text) == [f"s.yaml:{line_of(text, 'items:')}: items: the items' points add up to 105, not 100"]


@pytest.mark.parametrize("old, new, where, message", [
    ('"r >= 95", deduct: 0', '"r => 95", deduct: 0', "items[0].tiers[0].when",
     "cannot read range 'r => 95': write it as"),
    ('"90 <= r < 95", deduct: 3', '"95 < r < 90", deduct: 3', "items[0].tiers[1].when",
     "range '95 < r < 90' is empty"),
    ('"r >= 95", deduct: 0', '"r >= 95", deduct: some', "items[0].tiers[0].deduct",
     "deduct must be a number of points ≥ 0 or 'all', not 'some'"),
    ('"r >= 95", deduct: 0', '"r >= 95", deduct: -1', "items[0].tiers[0].deduct",
     "deduct must be a number of points ≥ 0 or 'all', not -1"),
    ("    points: 40\n", "    points: 40\n    weight: 2\n", "items[0].weight", "unknown key"),
    ("  - key: online_rate\n", "  - key: Online rate\n", "items[0].key", "String should match pattern"),
    ("key: camera_replacement", "key: online_rate", "items", "item key 'online_rate' appears twice"),
    ("period: quarter", "period: month", "period", "Input should be 'quarter', 'half_year' or 'year'"),
    ("    floor: 60\n", "    floor: 95\n", "payment.linear", "floor 95 is above full_at 90"),
    ("    below_floor_cut_pct: 50\n", "    below_floor_cut_pct: 150\n", "payment.linear.below_floor_cut_pct",
     "less than or equal to 100"),
    ("en: Front-end camera online rate}", "en: ''}", "items[0].name.en", "at least 1 character"),
])
def test_bad_qionglai_edits(old: str, new: str, where: str, message: str) -> None:
    text = edited("qionglai", old, new)
    messages = scheme_errors(text)
    assert any(where in m and message in m for m in messages), messages
    assert all(m.startswith("s.yaml:") for m in messages)


def test_item_needs_exactly_one_of_tiers_and_per_unit() -> None:
    text = edited("zhangjiagang", "    per_unit: {deduct: 1, allowed: 0}\n",
                  '    per_unit: {deduct: 1, allowed: 0}\n    tiers: [{when: "r >= 0", deduct: 0}]\n')
    assert scheme_errors(text) == [f"s.yaml:{line_of(text, 'key: reports')}: items[4]: item reports: give exactly "
                                   "one of tiers and per_unit"]
    text = edited("zhangjiagang", "    per_unit: {deduct: 1, allowed: 0}\n", "")
    assert scheme_errors(text)[0].endswith("items[4]: item reports: give exactly one of tiers and per_unit")


def test_per_unit_only_for_counts() -> None:
    text = edited("zhangjiagang", "metric: report_nonconformities", "metric: availability_pct")
    assert scheme_errors(text)[0].endswith(
        "items[4].per_unit: per_unit applies to a count; availability_pct is not one: use tiers")


def test_grades_that_leave_a_gap_or_name_an_unknown_veto_grade() -> None:
    text = edited("zhangjiagang", '"80 <= s < 90"', '"85 <= s < 90"')
    assert scheme_errors(text) == [f"s.yaml:{line_of(text, 'levels:')}: payment.grades.levels: levels leave a gap: "
                                   "80 ≤ s < 85 is in none of them"]
    text = edited("zhangjiagang", "    veto: fail", "    veto: failed")
    assert scheme_errors(text) == [f"s.yaml:{line_of(text, 'veto: failed')}: payment.grades.veto: unknown grade "
                                   "'failed' (levels: excellent, good, pass, fail)"]


def test_vetoes_need_a_grade_to_give() -> None:
    text = edited("zhangjiagang", "    veto: fail\n", "")
    assert scheme_errors(text) == [f"s.yaml:{line_of(text, 'payment:')}: payment: the scheme has vetoes: payment "
                                   "needs grades with `veto`, the grade a veto gives"]
    text = shipped_text("qionglai").replace("payment:\n", "vetoes:\n  - {key: leak, name: {zh: 泄露, en: leak}, "
                                            "metric: data_leaks, when: \"r >= 1\"}\npayment:\n")
    assert scheme_errors(text)[0].endswith("payment: the scheme has vetoes: payment needs grades with `veto`, "
                                           "the grade a veto gives")


def test_bad_vetoes() -> None:
    text = edited("zhangjiagang", "metric: data_leaks", "metric: leaks")
    assert "vetoes[1].metric: unknown metric 'leaks'" in scheme_errors(text)[0]
    text = edited("zhangjiagang", 'when: "r >= 1"', 'when: "r >= -1"')
    assert scheme_errors(text)[0].endswith("vetoes[1]: veto data_leak: r ≥ -1 reaches outside the range of data_leaks")


def test_payment_needs_exactly_one_rule() -> None:
    text = edited("qionglai", "payment:\n", "payment:\n  grades: {levels: [{key: all, name: {zh: 全, en: all}, "
                  "when: \"s >= 0\", cut_pct: 0}]}\n")
    assert scheme_errors(text)[0].endswith("payment: give exactly one of linear and grades")


def test_yaml_syntax_error_and_non_mapping(tmp_path: Path) -> None:
    assert scheme_errors("name: [qionglai\n")[0].startswith("s.yaml:2:1: YAML syntax error")
    assert scheme_errors("- a\n") == ["s.yaml:1: a scheme must be a mapping (name, title, period, items, payment)"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_scheme_file(tmp_path / "missing.yaml")


def test_a_scheme_file_loads_like_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(shipped_text("zhangjiagang"), encoding="utf-8")
    assert load_scheme_file(path) == shipped_scheme("zhangjiagang")
    path.write_text(edited("zhangjiagang", "points: 30", "points: 31"), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: items: the items' points add up to 101, not 100$"):
        load_scheme_file(path)


def test_shipped_schemes_are_valid_and_complete() -> None:
    assert shipped_schemes() == ["qionglai", "zhangjiagang"]
    q = shipped_scheme("qionglai")
    assert [(i.key, i.points, i.metric) for i in q.items] == [
        ("online_rate", 40, "online_rate_pct"), ("camera_replacement", 20, "camera_replacement_timely_pct"),
        ("other_replacement", 20, "other_replacement_timely_pct"), ("arrival", 20, "arrival_timely_pct")]
    assert q.payment.linear is not None and (q.payment.linear.full_at, q.payment.linear.per_point_yuan,
                                             q.payment.linear.floor, q.payment.linear.below_floor_cut_pct) == (
        90, 500, 60, 50)
    with pytest.raises(ValueError, match=r"unknown scheme 'nantong' \(shipped: qionglai, zhangjiagang"):
        shipped_scheme("nantong")


def test_scheme_round_trips_through_its_dump() -> None:
    scheme = shipped_scheme("qionglai")
    dumped = json.loads(scheme.model_dump_json())
    assert dumped["items"][0]["tiers"][1] == {"when": "90 ≤ r < 95", "deduct": "3"}
    assert type(scheme).model_validate(dumped) == scheme


# --- the config section ---------------------------------------------------------------------------


def test_score_config_by_name_or_inline() -> None:
    by_name = ScoreConfig.model_validate({"scheme": "qionglai", "fee_per_period_yuan": 250000})
    assert by_name.scheme == shipped_scheme("qionglai") and by_name.fee_per_period_yuan == Decimal(250000)
    import yaml
    inline = yaml.safe_load(edited("qionglai", "per_point_yuan: 500", "per_point_yuan: 800"))
    cfg = ScoreConfig.model_validate({"scheme": inline, "fee_per_period_yuan": "1234.50"})
    assert cfg.scheme.payment.linear is not None and cfg.scheme.payment.linear.per_point_yuan == 800
    with pytest.raises(pydantic.ValidationError):
        cfg.fee_per_period_yuan = Decimal(1)  # type: ignore[misc]


@pytest.mark.parametrize("data, loc, message", [
    ({"scheme": "nantong", "fee_per_period_yuan": 1}, ("scheme",), "unknown scheme 'nantong'"),
    ({"scheme": "qionglai", "fee_per_period_yuan": -1}, ("fee_per_period_yuan",), "greater than or equal to 0"),
    ({"scheme": "qionglai", "fee_per_period_yuan": "1.005"}, ("fee_per_period_yuan",), "2 decimal places"),
    ({"scheme": "qionglai"}, ("fee_per_period_yuan",), "Field required"),
    ({"scheme": "qionglai", "fee_per_period_yuan": 1, "fee": 2}, ("fee",), "Extra inputs"),
])
def test_bad_score_config(data, loc, message) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ScoreConfig.model_validate(data)
    (error,) = info.value.errors()
    assert error["loc"] == loc and message in error["msg"]


def test_bad_inline_scheme_is_located_inside_the_config() -> None:
    import yaml
    inline = yaml.safe_load(edited("qionglai", '      - {when: "85 <= r < 90", deduct: 6}\n', ""))
    with pytest.raises(pydantic.ValidationError) as info:
        ScoreConfig.model_validate({"scheme": inline, "fee_per_period_yuan": 1})
    (error,) = info.value.errors()
    assert error["loc"] == ("scheme", "items", 0, "tiers")
    assert "tiers leave a gap: 85 ≤ r < 90 is in none of them" in error["msg"]


# --- ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, inside, outside, canonical", [
    ("90 <= r < 95", [90, 94.999, Decimal("90.0")], [89.999, 95], "90 ≤ r < 95"),
    ("90 ≤ r ≤ 95", [90, 95], [95.0001], "90 ≤ r ≤ 95"),
    ("90 < r < 95", [90.001], [90, 95], "90 < r < 95"),
    ("r >= 99.9", [99.9, 100], [99.89999], "r ≥ 99.9"),
    ("r > 56", [56.0001], [56], "r > 56"),
    ("r <= 56", [56, 0], [56.001], "r ≤ 56"),
    ("r < 80", [79.99, 0], [80], "r < 80"),
    ("r == 100", [100], [99.999], "r = 100"),
    ("  s>=90.0  ", [90], [89.9], "s ≥ 90"),
])
def test_ranges_read_as_the_tender_writes_them(text, inside, outside, canonical) -> None:
    r = parse_range(text)
    assert str(r) == canonical
    assert all(v in r for v in inside) and not any(v in r for v in outside)
    assert "90" not in r  # only numbers fall in a range


@pytest.mark.parametrize("text", ["", "r", "95 >= r", "90 < r > 95", "r >= ninety", "90 <= r < 95 < 99", "r ~ 5"])
def test_unreadable_ranges(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read range"):
        parse_range(text)
