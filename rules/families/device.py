"""device_down: a device DOWN on the network (not merely unreachable behind a down parent) for
`for_s`. One fault per real problem:
- devices UNREACHABLE behind it are listed in its fault ("交换机X离线，影响N路摄像机");
- a region whose every counted device is offline is one region fault (`region_dark_severity`);
- a flapping device raises none while it flaps (the engine's flapping fault speaks for it);
- its fault names its likely cause when one is seen: its access port down on the parent switch
  (point list `port`; what port_down watches), or a UPS of its site on battery (what
  ups_on_battery watches).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from monitor.core.model import Device, Kind
from monitor.state.tracker import State
from rules.base import OFFLINE, Condition, Facts, Key, Now, RuleBase
from rules.families.values import PortDownRule, UpsOnBatteryRule
from rules.model import Severity

TITLES = {
    "zh": {
        "down": "{kind}{name}离线",
        "down_affected": "{kind}{name}离线，影响{cameras}路摄像机",
        "down_affected_more": "{kind}{name}离线，影响{cameras}路摄像机及{others}台其他设备",
        "down_affected_devices": "{kind}{name}离线，影响{others}台设备",
        "region_dark": "{region}全部离线（{count}台设备）",
        "cause_port": "（{parent}端口{port}中断）",
        "cause_ups": "（可能因UPS {ups}市电中断）",
    },
    "en": {
        "down": "{kind} {name} down",
        "down_affected": "{kind} {name} down, {cameras} cameras affected",
        "down_affected_more": "{kind} {name} down, {cameras} cameras and {others} other devices affected",
        "down_affected_devices": "{kind} {name} down, {others} devices affected",
        "region_dark": "{region} entirely offline ({count} devices)",
        "cause_port": " (port {port} of {parent} down)",
        "cause_ups": " (likely: UPS {ups} lost mains)",
    },
}
PORTS, UPS = PortDownRule.measurement, UpsOnBatteryRule.measurement


class DeviceDownRule(RuleBase):
    titles = TITLES
    type: Literal["device_down"] = "device_down"
    severity_by_kind: dict[Kind, Severity] = {
        Kind.LINK: Severity.CRITICAL,
        Kind.PLATFORM: Severity.CRITICAL,
        Kind.SERVER: Severity.MAJOR,
        Kind.SWITCH: Severity.MAJOR,
        Kind.UPS: Severity.MAJOR,
        Kind.NVR: Severity.MAJOR,  # a dead recorder records nothing for all its channels
        Kind.CAMERA: Severity.MINOR,
    }
    """Severity by the down device's kind; `severity` for kinds not listed."""
    region_dark_severity: Severity = Severity.CRITICAL

    def watch(self, facts: Facts) -> None:
        facts.match(self)
        # For the likely causes: the parents' access ports and the sites' UPS units.
        devices = facts.inventory.devices.values()
        facts.keep_values(PORTS, (d.parent for d in devices if d.port and d.parent))
        facts.keep_values(UPS, (d.id for d in devices if d.kind is Kind.UPS))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        view, firing, dark, flapping = now.view, now.firing, now.dark, now.flapping
        for region, ids in dark.items():
            key = (self.name, f"region:{region}")
            out[key] = Condition(
                self.name, "region_dark", key[1], self.region_dark_severity,
                self.title(facts, "region_dark", region=region, count=len(ids)),
                self.for_s, self.clear_for_s, region=region, affected=tuple(ids), value=len(ids), unit="devices",
            )
        states, unknown = view.states, State.UNKNOWN
        for device in facts.devices[self.name]:
            state = states.get(device.id, unknown)
            if state not in OFFLINE:
                continue  # up or unknown: neither raises nor holds
            key = (self.name, f"device:{device.id}")
            # A firing fault holds while the device is offline (a down camera whose switch then
            # dies is still not back); a new one needs the device itself DOWN, in a region that
            # is not dark, not flapping.
            if key not in firing and not (state is State.DOWN and device.region not in dark and device.id not in flapping):
                continue
            affected = tuple(d for d in facts.behind.get(device.id, ()) if view.states.get(d) is State.UNREACHABLE)
            details: dict[str, Any] = {"state": state.value}
            cause = self._cause(facts, device, details)
            out[key] = Condition(
                self.name, "device_down", key[1], self.severity_by_kind.get(device.kind, self.severity),
                self._down_title(facts, device, affected) + cause, self.for_s, self.clear_for_s,
                since_ns=view.since_ns.get(device.id), device_id=device.id, site=device.site, region=device.region,
                affected=affected, details=details,
            )

    def _cause(self, facts: Facts, device: Device, details: dict[str, Any]) -> str:
        """The likely cause of a device being down, as a title suffix ("" when none is seen);
        adds it to `details`."""
        if device.port and device.parent:
            ports = facts.values.get((device.parent, PORTS), {})
            fields = ports.get((device.port,))
            if fields is not None and fields.get("oper_status", 1) != 1:
                details["cause"] = {"port": device.port, "switch": device.parent}
                parent = facts.inventory.devices[device.parent].name
                return self.title(facts, "cause_port", parent=parent, port=device.port)
        for ups in facts.at_site.get(device.site, ()):
            if ups.kind is Kind.UPS and ups.id != device.id and facts.values.get((ups.id, UPS), {}).get((), {}).get("on_battery"):
                details["cause"] = {"ups": ups.id}
                return self.title(facts, "cause_ups", ups=ups.name)
        return ""

    def _down_title(self, facts: Facts, device: Device, affected: Sequence[str]) -> str:
        cameras = sum(1 for d in affected if facts.inventory.devices[d].kind is Kind.CAMERA)
        others = len(affected) - cameras
        if cameras and others:
            template = "down_affected_more"
        elif cameras:
            template = "down_affected"
        elif others:
            template = "down_affected_devices"
        else:
            template = "down"
        return self.title(facts, template, kind=facts.kinds[device.kind], name=device.name, cameras=cameras, others=others)
