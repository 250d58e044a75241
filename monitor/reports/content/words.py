"""The words of the report contents (titles, labels of fault kinds, causes, states, clocks), in
Chinese and English: `Say(language)` picks one of a (zh, en) pair, and the label functions name
the vocabulary of the layers below for people. The renderers' own words are text.py's.
"""

from __future__ import annotations

from monitor.assess.config_workorders import Clock
from monitor.assess.model import Cause
from monitor.core.model import KIND_LABELS
from monitor.reports.document import Language

TITLES = {
    "daily": ("巡检日报", "Daily inspection report"),
    "weekly": ("统计分析周报", "Weekly statistical report"),
    "monthly": ("运维月报", "Monthly O&M report"),
    "quarterly": ("季度考核报告", "Quarterly assessment report"),
    "half-year": ("半年运维报告", "Half-year O&M report"),
    "annual": ("年度运维报告", "Annual O&M report"),
}

FAULT_KINDS = {
    "device_down": ("设备离线", "device down"),
    "region_dark": ("区域整体离线", "region dark"),
    "video_down": ("视频中断", "no video"),
    "online_rate": ("在线率低于目标", "online rate below target"),
    "latency": ("链路时延超限", "line latency"),
    "loss": ("链路丢包", "line loss"),
    "jitter": ("链路抖动", "line jitter"),
    "flapping": ("频繁上下线", "flapping"),
    "clock_drift": ("时钟偏差", "clock drift"),
    "inventory_mismatch": ("与点位表不符", "point-list mismatch"),
    "port_down": ("端口中断", "port down"),
    "ups_on_battery": ("UPS 电池供电", "UPS on battery"),
    "ups_battery_low": ("UPS 电量低", "UPS battery low"),
    "device_rebooted": ("设备重启", "device rebooted"),
    "interface_utilisation": ("带宽利用率高", "interface utilisation"),
    "interface_errors": ("端口错误包", "interface errors"),
    "storage_usage": ("存储使用率高", "storage usage"),
    "notifier": ("通知通道故障", "notification route failing"),
}

DEVICE_KINDS = {kind.value: labels for kind, labels in KIND_LABELS.items()}

STATUSES = {"active": ("在用", "active"), "construction": ("延建", "under construction"), "removed": ("拆除", "removed")}

SEVERITIES = {"critical": ("紧急", "critical"), "major": ("严重", "major"), "minor": ("一般", "minor")}

CLOCKS = {
    Clock.RESPONSE: ("响应", "response"),
    Clock.ARRIVAL: ("到场", "arrival"),
    Clock.RESTORE: ("修复", "restore"),
    Clock.REPLACEMENT: ("更换", "replacement"),
}

EXCLUSION_KINDS = {
    "status": ("延建/拆除", "status"),
    "maintenance": ("维护窗口", "maintenance"),
    "cause": ("除外原因", "excluded cause"),
}

OUTCOMES = {
    "timely": ("及时", "timely"),
    "late": ("超时", "late"),
    "pending": ("未到期", "pending"),
    "excluded": ("除外", "excluded"),
    "not_needed": ("不适用", "not needed"),
}

UNCLASSIFIED = ("未分类", "unclassified")
NO_ORDER = ("无工单", "no work order")
TOTAL = ("合计", "Total")


class Say:
    """Picks the text of the report's language from a (zh, en) pair."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self.zh = language == "zh"

    def __call__(self, zh: str, en: str) -> str:
        return zh if self.zh else en

    def pick(self, pair: tuple[str, str]) -> str:
        return pair[0] if self.zh else pair[1]

    def label(self, table: dict, key: object, default: str | None = None) -> str:
        """`key`'s label in `table`; the key itself (or `default`) when it has none."""
        pair = table.get(key)
        return self.pick(pair) if pair else (default if default is not None else str(key))

    def cause(self, cause: Cause | None) -> str:
        return self.pick(UNCLASSIFIED) if cause is None else cause.label(self.language)

    def join(self, items) -> str:
        return ("、" if self.zh else ", ").join(items)
