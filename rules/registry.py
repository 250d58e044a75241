"""Rule types: config `rules[].type` → its class (config model, titles and judgement; the
contract is rules/base.py RuleBase). rules/config.py builds the config's `Rule` union from it.
Adding a rule type = a module in rules/families/ + its test + one line here."""

from rules.base import RuleBase
from rules.families.bandwidth import LinkBandwidthRule
from rules.families.device import DeviceDownRule
from rules.families.platform import RenewalDueRule, TlsExpiryRule, TlsUntrustedRule
from rules.families.rate import OnlineRateRule
from rules.families.values import (
    ClockDriftRule,
    DeviceRebootedRule,
    InterfaceErrorsRule,
    InterfaceUtilisationRule,
    InventoryMismatchRule,
    PortDownRule,
    SnmpValueRule,
    StorageUsageRule,
    UpsBatteryLowRule,
    UpsOnBatteryRule,
)
from rules.families.recording import NvrDiskRule, NvrNotRecordingRule, NvrRetentionRule
from rules.families.video import VideoDownRule
from rules.families.vqd import VIDEO_QUALITY_RULES
from rules.families.window import JitterRule, LatencyRule, LossRule

RULE_TYPES: dict[str, type[RuleBase]] = {
    "device_down": DeviceDownRule,
    "online_rate": OnlineRateRule,
    "latency": LatencyRule,
    "loss": LossRule,
    "jitter": JitterRule,
    "video_down": VideoDownRule,
    "clock_drift": ClockDriftRule,
    "inventory_mismatch": InventoryMismatchRule,
    "port_down": PortDownRule,
    "ups_on_battery": UpsOnBatteryRule,
    "ups_battery_low": UpsBatteryLowRule,
    "device_rebooted": DeviceRebootedRule,
    "interface_utilisation": InterfaceUtilisationRule,
    "interface_errors": InterfaceErrorsRule,
    "storage_usage": StorageUsageRule,
    "snmp_value": SnmpValueRule,
    "renewal_due": RenewalDueRule,
    "tls_expiry": TlsExpiryRule,
    "tls_untrusted": TlsUntrustedRule,
    "nvr_not_recording": NvrNotRecordingRule,
    "nvr_retention": NvrRetentionRule,
    "nvr_disk": NvrDiskRule,
    "link_bandwidth": LinkBandwidthRule,
    **{cls.model_fields["type"].default: cls for cls in VIDEO_QUALITY_RULES},
}
