"""Value rules: on the latest values of a probe's measurement, per device and per instance where
the measurement has several (a port, a disk): clock_drift (ONVIF), inventory_mismatch (ONVIF
vs point list), port_down (IF-MIB ifOperStatus of uplinks), ups_on_battery / ups_battery_low
(UPS-MIB, RFC 1628), device_rebooted (sysUpTime), interface_utilisation, interface_errors,
storage_usage (HOST-RESOURCES-MIB), and snmp_value: a limit or a value of any declared field,
e.g. of what the SNMP device profiles measure (precision AC, sensors, PDUs, bridges, switch CPU).
Measurements and fields are those the probes declare (`Probe.measurements`; tests/
test_rules_registry.py holds them to it; snmp_value's are checked at config load).

They hold, never raise, while their device is offline on the network (device_down speaks for
it), and a failed poll (no instances) holds a firing fault rather than resolving it. Traps
patch the latest values at once (probes/traps.py TrapEvent.values).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar, Literal, Mapping, Self

from pydantic import Field, model_validator

from monitor.metrics.schema import MEASUREMENTS as SCHEMA

from monitor.core.config_base import SelectorConfig
from monitor.core.model import Device, Kind
from monitor.state.tracker import State
from rules.base import Condition, Facts, Key, Now, RuleBase, beyond
from rules.model import Severity

TITLES = {
    "zh": {
        "clock_drift": "{kind}{name}时钟偏差{value:.0f}秒，超过{limit:g}秒",
        "inventory_mismatch": "{kind}{name}与点位表不符：{detail}",
        "port_down": "{kind}{name}端口{port}中断",
        "uplink_down": "{kind}{name}上联端口{port}中断",
        "ups_on_battery": "{kind}{name}市电中断，电池供电（剩余约{minutes}分钟），{site}{count}台设备依其供电",
        "ups_battery_low": "{kind}{name}电池即将耗尽（剩余{minutes}分钟）",
        "device_rebooted": "{kind}{name}重启（已运行{minutes:.0f}分钟）",
        "interface_utilisation": "{kind}{name}端口{port}带宽利用率{value:.0f}%，超过{limit:g}%",
        "interface_errors": "{kind}{name}端口{port}错误包{value:.1f}个/秒，超过{limit:g}个/秒",
        "storage_usage": "{kind}{name}磁盘{disk}使用率{value:.0f}%，超过{limit:g}%",
        "snmp_value": "{kind}{name}{where}{what}{shown}",
    },
    "en": {
        "clock_drift": "{kind} {name} clock off by {value:.0f} s, above {limit:g} s",
        "inventory_mismatch": "{kind} {name} differs from the point list: {detail}",
        "port_down": "{kind} {name} port {port} down",
        "uplink_down": "{kind} {name} uplink {port} down",
        "ups_on_battery": "{kind} {name} on battery, mains lost (about {minutes} min left); {count} devices at {site} depend on it",
        "ups_battery_low": "{kind} {name} battery nearly exhausted ({minutes} min left)",
        "device_rebooted": "{kind} {name} rebooted (up {minutes:.0f} min)",
        "interface_utilisation": "{kind} {name} port {port} utilisation {value:.0f}%, above {limit:g}%",
        "interface_errors": "{kind} {name} port {port} errors {value:.1f}/s, above {limit:g}/s",
        "storage_usage": "{kind} {name} disk {disk} {value:.0f}% used, above {limit:g}%",
        "snmp_value": "{kind} {name}{where} {what} {shown}",
    },
}

Described = tuple[str, dict[str, Any], tuple[str, ...]]  # (title template, title arguments, affected ids)


class _ValueRule(RuleBase):
    """A rule on the latest value of a probe's measurement, per device and per instance (a
    port, a disk). Subclasses name the measurement, the fields (the value is the largest of
    those present) and the unit; `above` rules raise above `limit_keys[0]` and clear below
    `limit_keys[1]`, `below` rules the other way round; flag rules (no limit_keys) hold while
    `flag(fields)` is true. Their title is the template named like their type, with `kind`,
    `name`, `value`, `limit`, `instance` (and its aliases `port` and `disk`), plus what
    `describe` adds."""

    titles = TITLES
    measurement: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]  # what the rule reads; none present = no data
    unit: ClassVar[str] = ""
    limit_keys: ClassVar[tuple[str, str] | None] = None
    direction: ClassVar[Literal["above", "below"]] = "above"

    def limits(self) -> tuple[float, float]:
        """(raise, clear); the clear limit defaults to the raise limit."""
        assert self.limit_keys is not None
        limit, clear = (getattr(self, key) for key in self.limit_keys)
        return limit, limit if clear is None else clear

    def flag(self, fields: Mapping[str, Any]) -> bool:
        """The condition holds on these fields whatever the limits say (flag rules)."""
        return False

    def applies(self, fields: Mapping[str, Any]) -> bool:
        """Whether this instance (port, disk) is watched at all."""
        return True

    def applies_to(self, facts: Facts, device: Device) -> bool:
        """Whether the device's values are judged now; when not, they count as no data (a
        firing fault is held, nothing new is raised)."""
        return True

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        """(title template, further title arguments, affected device ids) of a condition on
        these fields of `device`."""
        return self.type, {}, ()

    @model_validator(mode="after")
    def _clear_on_the_right_side(self) -> Self:
        if self.limit_keys is not None:
            limit, clear = self.limits()
            if (clear > limit) if self.direction == "above" else (clear < limit):
                side = "≤" if self.direction == "above" else "≥"
                raise ValueError(f"{self.limit_keys[1]} must be {side} {self.limit_keys[0]}")
        return self

    def watch(self, facts: Facts) -> None:
        facts.keep_values(self.measurement, (d.id for d in facts.match(self)))

    def evaluate(self, facts: Facts, now: Now, out: dict[Key, Condition]) -> None:
        firing = now.firing
        if self.measurement not in facts.reported and not any(key[0] == self.name for key in firing):
            return  # no probe reports it (SNMP not set up, say): 10,000 lookups saved per evaluation
        states, values = now.view.states, facts.values
        seen: set[Key] = set()
        for device in facts.devices[self.name]:
            prefix = f"device:{device.id}"
            # Offline on the network: device_down speaks for it; its faults are held below.
            offline = states.get(device.id, State.UNKNOWN).offline
            judged = not offline and self.applies_to(facts, device)
            instances = values.get((device.id, self.measurement), {}) if judged else {}
            for instance, fields in instances.items():
                if not self.applies(fields):
                    continue
                key = (self.name, "/".join((prefix, *instance)))
                holds, value = self._judge(fields, key in firing)
                if holds is None:  # no data for this rule in this result
                    continue
                seen.add(key)
                if holds:
                    out[key] = self._condition(facts, device, instance, fields, key, value)
        for key in firing:
            if key[0] == self.name and key not in seen and key not in out:
                device_id = key[1].split("/", 1)[0].removeprefix("device:")
                device = facts.inventory.devices.get(device_id)
                if device is not None:
                    out[key] = Condition(
                        self.name, self.type, key[1], self.severity, "", self.for_s, self.clear_for_s,
                        device_id=device.id, site=device.site, region=device.region, unit=self.unit, held=True,
                    )

    def _judge(self, fields: Mapping[str, Any], firing: bool) -> tuple[bool | None, float | None]:
        """(holds, value); holds is None when the fields carry nothing this rule reads."""
        if all(fields.get(f) is None for f in self.fields):
            return None, None
        values = [float(v) for f in self.fields if isinstance(v := fields.get(f), (int, float)) and not isinstance(v, bool)]
        value = max(values) if values else None
        flagged = self.flag(fields)
        if self.limit_keys is None:
            return flagged, None
        if value is None:
            return (True, None) if flagged else (None, None)
        limit, clear = self.limits()
        return beyond(value, limit, clear, firing, self.direction) or flagged, value

    def _condition(
        self, facts: Facts, device: Device, instance: tuple[str, ...], fields: Mapping[str, Any], key: Key,
        value: float | None,
    ) -> Condition:
        limit = self.limits()[0] if self.limit_keys is not None else None
        part = instance[0] if instance else ""
        template, more, affected = self.describe(facts, device, fields, value)
        args: dict[str, Any] = {
            "kind": facts.kinds[device.kind], "name": device.name, "value": value or 0.0, "limit": limit or 0.0,
            "instance": part, "port": part, "disk": part, **more,
        }
        return Condition(
            self.name, self.type, key[1], self.severity, self.title(facts, template, **args), self.for_s,
            self.clear_for_s, device_id=device.id, site=device.site, region=device.region, value=value,
            threshold=limit, unit=self.unit, affected=affected, details={"instance": part} if part else {},
        )


def _minutes(fields: Mapping[str, Any]) -> str:
    minutes = fields.get("minutes_remaining")
    return "?" if minutes is None else f"{minutes:g}"


class ClockDriftRule(_ValueRule):
    measurement, fields, unit, limit_keys = "onvif", ("clock_drift_s",), "s", ("above_s", "clear_below_s")
    type: Literal["clock_drift"] = "clock_drift"
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    severity: Severity = Severity.MINOR
    above_s: Annotated[float, Field(gt=0)] = 60.0
    """Evidence timestamps are only as good as the camera's clock."""
    clear_below_s: Annotated[float, Field(gt=0)] | None = 30.0


class InventoryMismatchRule(_ValueRule):
    measurement, fields = "onvif", ("inventory_mismatch",)
    type: Literal["inventory_mismatch"] = "inventory_mismatch"
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    severity: Severity = Severity.MINOR

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("inventory_mismatch"))

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        return self.type, {"detail": fields.get("inventory_mismatch", "")}, ()


class PortDownRule(_ValueRule):
    measurement, fields = "snmp_interface", ("oper_status",)
    type: Literal["port_down"] = "port_down"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH])
    uplink_only: bool = True
    """Only uplink ports (point list `uplink`); a camera's access port down is shown in the
    camera's own device_down fault as its cause."""

    def applies(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("uplink")) or not self.uplink_only

    def flag(self, fields: Mapping[str, Any]) -> bool:
        # ifAdminStatus down = switched off on purpose (RFC 2863 §3.1.13): not a fault.
        return fields.get("admin_status") == 1 and fields.get("oper_status", 1) != 1

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        return "uplink_down" if fields.get("uplink") else "port_down", {}, ()


class UpsOnBatteryRule(_ValueRule):
    measurement, fields = "ups", ("on_battery",)
    type: Literal["ups_on_battery"] = "ups_on_battery"
    match: SelectorConfig = SelectorConfig(kind=[Kind.UPS])
    severity: Severity = Severity.CRITICAL

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("on_battery"))

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        # Every other device of the site: what the UPS powers, as far as the point list tells.
        affected = tuple(d.id for d in facts.at_site.get(device.site, ()) if d.id != device.id)
        return self.type, {"minutes": _minutes(fields), "site": device.site, "count": len(affected)}, affected


class UpsBatteryLowRule(_ValueRule):
    measurement, fields, unit, limit_keys = "ups", ("minutes_remaining",), "min", ("below_minutes", "clear_above_minutes")
    direction = "below"
    type: Literal["ups_battery_low"] = "ups_battery_low"
    match: SelectorConfig = SelectorConfig(kind=[Kind.UPS])
    severity: Severity = Severity.CRITICAL
    below_minutes: Annotated[float, Field(gt=0)] = 10.0
    """upsEstimatedMinutesRemaining below this, or upsBatteryStatus low/depleted."""
    clear_above_minutes: Annotated[float, Field(gt=0)] | None = 15.0

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("battery_low"))

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        return self.type, {"minutes": _minutes(fields)}, ()


class DeviceRebootedRule(_ValueRule):
    measurement, fields, unit, limit_keys = "snmp", ("sys_uptime_s",), "s", ("within_s", "within_s")
    direction = "below"
    type: Literal["device_rebooted"] = "device_rebooted"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH, Kind.UPS, Kind.SERVER, Kind.PLATFORM])
    severity: Severity = Severity.MINOR
    within_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    """Holds while sysUpTime is below this: the device restarted that recently."""

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        return self.type, {"minutes": (value or 0.0) / 60}, ()


class InterfaceUtilisationRule(_ValueRule):
    measurement, unit, limit_keys = "snmp_interface", "%", ("above_pct", "clear_below_pct")
    fields = ("in_utilisation_pct", "out_utilisation_pct")
    type: Literal["interface_utilisation"] = "interface_utilisation"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH])
    above_pct: Annotated[float, Field(gt=0, le=100)] = 90.0
    clear_below_pct: Annotated[float, Field(gt=0, le=100)] | None = 80.0
    uplink_only: bool = True

    def applies(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("uplink")) or not self.uplink_only


class InterfaceErrorsRule(_ValueRule):
    measurement, unit, limit_keys = "snmp_interface", "/s", ("above_per_s", "clear_below_per_s")
    fields = ("in_errors_per_s", "out_errors_per_s")
    type: Literal["interface_errors"] = "interface_errors"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH])
    above_per_s: Annotated[float, Field(gt=0)] = 1.0
    clear_below_per_s: Annotated[float, Field(ge=0)] | None = None
    uplink_only: bool = True

    def applies(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("uplink")) or not self.uplink_only


class StorageUsageRule(_ValueRule):
    measurement, fields, unit, limit_keys = "host_storage", ("used_pct",), "%", ("above_pct", "clear_below_pct")
    type: Literal["storage_usage"] = "storage_usage"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SERVER, Kind.PLATFORM])
    above_pct: Annotated[float, Field(gt=0, le=100)] = 90.0
    clear_below_pct: Annotated[float, Field(gt=0, le=100)] | None = 85.0


_SHOWN = {
    "zh": {"above": "{value:g}{unit}，超过{limit:g}{unit}", "below": "{value:g}{unit}，低于{limit:g}{unit}",
           "equals": "为{equals}"},
    "en": {"above": "{value:g}{unit}, above {limit:g}{unit}", "below": "{value:g}{unit}, below {limit:g}{unit}",
           "equals": "is {equals}"},
}


class SnmpValueRule(_ValueRule):
    """A limit on, or a value of, any declared field: `value: precision_ac_sensor.temperature_c`
    with `above` (and `clear_below`), `below` (and `clear_above`) or `equals` (a flag or a code:
    `precision_ac.general_alarm` equals true, `switch_power.power2_present` equals false). Per
    instance where the measurement has several (a sensor, an outlet, a board). The measurement
    and field must be in the schema (monitor.metrics.schema), checked at config load."""

    measurement: ClassVar[str] = ""  # per rule, from `value` (set at validation)
    fields: ClassVar[tuple[str, ...]] = ()
    type: Literal["snmp_value"] = "snmp_value"
    match: SelectorConfig = SelectorConfig()
    severity: Severity = Severity.MINOR
    value: str
    """measurement.field, e.g. environment.value, pdu_outlet.switched_on, switch_health.cpu_pct."""
    above: float | None = None
    clear_below: float | None = None
    below: float | None = None
    clear_above: float | None = None
    equals: bool | int | str | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Self:
        measurement, _, field = self.value.partition(".")
        spec = SCHEMA.get(measurement)
        if spec is None or field not in spec.fields:
            known = f"fields of {measurement}: {', '.join(spec.fields)}" if spec else \
                f"measurements: {', '.join(SCHEMA)}"
            raise ValueError(f"value {self.value!r} is no declared measurement.field ({known})")
        given = [k for k in ("above", "below", "equals") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of above, below, equals")
        kind = given[0]
        limit_keys = {"above": ("above", "clear_below"), "below": ("below", "clear_above")}.get(kind)
        for name, attr in (("measurement", measurement), ("fields", (field,)), ("unit", spec.fields[field].unit),
                           ("limit_keys", limit_keys), ("direction", "below" if kind == "below" else "above")):
            object.__setattr__(self, name, attr)  # per rule what subclasses of _ValueRule fix per class
        if limit_keys is not None:
            limit, clear = self.limits()
            if (clear > limit) if kind == "above" else (clear < limit):
                raise ValueError(f"{limit_keys[1]} must be {'≤' if kind == 'above' else '≥'} {limit_keys[0]}")
        return self

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return self.equals is not None and fields.get(self.fields[0]) == self.equals

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        kind = "equals" if self.equals is not None else ("below" if self.direction == "below" else "above")
        limit = self.limits()[0] if self.limit_keys is not None else 0.0
        equals = str(self.equals).lower() if isinstance(self.equals, bool) else self.equals
        shown = _SHOWN[facts.language][kind].format(value=value or 0.0, unit=self.unit, limit=limit, equals=equals)
        return self.type, {"what": self.value, "shown": shown, "where": ""}, ()

    def _condition(self, facts: Facts, device: Device, instance: tuple[str, ...], fields: Mapping[str, Any], key: Key,
                   value: float | None) -> Condition:
        condition = super()._condition(facts, device, instance, fields, key, value)
        if not instance:
            return condition
        where = f"（{instance[0]}）" if facts.language == "zh" else f" ({instance[0]})"
        template, args, _ = self.describe(facts, device, fields, value)
        title = self.title(facts, template, kind=facts.kinds[device.kind], name=device.name, **{**args, "where": where})
        return dataclasses.replace(condition, title=title)
