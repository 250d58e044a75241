"""What a trap means for a device's polled values (TrapEvent.values): owned by the trap receiver,
applied by the rules engine without naming a trap."""

import ipaddress

import pytest

from monitor.core.model import Device, Kind
from probes.snmp import SnmpProbe
from probes.traps import TRAP_NAMES, UPS_MINUTES_REMAINING, TrapEvent

SWITCH = Device("SW1", "SW1", Kind.SWITCH, ipaddress.ip_address("198.18.6.2"), "S1", "R1", uplink="Gi0/1")
UPS = Device("UPS1", "UPS1", Kind.UPS, ipaddress.ip_address("198.18.6.3"), "S1", "R1")
OID = {name: oid for oid, name in TRAP_NAMES.items()}


def event(name, device="SW1", **kw):
    return TrapEvent(1, "198.18.6.2", device, "2c", OID.get(name, "1.3.6.1.4.1.9.9.1"), name, **kw)


def test_link_down_sets_the_port_down_by_its_if_index_and_names_a_port_not_polled_yet():
    (patch,) = event("link_down", if_index=1, if_name="Gi0/1").values(SWITCH)
    assert (patch.measurement, dict(patch.tags)) == ("snmp_interface", {"interface": "Gi0/1"})
    assert dict(patch.fields) == {"oper_status": 2, "up": False, "if_index": 1} and patch.same == "if_index"
    assert dict(patch.defaults) == {"admin_status": 1, "uplink": True}  # the point list's uplink
    (up,) = event("link_up", if_index=5).values(SWITCH)
    assert dict(up.tags) == {"interface": "ifIndex 5"} and up.fields["oper_status"] == 1 and up.fields["up"]
    assert up.defaults["uplink"] is False


def test_ups_on_battery_carries_the_minutes_left_when_the_trap_does():
    (patch,) = event("ups_on_battery", "UPS1", varbinds=((UPS_MINUTES_REMAINING, "18"),)).values(UPS)
    assert (patch.measurement, dict(patch.tags)) == ("ups", {})
    assert dict(patch.fields) == {"on_battery": True, "output_source": 5, "minutes_remaining": 18}
    (bare,) = event("ups_on_battery", "UPS1", varbinds=((UPS_MINUTES_REMAINING, "n/a"),)).values(UPS)
    assert "minutes_remaining" not in bare.fields


@pytest.mark.parametrize("name", ["cold_start", "warm_start"])
def test_a_restart_is_sysuptime_zero(name):
    (patch,) = event(name).values(SWITCH)
    assert (patch.measurement, dict(patch.tags), dict(patch.fields)) == ("snmp", {}, {"sys_uptime_s": 0.0})


@pytest.mark.parametrize("name", ["ups_test_completed", "ups_alarm_entry_added", "ups_alarm_entry_removed", "other"])
def test_other_notifications_say_nothing_about_polled_values(name):
    assert event(name).values(UPS) == ()


def test_patches_set_only_measurements_and_fields_the_snmp_probe_declares():
    declared = {spec.name: set(spec.fields) for spec in SnmpProbe.measurements}
    patches = [
        *event("link_down", if_index=1).values(SWITCH),
        *event("ups_on_battery", "UPS1", varbinds=((UPS_MINUTES_REMAINING, "3"),)).values(UPS),
        *event("cold_start").values(SWITCH),
    ]
    for patch in patches:
        assert set(patch.fields) | set(patch.defaults) <= declared[patch.measurement]


def test_the_engine_keeps_what_the_poll_knows_of_a_port_and_patches_only_what_the_trap_says():
    from monitor.fleet.inventory import Inventory
    from monitor.state.online_rate import online_rates
    from monitor.state.tracker import State
    from probes.base import ProbeResult, Series
    from rules.base import View
    from rules.config import FlappingConfig
    from rules.engine import RulesEngine
    from rules.families.values import PortDownRule

    engine = RulesEngine(Inventory([SWITCH]), [PortDownRule(name="port", uplink_only=False)], FlappingConfig())
    ports = [Series("snmp_interface", {"interface": "Gi0/2"}, {"if_index": 2, "admin_status": 2, "oper_status": 1})]
    engine.observe(ProbeResult("SW1", "snmp", 1, True, None, {"up": True}, ports))
    engine.observe_trap(event("link_down", if_index=2, if_name="GigabitEthernet0/2"))
    view = View(2, {"SW1": State.UP}, {}, online_rates([SWITCH], {"SW1": State.UP}))
    assert engine.evaluate(view, set()) == {}  # switched off on purpose (admin down): no fault
    assert engine.facts.values[("SW1", "snmp_interface")] == {
        ("Gi0/2",): {"if_index": 2, "admin_status": 2, "oper_status": 2, "up": False}
    }


def test_a_port_known_by_name_but_with_another_if_index_is_not_the_port_polled_before():
    from monitor.fleet.inventory import Inventory
    from probes.base import ProbeResult, Series
    from rules.config import FlappingConfig
    from rules.engine import RulesEngine
    from rules.families.values import PortDownRule

    engine = RulesEngine(Inventory([SWITCH]), [PortDownRule(name="port")], FlappingConfig())
    polled = {"if_index": 1, "admin_status": 1, "oper_status": 1, "uplink": True, "in_errors_per_s": 9.0}
    engine.observe(ProbeResult("SW1", "snmp", 1, True, None, {"up": True}, [Series("snmp_interface", {"interface": "Gi0/1"}, polled)]))
    engine.observe_trap(event("link_down", if_index=7, if_name="Gi0/1"))  # renumbered by a restart
    assert engine.facts.values[("SW1", "snmp_interface")] == {
        ("Gi0/1",): {"admin_status": 1, "uplink": True, "oper_status": 2, "up": False, "if_index": 7}
    }
