"""The count ratios from work-order facts (monitor.assess.order_ratios): replacement within 3 days,
arrival by the SLA deadline, faults per system; excluded causes, orders that need no replacement
or no visit, pending orders, period bounds; and a Qionglai quarter scored from orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from monitor.assess.inputs import MetricValue, PeriodLike, Unit
from monitor.assess.model import Cause
from monitor.assess.order_ratios import (
    OrderFacts,
    arrival_timely_pct,
    camera_replacement_timely_pct,
    faults_per_system,
    other_replacement_timely_pct,
)
from monitor.assess.scheme import shipped_scheme
from monitor.assess.score import evaluate
from monitor.core.model import Kind

S = 10**9
HOUR = 3600 * S
DAY = 24 * HOUR


@dataclass(frozen=True)
class Period:
    label: str = "2026Q4"
    start_ns: int = 1_790_812_800 * S  # 2026-10-01 00:00 Asia/Shanghai
    end_ns: int = 1_798_761_600 * S  # 2027-01-01 00:00 Asia/Shanghai


Q = Period()
T = Q.start_ns + 10 * DAY
AS_OF = Q.end_ns + 10 * DAY


def camera(ref: str, reported: int, **kw) -> OrderFacts:
    return OrderFacts(ref, f"CAM-{ref}", Kind.CAMERA, reported, **kw)


def outcomes(value: MetricValue) -> dict[str, str]:
    return {e.ref: e.outcome for e in value.evidence if e.kind == "order"}


def test_camera_replacement_within_three_days() -> None:
    orders = [
        camera("C1", T, replaced_ns=T + 3 * DAY),  # exactly 72 h: in time
        camera("C2", T, replaced_ns=T + 3 * DAY + S),  # 72 h + 1 s: late
        camera("C3", T, replaced_ns=T + 5 * DAY, cause=Cause.POWER),  # excluded cause, late or not
        camera("C4", T, resolution="on_site"),  # fixed without a replacement
        camera("C5", Q.end_ns - 4 * DAY, replacement_needed=True),  # needed, not made, 72 h passed
        camera("C6", Q.end_ns - DAY, replacement_needed=True),  # needed, still inside its 72 h
        camera("C7", Q.start_ns - S, replaced_ns=Q.start_ns + 9 * DAY),  # reported last quarter
        camera("C8", Q.end_ns, replaced_ns=Q.end_ns + DAY),  # reported next quarter (end is out)
        camera("C9", Q.start_ns, replaced_ns=Q.start_ns + 2 * DAY, cause=Cause.DEVICE),  # first instant: in
        OrderFacts("S1", "SW-01", Kind.SWITCH, T, replaced_ns=T + DAY),  # not a camera
    ]
    value = camera_replacement_timely_pct(orders, Q, as_of_ns=Q.end_ns + DAY)
    assert (value.value, value.numerator, value.denominator) == (50.0, 2, 4)
    assert outcomes(value) == {"C9": "timely", "C1": "timely", "C2": "late", "C3": "excluded", "C4": "not_needed",
                               "C5": "late", "C6": "pending"}
    late = next(e for e in value.evidence if e.ref == "C2")
    assert late.minutes == pytest.approx(3 * 24 * 60 + 1 / 60) and late.detail == "device CAM-C2"
    assert next(e for e in value.evidence if e.ref == "C3").detail == "cause power (电力)"
    assert value.note.startswith("timely = replaced ≤ 72 h after the report")
    # Evaluated later, C6's 72 h have run out without a replacement: late.
    later = camera_replacement_timely_pct(orders, Q, as_of_ns=Q.end_ns + 2 * DAY + S)
    assert outcomes(later)["C6"] == "late" and (later.numerator, later.denominator) == (2, 5)
    assert later.value == 40.0


def test_other_front_end_devices_are_switches_ups_and_links() -> None:
    orders = [
        OrderFacts("S1", "SW-01", Kind.SWITCH, T, replaced_ns=T + DAY),
        OrderFacts("U1", "UPS-01", Kind.UPS, T, replaced_ns=T + 4 * DAY),
        OrderFacts("L1", "LINK-01", Kind.LINK, T, replaced_ns=T + 6 * DAY, cause=Cause.CARRIER),
        OrderFacts("V1", "SRV-01", Kind.SERVER, T, replaced_ns=T + 9 * DAY),  # back end: not assessed here
        OrderFacts("P1", "PLAT-01", Kind.PLATFORM, T, replaced_ns=T + 9 * DAY),
        camera("C1", T, replaced_ns=T + 9 * DAY),
    ]
    value = other_replacement_timely_pct(orders, Q, AS_OF)
    assert value.name == "other_replacement_timely_pct"
    assert (value.value, value.numerator, value.denominator) == (50.0, 1, 2)
    assert outcomes(value) == {"S1": "timely", "U1": "late", "L1": "excluded"}


def test_arrival_by_the_sla_deadline() -> None:
    due = T + 2 * HOUR
    orders = [
        camera("A1", T, arrived_ns=due, arrival_due_ns=due),  # on the deadline: in time
        camera("A2", T, arrived_ns=due + S, arrival_due_ns=due),
        camera("A3", T, resolution="remote", arrival_due_ns=due),  # nobody needed on site
        camera("A4", T, arrival_due_ns=due),  # open, deadline passed at AS_OF
        camera("A5", Q.end_ns - HOUR, arrival_due_ns=Q.end_ns + HOUR),  # open, deadline still ahead
        camera("A6", T, arrived_ns=T + 9 * DAY, arrival_due_ns=due, cause=Cause.VANDALISM),
        camera("A7", T, arrived_ns=T + HOUR, arrival_due_ns=due, resolution="remote"),  # went anyway, in time
        OrderFacts("A8", "UPS-02", Kind.UPS, T, arrival_due_ns=due, resolution="remote"),
    ]
    value = arrival_timely_pct(orders, Q, as_of_ns=Q.end_ns)
    assert (value.value, value.numerator, value.denominator) == (50.0, 2, 4)
    assert outcomes(value) == {"A1": "timely", "A2": "late", "A3": "not_needed", "A4": "late", "A5": "pending",
                               "A6": "excluded", "A7": "timely", "A8": "not_needed"}
    a1 = next(e for e in value.evidence if e.ref == "A1")
    assert (a1.minutes, a1.detail) == (120.0, "due 120 min after report")


def test_counted_order_without_an_arrival_deadline_is_an_error() -> None:
    with pytest.raises(ValueError, match="order A1: needs someone on site but has no arrival_due_ns"):
        arrival_timely_pct([camera("A1", T, arrived_ns=T + HOUR)], Q, AS_OF)
    # excluded or remote orders need none
    assert arrival_timely_pct([camera("A1", T, cause=Cause.MUNICIPAL), camera("A2", T, resolution="remote")],
                              Q, AS_OF).denominator == 0


def test_no_counted_order_is_100_percent_with_a_note() -> None:
    for fn in (camera_replacement_timely_pct, other_replacement_timely_pct, arrival_timely_pct):
        value = fn([camera("C1", T, cause=Cause.FORCE_MAJEURE, replaced_ns=T + 9 * DAY)], Q, AS_OF)
        assert (value.value, value.numerator, value.denominator) == (100.0, 0, 0)
        assert value.note.endswith("; no counted order: 100 %, nothing was late")
        assert fn([], Q, AS_OF).value == 100.0


def test_faults_per_system_counts_the_worst_system() -> None:
    orders = [
        OrderFacts("F1", "SRV-01", Kind.SERVER, T, system="cloud"),
        OrderFacts("F2", "SRV-02", Kind.SERVER, T + HOUR, system="cloud", major=True),
        OrderFacts("F3", "SRV-03", Kind.SERVER, T + 2 * HOUR, system="cloud"),
        OrderFacts("F4", "LINK-01", Kind.LINK, T, system="network", cause=Cause.CARRIER, major=True),  # excluded
        OrderFacts("F5", "LINK-02", Kind.LINK, T, system="network", major=True),
        OrderFacts("F6", "PLAT-01", Kind.PLATFORM, T, system="video", cause=Cause.POWER),
        OrderFacts("F0", "SRV-01", Kind.SERVER, Q.start_ns - S, system="cloud"),  # before the period
    ]
    value = faults_per_system(orders, Q)
    assert (value.name, value.value, value.unit) == ("faults_per_system_half_year", 3, Unit.COUNT)
    assert outcomes(value) == {"F1": "counted", "F2": "counted", "F3": "counted", "F4": "excluded",
                               "F5": "counted", "F6": "excluded"}
    systems = {e.ref: e.detail for e in value.evidence if e.kind == "system"}
    assert systems == {"cloud": "3: F1, F2, F3", "network": "1: F5"}
    major = faults_per_system(orders, Q, major_only=True)
    assert (major.name, major.value) == ("major_faults_per_system_half_year", 1)
    assert outcomes(major) == {"F2": "counted", "F4": "excluded", "F5": "counted"}
    assert faults_per_system([], Q).value == 0
    with pytest.raises(ValueError, match="order F9: no system"):
        faults_per_system([OrderFacts("F9", "SRV-09", Kind.SERVER, T)], Q)


@pytest.mark.parametrize("kw, message", [
    (dict(arrived_ns=T - S), "order X: arrived_ns .* is before reported_ns"),
    (dict(replaced_ns=T - 1), "order X: replaced_ns .* is before reported_ns"),
    (dict(arrival_due_ns=T - HOUR), "order X: arrival_due_ns .* is before reported_ns"),
    (dict(resolution="phone"), "order X: resolution must be remote or on_site, not 'phone'"),
])
def test_bad_order_facts(kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        camera("X", T, **kw)


# --- a Qionglai quarter scored from its work orders ----------------------------------------------


def make_orders() -> list[OrderFacts]:
    """25 camera replacements (22 in time), 25 other replacements (24 in time); 80 visits on site
    (the 50 replacements, 45 in time, and 30 other faults, 15 in time: 60 of 80); plus orders that
    must not count: excluded causes and remote fixes."""
    orders: list[OrderFacts] = []
    for i in range(25):
        reported = T + i * DAY
        due = reported + 4 * HOUR
        orders.append(camera(f"R{i:02}", reported, replaced_ns=reported + (2 * DAY if i < 22 else 3 * DAY + S),
                             arrival_due_ns=due, arrived_ns=due - HOUR if i < 20 else due + HOUR))
        orders.append(OrderFacts(f"O{i:02}", f"SW-{i:02}", Kind.SWITCH, reported,
                                 replaced_ns=reported + (DAY if i < 24 else 5 * DAY),
                                 arrival_due_ns=due, arrived_ns=due))
    for i in range(30):
        reported = T + i * HOUR
        due = reported + 4 * HOUR
        orders.append(camera(f"V{i:02}", reported, arrival_due_ns=due, resolution="on_site",
                             arrived_ns=due - (HOUR if i < 15 else -HOUR)))
    # none of these may move a figure
    for i in range(5):
        orders.append(camera(f"X{i}", T, cause=Cause.POWER, replaced_ns=T + 9 * DAY, arrival_due_ns=T + HOUR))
        orders.append(camera(f"N{i}", T, resolution="remote", arrival_due_ns=T + HOUR))
    return orders


class OrdersSource:
    """What the lead's MetricSource does: ratios from the work orders, the online rate from the
    availability layer (here a given value)."""

    def __init__(self, orders: list[OrderFacts], online: MetricValue, as_of_ns: int) -> None:
        self.orders, self.online, self.as_of_ns = orders, online, as_of_ns

    def metric(self, name: str, period: PeriodLike) -> MetricValue:
        ratios = {"camera_replacement_timely_pct": camera_replacement_timely_pct,
                  "other_replacement_timely_pct": other_replacement_timely_pct,
                  "arrival_timely_pct": arrival_timely_pct}
        if name == "online_rate_pct":
            return self.online
        return ratios[name](self.orders, period, self.as_of_ns)


def test_qionglai_quarter_from_work_orders() -> None:
    online = MetricValue("online_rate_pct", 93.2, Unit.PCT, 932, 1000)
    score = evaluate(shipped_scheme("qionglai"), OrdersSource(make_orders(), online, AS_OF), Q, Decimal(250000))
    # hand-computed: 93.2 % → −3; 22/25 = 88 % → −4; 24/25 = 96 % → 0; 60/80 = 75 % → −4
    table = [(i.key, i.metric.value, i.metric.numerator, i.metric.denominator, i.deduction) for i in score.items]
    assert table == [
        ("online_rate", 93.2, 932, 1000, 3),
        ("camera_replacement", 88.0, 22, 25, 4),
        ("other_replacement", 96.0, 24, 25, 0),
        ("arrival", 75.0, 60, 80, 4),
    ]
    assert score.total == 89
    assert (score.payment.basis, score.payment.deduction_yuan, score.payment.payable_yuan) == (
        "per_point", Decimal("500.00"), Decimal("249500.00"))
    # every late replacement can be named
    camera_item = score.item("camera_replacement")
    assert [e.ref for e in camera_item.metric.evidence if e.outcome == "late"] == ["R22", "R23", "R24"]
    assert sorted(e.ref for e in camera_item.metric.evidence if e.outcome == "excluded") == [f"X{i}" for i in range(5)]
