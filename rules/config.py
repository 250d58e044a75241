"""Config of the rules engine (config.yaml sections `rules` and `flapping`); the alerting
sections (`maintenance`, `notify`) are rules.alerting.config.

Rule types (RFC-free: these are the contract's own terms):
- device_down: a device DOWN (not merely unreachable behind a down parent) for `for_s`.
  Cameras behind it fold into its fault; a region wholly dark is one fault for the region.
- online_rate: a group's online rate (在线率) below `below_pct` for `for_s`; clears at or above
  `clear_above_pct` (hysteresis).
- latency / loss / jitter: the mean of the device's last `window` ICMP results above the
  limit; clear below the (lower) clear limit.
- video_down: a camera up on the network whose video (RTSP) — or, with `basis: service`, its
  ONVIF service — is down: the picture is gone while ping says all is well.
- value rules on the latest result of a probe (per device, and per port or disk where the
  measurement has several): clock_drift (ONVIF), inventory_mismatch (ONVIF vs point list),
  port_down (IF-MIB ifOperStatus of uplinks), ups_on_battery / ups_battery_low (UPS-MIB,
  RFC 1628), device_rebooted (sysUpTime), interface_utilisation, interface_errors,
  storage_usage (HOST-RESOURCES-MIB).
Every rule has `for_s` (raise only when sustained) and `clear_for_s` (resolve only when the
clear condition held that long), so a value hovering at the limit raises one fault.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Mapping, Self, Union

from pydantic import Field, model_validator

from monitor.core.model import Basis
from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from monitor.core.model import Kind
from rules.model import Severity


class _RuleBase(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    match: SelectorConfig = SelectorConfig()
    for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    clear_for_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    severity: Severity = Severity.MAJOR


class DeviceDownRule(_RuleBase):
    type: Literal["device_down"] = "device_down"
    severity_by_kind: dict[Kind, Severity] = {
        Kind.LINK: Severity.CRITICAL,
        Kind.PLATFORM: Severity.CRITICAL,
        Kind.SERVER: Severity.MAJOR,
        Kind.SWITCH: Severity.MAJOR,
        Kind.UPS: Severity.MAJOR,
        Kind.CAMERA: Severity.MINOR,
    }
    """Severity by the down device's kind; `severity` for kinds not listed."""
    region_dark_severity: Severity = Severity.CRITICAL


class OnlineRateRule(_RuleBase):
    type: Literal["online_rate"] = "online_rate"
    basis: Basis = Basis.ONLINE
    """Which online rate (monitor.state.availability): the contract's `online` by default."""
    scope: Literal["fleet", "region", "site"] = "region"
    kind: Kind | Literal["all"] = Kind.CAMERA
    below_pct: Annotated[float, Field(gt=0, le=100)] = ONLINE_RATE_TARGET_PCT
    clear_above_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    """Defaults to below_pct."""

    @model_validator(mode="after")
    def _clear_not_below_raise(self) -> "OnlineRateRule":
        if self.clear_above_pct is not None and self.clear_above_pct < self.below_pct:
            raise ValueError("clear_above_pct must be ≥ below_pct")
        return self


class _WindowRule(_RuleBase):
    """A rule on the mean of one ICMP field over the device's last `window` answered results.
    Subclasses name the field (`metric`, its `unit`) and their raise/clear keys (`limit_keys`)."""

    metric: ClassVar[str]
    unit: ClassVar[str]
    limit_keys: ClassVar[tuple[str, str]]  # (raise above, clear below) field names

    window: Annotated[int, Field(ge=1, le=1000)] = 5
    """How many of the device's latest ICMP results are averaged."""
    min_samples: Annotated[int, Field(ge=1, le=1000)] = 3

    def limits(self) -> tuple[float, float]:
        """(raise above, clear below); the clear limit defaults to the raise limit."""
        limit, clear = (getattr(self, key) for key in self.limit_keys)
        return limit, limit if clear is None else clear

    @model_validator(mode="after")
    def _clear_not_above_raise(self) -> Self:
        limit, clear = self.limits()
        if clear > limit:
            raise ValueError(f"{self.limit_keys[1]} must be ≤ {self.limit_keys[0]}")
        return self


class LatencyRule(_WindowRule):
    metric, unit, limit_keys = "rtt_avg_ms", "ms", ("above_ms", "clear_below_ms")
    type: Literal["latency"] = "latency"
    above_ms: Annotated[float, Field(gt=0)] = LINE_RTT_LIMIT_MS
    clear_below_ms: Annotated[float, Field(gt=0)] | None = None


class LossRule(_WindowRule):
    metric, unit, limit_keys = "loss_pct", "%", ("above_pct", "clear_below_pct")
    type: Literal["loss"] = "loss"
    above_pct: Annotated[float, Field(gt=0, le=100)] = 5.0
    clear_below_pct: Annotated[float, Field(ge=0, le=100)] | None = None


class JitterRule(_WindowRule):
    metric, unit, limit_keys = "jitter_ms", "ms", ("above_ms", "clear_below_ms")
    type: Literal["jitter"] = "jitter"
    above_ms: Annotated[float, Field(gt=0)] = 30.0
    clear_below_ms: Annotated[float, Field(gt=0)] | None = None


class VideoDownRule(_RuleBase):
    type: Literal["video_down"] = "video_down"
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    basis: Literal["video", "service"] = "video"
    """Which basis must be up besides the network (monitor.state.availability)."""


class _ValueRule(_RuleBase):
    """A rule on the latest value of a probe's measurement, per device and per instance (a
    port, a disk). Subclasses name the measurement, the fields (the value is the largest of
    those present) and the unit; `above` rules raise above `limit_keys[0]` and clear below
    `limit_keys[1]`, `below` rules the other way round; flag rules (no limit_keys) hold while
    `flag(fields)` is true."""

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

    @model_validator(mode="after")
    def _clear_on_the_right_side(self) -> Self:
        if self.limit_keys is not None:
            limit, clear = self.limits()
            if (clear > limit) if self.direction == "above" else (clear < limit):
                side = "≤" if self.direction == "above" else "≥"
                raise ValueError(f"{self.limit_keys[1]} must be {side} {self.limit_keys[0]}")
        return self


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


class UpsOnBatteryRule(_ValueRule):
    measurement, fields = "ups", ("on_battery",)
    type: Literal["ups_on_battery"] = "ups_on_battery"
    match: SelectorConfig = SelectorConfig(kind=[Kind.UPS])
    severity: Severity = Severity.CRITICAL

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return bool(fields.get("on_battery"))


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


class DeviceRebootedRule(_ValueRule):
    measurement, fields, unit, limit_keys = "snmp", ("sys_uptime_s",), "s", ("within_s", "within_s")
    direction = "below"
    type: Literal["device_rebooted"] = "device_rebooted"
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH, Kind.UPS, Kind.SERVER, Kind.PLATFORM])
    severity: Severity = Severity.MINOR
    within_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    """Holds while sysUpTime is below this: the device restarted that recently."""


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


VALUE_RULES = (
    ClockDriftRule, InventoryMismatchRule, PortDownRule, UpsOnBatteryRule, UpsBatteryLowRule, DeviceRebootedRule,
    InterfaceUtilisationRule, InterfaceErrorsRule, StorageUsageRule,
)

Rule = Annotated[
    Union[
        DeviceDownRule, OnlineRateRule, LatencyRule, LossRule, JitterRule, VideoDownRule, ClockDriftRule,
        InventoryMismatchRule, PortDownRule, UpsOnBatteryRule, UpsBatteryLowRule, DeviceRebootedRule,
        InterfaceUtilisationRule, InterfaceErrorsRule, StorageUsageRule,
    ],
    Field(discriminator="type"),
]


def default_rules() -> list[Rule]:
    """What a 雪亮工程 contract measures: devices down, camera online rate per region against
    the contract's target, dedicated-line latency against its limit (both monitor.core.contract),
    loss and jitter on the lines; cameras without a picture, clocks and records; uplinks, UPS
    units, reboots, traffic and disks."""
    links = SelectorConfig(kind=[Kind.LINK])
    return [
        DeviceDownRule(name="device-down", for_s=60),
        # Cleared half a point above the target and 20 ms below the limit: a value hovering at
        # the line raises one fault, not one per cycle.
        OnlineRateRule(name="camera-online-rate", for_s=300, clear_above_pct=ONLINE_RATE_TARGET_PCT + 0.5,
                       severity=Severity.CRITICAL),
        # Loss and jitter are noisy at a few echoes a cycle: a longer window and clear_for_s
        # keep a line that hovers at the limit from raising and resolving every few minutes.
        LatencyRule(name="link-latency", match=links, for_s=60, clear_for_s=120,
                    clear_below_ms=LINE_RTT_LIMIT_MS - 20),
        LossRule(name="link-loss", match=links, window=10, for_s=60, clear_for_s=300, above_pct=5, clear_below_pct=2),
        JitterRule(name="link-jitter", match=links, window=10, for_s=120, clear_for_s=300, severity=Severity.MINOR),
        # Two RTSP cycles: one failed DESCRIBE (a camera rebooting) is no fault yet.
        VideoDownRule(name="camera-video-down", for_s=120, clear_for_s=60),
        ClockDriftRule(name="camera-clock-drift", for_s=600),
        InventoryMismatchRule(name="camera-inventory-mismatch"),
        PortDownRule(name="uplink-down"),
        UpsOnBatteryRule(name="ups-on-battery"),
        UpsBatteryLowRule(name="ups-battery-low"),
        DeviceRebootedRule(name="device-rebooted"),
        InterfaceUtilisationRule(name="uplink-utilisation", for_s=300, clear_for_s=300),
        InterfaceErrorsRule(name="uplink-errors", for_s=300, clear_for_s=300),
        StorageUsageRule(name="storage-usage", for_s=300),
    ]


class FlappingConfig(Strict):
    """Flap damping: a device whose state changed `max_changes` times within `window_s` is
    *flapping*: one fault says so and holds until it has been stable for `window_s`; its
    device_down faults are held back meanwhile."""

    window_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    max_changes: Annotated[int, Field(ge=2, le=1000)] = 4
    severity: Severity = Severity.MAJOR


RESERVED_RULE_NAMES = ("flapping", "notifier")  # faults fleetmon raises itself


def unique_rule_names(rules: list[Rule]) -> list[Rule]:
    """Validator of the `rules` list: names identify faults, so they must be unique and not
    one of fleetmon's own."""
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"rule names must be unique: {', '.join(twice)}")
    reserved = sorted(set(names) & set(RESERVED_RULE_NAMES))
    if reserved:
        raise ValueError(f"rule names reserved by fleetmon: {', '.join(reserved)}")
    return rules
