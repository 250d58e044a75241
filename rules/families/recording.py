"""Recording on NVRs (probe `nvr`): nvr_not_recording (a channel with no recording in the probe's
window), nvr_retention (a channel keeping fewer days than the contract's 30) and nvr_disk (an
HDD not ok: error, unformatted, offline …). Per channel or disk, on the recorder's own clock;
held while the recorder is offline on the network (device_down speaks for it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

from pydantic import Field

from monitor.core.config_base import SelectorConfig
from monitor.core.contract import RECORDING_RETENTION_DAYS
from monitor.core.model import Device, Kind
from rules.base import Facts
from rules.families.values import Described, _ValueRule
from rules.model import Severity

NVRS = SelectorConfig(kind=[Kind.NVR])

TITLES: dict[str, dict[str, Any]] = {
    "zh": {
        "nvr_not_recording": "{kind}{name}通道{instance}未录像（{cause}）",
        "disabled": "录像计划未启用",
        "camera_offline": "前端摄像机离线：{detect}",
        "no_recent": "最近没有录像",
        "nvr_retention": "{kind}{name}通道{instance}录像仅保存{value:.1f}天，不足{limit:g}天",
        "nvr_disk": "{kind}{name}硬盘{instance}{state}（{status}）",
        "states": {"unformatted": "未格式化", "busy": "正在格式化或修复", "offline": "离线或不存在", "error": "故障",
                   "other": "状态异常"},
    },
    "en": {
        "nvr_not_recording": "{kind} {name} channel {instance} not recording ({cause})",
        "disabled": "recording is switched off",
        "camera_offline": "camera offline: {detect}",
        "no_recent": "no recent recording",
        "nvr_retention": "{kind} {name} channel {instance} keeps {value:.1f} days of recordings, under {limit:g}",
        "nvr_disk": "{kind} {name} disk {instance} {state} ({status})",
        "states": {"unformatted": "unformatted", "busy": "formatting or repairing", "offline": "offline or missing",
                   "error": "failed", "other": "in an abnormal state"},
    },
}


class NvrNotRecordingRule(_ValueRule):
    """A channel with no recording in the probe's window (`recording_window_s`), its cause in
    the title: recording switched off, the camera offline (InputProxy), or neither known."""

    titles = TITLES
    measurement, fields = "nvr_channel", ("recording",)
    type: Literal["nvr_not_recording"] = "nvr_not_recording"
    match: SelectorConfig = NVRS
    include_disabled: bool = True
    """Also raise for channels whose recording is switched off (the contract wants every
    channel recorded; an empty channel has no camera and is not reported by the probe)."""

    def applies(self, fields: Mapping[str, Any]) -> bool:
        return self.include_disabled or fields.get("enabled") is not False

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return fields.get("recording") is False

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        t = self.titles[facts.language]
        if fields.get("enabled") is False:
            cause = t["disabled"]
        elif fields.get("online") is False:
            cause = t["camera_offline"].format(detect=fields.get("detect") or "?")
        else:
            cause = t["no_recent"]
        return self.type, {"cause": cause}, ()


class NvrRetentionRule(_ValueRule):
    """A channel whose oldest recording is younger than `below_days` (default the contract's
    30). Only judged on a recorder whose disks are full (free ≤ `full_at_free_pct`): until a
    recorder overwrites, its retention is still growing and says nothing of its capacity."""

    titles = TITLES
    measurement, fields, unit, limit_keys = "nvr_channel", ("retention_days",), "d", ("below_days", "clear_above_days")
    direction = "below"
    type: Literal["nvr_retention"] = "nvr_retention"
    match: SelectorConfig = NVRS
    below_days: Annotated[float, Field(gt=0, le=3650)] = RECORDING_RETENTION_DAYS
    clear_above_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    full_at_free_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    """The recorder overwrites once its free space is at most this (100: judge always)."""

    def watch(self, facts: Facts) -> None:
        super().watch(facts)
        facts.keep_values("nvr", (d.id for d in facts.devices[self.name]))

    def applies_to(self, facts: Facts, device: Device) -> bool:
        free = facts.values.get((device.id, "nvr"), {}).get((), {}).get("free_pct")
        return isinstance(free, (int, float)) and free <= self.full_at_free_pct


class NvrDiskRule(_ValueRule):
    """An HDD whose state is not ok (error, smartFailed, unformatted, offline, formatting …)."""

    titles = TITLES
    measurement, fields = "nvr_disk", ("ok",)
    type: Literal["nvr_disk"] = "nvr_disk"
    match: SelectorConfig = NVRS
    severity: Severity = Severity.MAJOR

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return fields.get("ok") is False

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        states = self.titles[facts.language]["states"]
        state = states.get(str(fields.get("state")), states["other"])
        return self.type, {"state": state, "status": fields.get("status", "")}, ()
