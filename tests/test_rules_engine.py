"""Rules engine: one condition per real problem, hysteresis, holding without data."""

import pytest

from monitor.fleet.inventory import Inventory
from monitor.core.model import Kind
from monitor.state.online_rate import GroupRate, online_rates
from monitor.state.tracker import State, Transition
from probes.base import ProbeResult
from rules.base import View
from rules.config import FlappingConfig, default_rules
from rules.engine import RulesEngine
from rules.families.device import DeviceDownRule
from rules.families.rate import OnlineRateRule
from rules.families.window import LatencyRule
from monitor.core.config_base import SelectorConfig
from rules.model import Severity
from tests.plugins.factories import device

def dev(i, kind, region, site, parent=None):
    return device(i, kind, name=f"{site}{i}", site=site, region=region, parent=parent)


DEVICES = [
    dev("L1", Kind.LINK, "R1", "S1"), dev("SW1", Kind.SWITCH, "R1", "S1", "L1"),
    *[dev(f"C{i}", Kind.CAMERA, "R1", "S1", "SW1") for i in range(1, 6)],
    dev("L3", Kind.LINK, "R1", "S3"), dev("C9", Kind.CAMERA, "R1", "S3", "L3"),
    dev("L2", Kind.LINK, "R2", "S2"), dev("SW2", Kind.SWITCH, "R2", "S2", "L2"),
    *[dev(f"C{i}", Kind.CAMERA, "R2", "S2", "SW2") for i in range(6, 9)],
]
INV = Inventory(DEVICES)
NOW = 10**18


def view(**states):
    full = {d.id: State.UP for d in DEVICES} | {k: State(v) for k, v in states.items()}
    return View(NOW, full, {d: NOW - 10**9 for d in full}, online_rates(DEVICES, full))


def engine(*rules, flapping=FlappingConfig()):
    return RulesEngine(INV, list(rules), flapping)


def test_a_dead_switch_is_one_condition_naming_the_cameras_behind_it():
    e = engine(DeviceDownRule(name="down"))
    unreachable = {f"C{i}": "unreachable" for i in range(1, 6)}
    out = e.evaluate(view(SW1="down", **unreachable), set())
    assert list(out) == [("down", "device:SW1")]
    c = out[("down", "device:SW1")]
    assert c.title == "交换机S1SW1离线，影响5路摄像机"
    assert c.affected == ("C1", "C2", "C3", "C4", "C5") and c.severity is Severity.MAJOR
    assert c.since_ns == NOW - 10**9


def test_a_wholly_dark_region_is_one_condition_and_no_online_rate_fault():
    e = engine(DeviceDownRule(name="down"), OnlineRateRule(name="rate", scope="region"))
    dark = {"L2": "down", "SW2": "unreachable", "C6": "unreachable", "C7": "unreachable", "C8": "unreachable"}
    out = e.evaluate(view(**dark), set())
    assert list(out) == [("down", "region:R2")]
    assert out[("down", "region:R2")].title == "R2全部离线（5台设备）"
    assert out[("down", "region:R2")].severity is Severity.CRITICAL


def test_online_rate_below_95_with_hysteresis():
    rule = OnlineRateRule(name="rate", scope="fleet", kind="camera", below_pct=95, clear_above_pct=95.5)
    e = engine(rule)
    down_one = view(C1="down")  # 8 of 9 cameras: 88.9 %
    out = e.evaluate(down_one, set())
    assert out[("rate", "fleet")].title == "全网摄像机在线率88.89%，低于95%"
    # 95.2 % would not raise, but holds an open fault until 95.5 %.
    rates = [GroupRate("fleet", "all", "camera", online=952, offline=48, unknown=0, excluded=0)]
    between = View(NOW, down_one.states, down_one.since_ns, rates)
    assert e.evaluate(between, set()) == {}
    assert ("rate", "fleet") in e.evaluate(between, {("rate", "fleet")})


def feed(e, device_id, rtts):
    for rtt in rtts:
        e.observe(ProbeResult(device_id, "icmp", 0, True, None, {"up": True, "rtt_avg_ms": rtt, "loss_pct": 0.0}))


def test_latency_over_a_window_raises_and_clears_below_the_clear_limit():
    e = engine(LatencyRule(name="lat", match=SelectorConfig(kind=[Kind.LINK]), window=3, min_samples=3, clear_below_ms=180))
    key = ("lat", "device:L1")
    feed(e, "L1", [240, 250, 260])
    feed(e, "C1", [900, 900, 900])  # not a link: not matched
    out = e.evaluate(view(), set())
    assert list(out) == [key] and out[key].value == pytest.approx(250) and out[key].title == "专线S1L1时延250 ms，超过200 ms"
    feed(e, "L1", [190, 190, 190])
    assert e.evaluate(view(), set()) == {}  # would not raise at 190 …
    assert key in e.evaluate(view(), {key})  # … but an open fault holds until below 180
    feed(e, "L1", [170, 170, 170])
    assert e.evaluate(view(), {key}) == {}


def test_no_data_holds_an_open_fault_instead_of_clearing_it():
    e = engine(LatencyRule(name="lat", match=SelectorConfig(kind=[Kind.LINK])))
    assert e.evaluate(view(), set()) == {}
    assert ("lat", "device:L1") in e.evaluate(view(), {("lat", "device:L1")})


def test_an_open_device_fault_holds_while_the_device_is_unreachable():
    e = engine(DeviceDownRule(name="down"))
    key = ("down", "device:C1")
    assert key in e.evaluate(view(C1="down"), set())
    later = view(SW1="down", **{f"C{i}": "unreachable" for i in range(1, 6)})
    out = e.evaluate(later, {key})
    assert key in out and ("down", "device:SW1") in out
    assert e.evaluate(view(), {key}) == {}


def test_flapping_device_is_one_flapping_condition_and_no_down_condition():
    e = engine(DeviceDownRule(name="down"), flapping=FlappingConfig(window_s=600, max_changes=4))
    for k in range(4):
        old, new = (State.UP, State.DOWN) if k % 2 == 0 else (State.DOWN, State.UP)
        e.observe_transition(Transition("C1", "icmp", NOW - (10 - k) * 10**9, old, new, None))
    out = e.evaluate(view(C1="down"), set())
    assert list(out) == [("flapping", "device:C1")]
    assert out[("flapping", "device:C1")].title.startswith("摄像机S1C1频繁掉线")
    # Ten minutes later without a change: not flapping any more.
    quiet = View(NOW + 601 * 10**9, view().states, view().since_ns, view().rates)
    assert e.evaluate(quiet, {("flapping", "device:C1")}) == {}


def test_default_rules_cover_the_contract_thresholds():
    rules = {r.name: r for r in default_rules()}
    assert rules["camera-online-rate"].below_pct == 95 and rules["link-latency"].above_ms == 200


def test_a_pending_camera_fault_is_not_held_once_its_switch_is_the_cause():
    e = engine(DeviceDownRule(name="down"))
    key = ("down", "device:C1")
    assert key in e.evaluate(view(C1="down"), set())  # seen down before its switch: pending
    later = view(SW1="down", **{f"C{i}": "unreachable" for i in range(1, 6)})
    assert list(e.evaluate(later, set())) == [("down", "device:SW1")]  # pending: dropped, no second fault
    assert key in e.evaluate(later, {key})  # had it fired, it would stay open until C1 is back


def test_a_dead_link_is_a_down_fault_not_also_a_loss_fault():
    from rules.families.window import LossRule

    loss = LossRule(name="loss", match=SelectorConfig(kind=[Kind.LINK]), window=3, min_samples=2)
    e = engine(DeviceDownRule(name="down"), loss)
    for _ in range(3):  # no reply at all
        e.observe(ProbeResult("L1", "icmp", 0, False, "timeout", {"up": False, "loss_pct": 100.0}))
    out = e.evaluate(view(L1="down", SW1="unreachable", **{f"C{i}": "unreachable" for i in range(1, 6)}), set())
    assert list(out) == [("down", "device:L1")]
    # A loss fault that was already firing is held while the link is down, with its last values.
    held = e.evaluate(view(L1="down"), {("loss", "device:L1")})[("loss", "device:L1")]
    assert held.held and held.value is None
    # Partial loss of a line that answers is a loss fault.
    for lost in (33.3, 33.3, 66.7):
        e.observe(ProbeResult("L1", "icmp", 0, True, None, {"up": True, "rtt_avg_ms": 5.0, "loss_pct": lost}))
    assert e.evaluate(view(), set())[("loss", "device:L1")].value == pytest.approx(44.43, abs=0.01)


def test_a_clear_limit_above_the_raise_limit_is_a_config_error():
    from pydantic import ValidationError

    from rules.families.window import JitterRule, LossRule

    for rule, fields, message in [
        (LatencyRule, {"above_ms": 200, "clear_below_ms": 250}, "clear_below_ms must be ≤ above_ms"),
        (LossRule, {"above_pct": 5, "clear_below_pct": 10}, "clear_below_pct must be ≤ above_pct"),
        (JitterRule, {"above_ms": 30, "clear_below_ms": 31}, "clear_below_ms must be ≤ above_ms"),
        (OnlineRateRule, {"below_pct": 95, "clear_above_pct": 90}, "clear_above_pct must be ≥ below_pct"),
    ]:
        with pytest.raises(ValidationError, match=message):
            rule(name="r", **fields)
    assert LatencyRule(name="r").limits() == (200.0, 200.0)
    assert LossRule(name="r", above_pct=5, clear_below_pct=2).limits() == (5.0, 2.0)


def test_rules_with_one_selector_share_the_tuple_of_their_devices():
    """Held for the daemon's life: one tuple per selector, not per rule (~3 MB at 100,000 devices)."""
    cameras = SelectorConfig(kind=[Kind.CAMERA])
    e = engine(DeviceDownRule(name="down"), LatencyRule(name="lat-cam", match=cameras),
               DeviceDownRule(name="down-cam", match=cameras), DeviceDownRule(name="down-all"))
    devices = e.facts.devices
    assert devices["lat-cam"] is devices["down-cam"] and devices["down"] is devices["down-all"]
    assert [d.id for d in devices["down-cam"]] == [d.id for d in INV.topo_order() if d.kind is Kind.CAMERA]
    assert len(devices["down"]) == len(DEVICES)
