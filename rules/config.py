"""Config of the rules engine (config.yaml sections `rules` and `flapping`); the alerting
sections (`maintenance`, `notify`) are rules.alerting.config.

A rule's `type` names its class in rules/registry.py (RULE_TYPES), from which the `Rule` union
below is built; each rule type is described in its family module (rules/families/): device_down,
online_rate, latency / loss / jitter (window), video_down, the value rules (clock_drift,
inventory_mismatch, port_down, ups_on_battery, ups_battery_low, device_rebooted,
interface_utilisation, interface_errors, storage_usage), renewal_due, tls_expiry and
tls_untrusted (platform), nvr_not_recording, nvr_retention and nvr_disk (recording), and
link_bandwidth. Every rule has `for_s` (raise only
when sustained) and `clear_for_s` (resolve only when the clear condition held that long), so a
value hovering at the limit raises one fault.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from monitor.core.model import Kind
from rules.families.bandwidth import LinkBandwidthRule
from rules.families.device import DeviceDownRule
from rules.families.platform import RenewalDueRule, TlsExpiryRule
from rules.families.rate import OnlineRateRule
from rules.families.values import (
    ClockDriftRule,
    DeviceRebootedRule,
    InterfaceErrorsRule,
    InterfaceUtilisationRule,
    InventoryMismatchRule,
    PortDownRule,
    StorageUsageRule,
    UpsBatteryLowRule,
    UpsOnBatteryRule,
)
from rules.families.recording import NvrDiskRule, NvrNotRecordingRule, NvrRetentionRule
from rules.families.video import VideoDownRule
from rules.families.window import JitterRule, LatencyRule, LossRule
from rules.model import Severity
from rules.registry import RULE_TYPES

Rule = Annotated[Union[tuple(RULE_TYPES.values())], Field(discriminator="type")]
"""One entry of the `rules` list: the registered type its `type` names."""


def default_rules() -> list[Rule]:
    """What a 雪亮工程 contract measures: devices down, camera online rate per region against
    95 %, dedicated-line latency against 200 ms, loss and jitter on the lines; cameras without
    a picture, clocks and records; uplinks, UPS units, reboots, traffic and disks; platforms'
    services, renewals and certificates a month ahead, NVR recording and 30 days kept, lines
    near their contracted bandwidth."""
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
        # Platforms, servers and NVRs whose service check (http, tcp, ISAPI) fails while they ping.
        VideoDownRule(name="platform-service-down", basis="service", for_s=120, clear_for_s=60,
                      match=SelectorConfig(kind=[Kind.PLATFORM, Kind.SERVER, Kind.NVR])),
        RenewalDueRule(name="renewal-due"),
        TlsExpiryRule(name="tls-expiry"),
        # Two NVR polls (15 min each): a channel restarting its recording is no fault yet.
        NvrNotRecordingRule(name="nvr-not-recording", for_s=1800),
        NvrRetentionRule(name="nvr-retention"),
        NvrDiskRule(name="nvr-disk"),
        LinkBandwidthRule(name="link-bandwidth", for_s=300, clear_for_s=300),
    ]


class FlappingConfig(Strict):
    """Flap damping: a device whose state changed `max_changes` times within `window_s` is
    *flapping*: one fault says so and holds until it has been stable for `window_s`; its
    device_down faults are held back meanwhile."""

    window_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    max_changes: Annotated[int, Field(ge=2, le=1000)] = 4
    severity: Severity = Severity.MAJOR


RESERVED_RULE_NAMES = ("flapping", "notifier", "probe_agent")  # faults fleetmon raises itself


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
