"""Rules on cameras (video, clock, point-list records) and on SNMP values (ports, UPS, reboots,
traffic, disks): one condition per problem, hysteresis, holding without data, traps at once,
likely causes in device faults."""

import pytest
from pydantic import ValidationError

from monitor.fleet.inventory import Inventory
from monitor.core.model import Basis, Kind
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from probes.base import ProbeResult, Series
from probes.traps import TrapEvent
from rules.base import View
from rules.config import FlappingConfig
from rules.engine import RulesEngine
from rules.families.device import DeviceDownRule
from rules.families.rate import OnlineRateRule
from rules.families.values import (
    ClockDriftRule,
    DeviceRebootedRule,
    InterfaceUtilisationRule,
    InventoryMismatchRule,
    PortDownRule,
    StorageUsageRule,
    UpsBatteryLowRule,
    UpsOnBatteryRule,
)
from rules.families.video import VideoDownRule
from tests.plugins.factories import device

_n = iter(range(1, 250))


def dev(i, kind, site, parent=None, **kw):  # addresses 198.18.4.1, .2 … in order, as the traps below say
    return device(i, kind, name=f"{site}{i}", address=f"198.18.4.{next(_n)}", site=site, region="R1", parent=parent, **kw)


DEVICES = [
    dev("L1", Kind.LINK, "S1"),
    dev("SW1", Kind.SWITCH, "S1", "L1", uplink="Gi0/1"),
    dev("UPS1", Kind.UPS, "S1", "SW1"),
    dev("C1", Kind.CAMERA, "S1", "SW1", port="Gi0/5"),
    dev("C2", Kind.CAMERA, "S1", "SW1", port="Gi0/6"),
    dev("SRV1", Kind.SERVER, "S9"),
]
INV = Inventory(DEVICES)
NOW = 10**18


def view(video=None, **states):
    full = {d.id: State.UP for d in DEVICES} | {k: State(v) for k, v in states.items()}
    video_states = {"C1": State.UP, "C2": State.UP} | {k: State(v) for k, v in (video or {}).items()}
    bases = {"network": full, "video": video_states, "online": full}
    return View(NOW, full, {d: NOW - 10**9 for d in full}, online_rates(DEVICES, full), bases)


def engine(*rules):
    return RulesEngine(INV, list(rules), FlappingConfig())


def result(device_id, probe, fields, series=(), ok=True, reason=None):
    return ProbeResult(device_id, probe, NOW, ok, reason, fields, tuple(series))


def port(name, oper=1, admin=1, uplink=False, if_index=1, **fields):
    return Series("snmp_interface", {"interface": name}, {
        "if_index": if_index, "oper_status": oper, "admin_status": admin, "up": oper == 1, "uplink": uplink, **fields,
    })


def switch_poll(e, *ports):
    e.observe(result("SW1", "snmp", {"up": True, "sys_uptime_s": 86_400.0}, ports))


# -- cameras ------------------------------------------------------------------------------------


def test_video_down_while_network_up_names_the_rtsp_reason():
    e = engine(VideoDownRule(name="video"))
    e.observe(result("C1", "rtsp", {"up": False}, ok=False, reason="401 Unauthorized (wrong credentials)"))
    out = e.evaluate(view(video={"C1": "down"}), set())
    assert list(out) == [("video", "device:C1")]
    assert out[("video", "device:C1")].title == "摄像机S1C1网络正常但视频中断（401 Unauthorized (wrong credentials)）"


def test_video_down_is_not_raised_for_a_camera_down_on_the_network_but_a_firing_one_is_held():
    e = engine(VideoDownRule(name="video"))
    offline = view(video={"C1": "unreachable"}, C1="down")
    assert e.evaluate(offline, set()) == {}
    held = e.evaluate(offline, {("video", "device:C1")})
    assert held[("video", "device:C1")].held
    assert e.evaluate(view(), {("video", "device:C1")}) == {}  # video seen back: resolves


def test_online_rate_rule_reads_its_own_basis():
    rule = OnlineRateRule(name="video-rate", scope="fleet", kind="camera", basis=Basis.VIDEO)
    e = engine(rule)
    v = view()
    video_states = {"C1": State.DOWN, "C2": State.UP}
    rates = (*v.rates, *online_rates([d for d in DEVICES if d.id in video_states], video_states, "video"))
    out = e.evaluate(View(NOW, v.states, v.since_ns, rates, v.bases), set())
    assert out[("video-rate", "fleet")].title == "全网摄像机视频在线率50.00%，低于95%"


@pytest.mark.parametrize("basis", list(Basis))
def test_online_rate_rule_has_a_title_for_every_basis(basis):
    # Every basis has its words (picture, 画面正常率, was missing: such a rule raised KeyError).
    rule = OnlineRateRule(name="rate", scope="fleet", kind="camera", basis=basis)
    v = view()
    states = {"C1": State.DOWN, "C2": State.UP}
    rates = (*online_rates([d for d in DEVICES if d.id in states], states, basis.value),)
    out = engine(rule).evaluate(View(NOW, v.states, v.since_ns, rates, v.bases), set())
    title = out[("rate", "fleet")].title
    assert title.startswith("全网摄像机") and title.endswith("50.00%，低于95%") and basis.value not in title


def test_clock_drift_raises_above_and_clears_below_the_clear_limit():
    e = engine(ClockDriftRule(name="clock", above_s=60, clear_below_s=30))
    key = ("clock", "device:C1")
    e.observe(result("C1", "onvif", {"up": True, "clock_drift_s": 75.0}))
    assert e.evaluate(view(), set())[key].title == "摄像机S1C1时钟偏差75秒，超过60秒"
    e.observe(result("C1", "onvif", {"up": True, "clock_drift_s": 45.0}))
    assert key not in e.evaluate(view(), set())  # not raised at 45 s …
    assert key in e.evaluate(view(), {key})  # … but a firing fault holds until below 30 s
    e.observe(result("C1", "onvif", {"up": True, "clock_drift_s": 3.0}))
    assert e.evaluate(view(), {key}) == {}


def test_a_failed_onvif_probe_holds_a_firing_clock_fault_instead_of_resolving_it():
    e = engine(ClockDriftRule(name="clock"))
    key = ("clock", "device:C1")
    e.observe(result("C1", "onvif", {"up": False}, ok=False, reason="timeout"))
    out = e.evaluate(view(), {key})
    assert out[key].held


def test_inventory_mismatch_carries_the_differences():
    e = engine(InventoryMismatchRule(name="records"))
    e.observe(result("C1", "onvif", {"up": True, "inventory_mismatch": "firmware: V5.5.0 ≠ V5.7.1 (点位表)"}))
    e.observe(result("C2", "onvif", {"up": True, "inventory_mismatch": ""}))
    out = e.evaluate(view(), set())
    assert list(out) == [("records", "device:C1")]
    assert out[("records", "device:C1")].title == "摄像机S1C1与点位表不符：firmware: V5.5.0 ≠ V5.7.1 (点位表)"


# -- switches -----------------------------------------------------------------------------------


def test_uplink_down_is_one_fault_and_admin_down_or_access_ports_are_not():
    e = engine(PortDownRule(name="uplink"))
    switch_poll(e, port("Gi0/1", oper=2, uplink=True), port("Gi0/2", oper=2, admin=2), port("Gi0/5", oper=2))
    out = e.evaluate(view(), set())
    assert list(out) == [("uplink", "device:SW1/Gi0/1")]
    assert out[("uplink", "device:SW1/Gi0/1")].title == "交换机S1SW1上联端口Gi0/1中断"


def test_link_down_trap_acts_at_once_and_the_next_poll_resolves():
    e = engine(PortDownRule(name="uplink"))
    key = ("uplink", "device:SW1/Gi0/1")
    switch_poll(e, port("Gi0/1", uplink=True, if_index=1), port("Gi0/5", if_index=5))
    assert e.evaluate(view(), set()) == {}
    e.observe_trap(TrapEvent(NOW, "198.18.4.2", "SW1", "2c", "1.3.6.1.6.3.1.1.5.3", "link_down", if_index=1))
    assert key in e.evaluate(view(), set())  # no poll in between
    switch_poll(e, port("Gi0/1", uplink=True, if_index=1), port("Gi0/5", if_index=5))
    assert e.evaluate(view(), {key}) == {}


def test_a_trap_for_a_port_never_polled_uses_the_point_list_uplink():
    e = engine(PortDownRule(name="uplink"))
    e.observe_trap(TrapEvent(NOW, "198.18.4.2", "SW1", "2c", "1.3.6.1.6.3.1.1.5.3", "link_down", if_index=1,
                             if_name="Gi0/1"))
    assert ("uplink", "device:SW1/Gi0/1") in e.evaluate(view(), set())


def test_a_down_camera_names_its_access_port_as_the_cause():
    e = engine(DeviceDownRule(name="down"))
    switch_poll(e, port("Gi0/5", oper=2, if_index=5), port("Gi0/6", if_index=6))
    out = e.evaluate(view(C1="down"), set())
    c = out[("down", "device:C1")]
    assert c.title == "摄像机S1C1离线（S1SW1端口Gi0/5中断）"
    assert c.details["cause"] == {"port": "Gi0/5", "switch": "SW1"}


def test_utilisation_of_an_uplink_with_hysteresis():
    e = engine(InterfaceUtilisationRule(name="util", above_pct=90, clear_below_pct=80))
    key = ("util", "device:SW1/Gi0/1")
    switch_poll(e, port("Gi0/1", uplink=True, in_utilisation_pct=50.0, out_utilisation_pct=93.5))
    assert e.evaluate(view(), set())[key].title == "交换机S1SW1端口Gi0/1带宽利用率94%，超过90%"
    switch_poll(e, port("Gi0/1", uplink=True, in_utilisation_pct=50.0, out_utilisation_pct=85.0))
    assert key in e.evaluate(view(), {key}) and key not in e.evaluate(view(), set())


def test_a_switch_that_is_down_holds_its_port_faults_and_raises_none():
    e = engine(PortDownRule(name="uplink"))
    switch_poll(e, port("Gi0/1", oper=2, uplink=True))
    assert e.evaluate(view(SW1="down"), set()) == {}
    assert e.evaluate(view(SW1="down"), {("uplink", "device:SW1/Gi0/1")})[("uplink", "device:SW1/Gi0/1")].held


def test_reboot_from_sysuptime_and_from_a_cold_start_trap():
    e = engine(DeviceRebootedRule(name="reboot", within_s=900))
    e.observe(result("SW1", "snmp", {"up": True, "sys_uptime_s": 240.0}))
    assert e.evaluate(view(), set())[("reboot", "device:SW1")].title == "交换机S1SW1重启（已运行4分钟）"
    e.observe(result("SW1", "snmp", {"up": True, "sys_uptime_s": 86_400.0}))
    assert e.evaluate(view(), set()) == {}
    e.observe_trap(TrapEvent(NOW, "198.18.4.2", "SW1", "2c", "1.3.6.1.6.3.1.1.5.1", "cold_start"))
    assert ("reboot", "device:SW1") in e.evaluate(view(), set())


# -- UPS and servers ------------------------------------------------------------------------------


def test_ups_on_battery_is_announced_with_the_devices_it_powers_and_named_as_their_likely_cause():
    e = engine(UpsOnBatteryRule(name="battery"), DeviceDownRule(name="down"))
    e.observe(result("UPS1", "snmp", {"up": True}, [Series("ups", {}, {"on_battery": True, "minutes_remaining": 25})]))
    out = e.evaluate(view(), set())
    c = out[("battery", "device:UPS1")]
    assert c.title == "UPSS1UPS1市电中断，电池供电（剩余约25分钟），S14台设备依其供电"
    assert set(c.affected) == {"L1", "SW1", "C1", "C2"}
    later = e.evaluate(view(C2="down"), set())
    assert later[("down", "device:C2")].title == "摄像机S1C2离线（可能因UPS S1UPS1市电中断）"


def test_ups_on_battery_trap_acts_before_any_poll_with_the_minutes_it_carries():
    e = engine(UpsOnBatteryRule(name="battery"))
    e.observe_trap(TrapEvent(NOW, "198.18.4.3", "UPS1", "2c", "1.3.6.1.2.1.33.2.1", "ups_on_battery",
                             varbinds=(("1.3.6.1.2.1.33.1.2.3.0", "18"),)))
    assert "剩余约18分钟" in e.evaluate(view(), set())[("battery", "device:UPS1")].title


def test_battery_low_by_minutes_or_by_the_battery_status_flag():
    e = engine(UpsBatteryLowRule(name="low", below_minutes=10, clear_above_minutes=15))
    key = ("low", "device:UPS1")
    e.observe(result("UPS1", "snmp", {"up": True}, [Series("ups", {}, {"minutes_remaining": 8, "battery_low": False})]))
    assert e.evaluate(view(), set())[key].title == "UPSS1UPS1电池即将耗尽（剩余8分钟）"
    e.observe(result("UPS1", "snmp", {"up": True}, [Series("ups", {}, {"minutes_remaining": 12, "battery_low": False})]))
    assert key in e.evaluate(view(), {key}) and key not in e.evaluate(view(), set())
    e.observe(result("UPS1", "snmp", {"up": True}, [Series("ups", {}, {"minutes_remaining": 40, "battery_low": True})]))
    assert key in e.evaluate(view(), set())


def test_storage_per_disk_and_a_disk_no_longer_reported_is_held():
    e = engine(StorageUsageRule(name="disk"))
    disks = [Series("host_storage", {"storage": "/data"}, {"used_pct": 95.5}),
             Series("host_storage", {"storage": "/"}, {"used_pct": 40.0})]
    e.observe(result("SRV1", "snmp", {"up": True}, disks))
    out = e.evaluate(view(), set())
    assert list(out) == [("disk", "device:SRV1//data")]
    assert out[("disk", "device:SRV1//data")].title == "服务器S9SRV1磁盘/data使用率96%，超过90%"
    e.observe(result("SRV1", "snmp", {"up": False}, ok=False, reason="timeout"))
    assert e.evaluate(view(), {("disk", "device:SRV1//data")})[("disk", "device:SRV1//data")].held


@pytest.mark.parametrize("rule, data, message", [
    (ClockDriftRule, {"above_s": 30, "clear_below_s": 60}, "clear_below_s must be ≤ above_s"),
    (UpsBatteryLowRule, {"below_minutes": 10, "clear_above_minutes": 5}, "clear_above_minutes must be ≥ below_minutes"),
    (InterfaceUtilisationRule, {"above_pct": 120}, "less than or equal to 100"),
])
def test_value_rule_limits_are_validated(rule, data, message):
    with pytest.raises(ValidationError, match=message):
        rule(name="r", **data)


def test_snmp_value_rule_on_what_device_profiles_measure():
    """snmp_value: a limit on any declared field per instance (a precision AC's supply air), with
    hysteresis, and a flag (a Moxa switch's second power input lost)."""
    from rules.families.values import SnmpValueRule

    hot = SnmpValueRule(name="hot", value="precision_ac_sensor.temperature_c", above=28, clear_below=26,
                        match={"kind": ["server"]})
    power = SnmpValueRule(name="power2", value="switch_power.power2_present", equals=False)
    e = engine(hot, power)
    air = [Series("precision_ac_sensor", {"point": "supply_air"}, {"temperature_c": 29.5}),
           Series("precision_ac_sensor", {"point": "return_air"}, {"temperature_c": 24.0})]
    e.observe(result("SRV1", "snmp", {"up": True}, air))
    e.observe(result("SW1", "snmp", {"up": True}, [Series("switch_power", {}, {"power1_present": True,
                                                                              "power2_present": False})]))
    out = e.evaluate(view(), set())
    assert set(out) == {("hot", "device:SRV1/supply_air"), ("power2", "device:SW1")}
    assert out[("hot", "device:SRV1/supply_air")].title == "服务器S9SRV1（supply_air）precision_ac_sensor.temperature_c29.5°C，超过28°C"
    assert out[("power2", "device:SW1")].title == "交换机S1SW1switch_power.power2_present为false"
    key = ("hot", "device:SRV1/supply_air")
    e.observe(result("SRV1", "snmp", {"up": True}, [Series("precision_ac_sensor", {"point": "supply_air"},
                                                           {"temperature_c": 27.0})]))
    assert key in e.evaluate(view(), {key}) and key not in e.evaluate(view(), set())  # clears below 26 only


@pytest.mark.parametrize("config, message", [
    ({"value": "precision_ac.temp", "above": 1}, "no declared measurement.field (fields of precision_ac:"),
    ({"value": "nothing.x", "above": 1}, "no declared measurement.field (measurements: "),
    ({"value": "environment.value", "above": 30, "below": 5}, "give exactly one of above, below, equals"),
    ({"value": "environment.value", "above": 30, "clear_below": 35}, "clear_below must be ≤ above"),
])
def test_snmp_value_rule_refuses_what_the_schema_does_not_declare(config, message):
    from rules.families.values import SnmpValueRule

    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        SnmpValueRule(name="r", **config)
