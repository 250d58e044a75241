"""Texts people read about work orders: the WeCom (and webhook, MQTT) notices of SLA warnings,
breaches and long-offline escalations, in Chinese (default) or English.

A notice travels through the alerting outbox as a FaultEvent (rules.model.EventKind
SLA_WARNING / SLA_BREACHED) whose "fault" is the order: id = the order's reference, title =
the headline, details["facts"] = the [label, value] lines below it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from monitor.assess.offline import LongOffline
from monitor.assess.orders import WorkOrder
from monitor.assess.sla import LABELS, ClockState, ClockStatus
from monitor.core.model import Device
from rules.model import Fault, FaultState

_WORDS = {
    "zh": {
        "warning": "工单{ref} {label}时限将到（已用{pct}%）：{what}",
        "breached": "工单{ref} {label}已超时：{what}",
        "offline": "点位离线超过{days}天：{what}",
        "order": "工单", "device": "设备", "where": "位置", "clock": "时限", "deadline": "截止时间",
        "remaining": "剩余", "overdue": "已超时", "assignee": "负责人", "unassigned": "未指派",
        "reported": "报障时间", "offline_since": "离线起始", "offline_for": "已离线", "points": "点位",
        "business": "（工作时间）", "more": "等{n}个点位",
        "d": "{n}天", "h": "{n}小时", "m": "{n}分", "s": "{n}秒", "unit_sep": "",
    },
    "en": {
        "warning": "Work order {ref}: {label} deadline near ({pct}% used): {what}",
        "breached": "Work order {ref}: {label} deadline missed: {what}",
        "offline": "Points offline over {days} days: {what}",
        "order": "Work order", "device": "Device", "where": "Where", "clock": "Clock", "deadline": "Deadline",
        "remaining": "Remaining", "overdue": "Overdue by", "assignee": "Assignee", "unassigned": "unassigned",
        "reported": "Reported", "offline_since": "Offline since", "offline_for": "Offline for", "points": "Points",
        "business": " (working hours)", "more": "and {rest} more",
        "d": "{n} d", "h": "{n} h", "m": "{n} min", "s": "{n} s", "unit_sep": " ",
    },
}

RULE = "workorder"
"""Fault.rule of the notices (not a configurable rule: receivers tell them apart by it)."""


class Texts:
    """Notices in `language` ("zh" | "en"), times in `timezone`."""

    def __init__(self, language: str, timezone: str) -> None:
        self.language = language if language in _WORDS else "zh"
        self.w = _WORDS[self.language]
        self.tz = ZoneInfo(timezone)

    def time(self, ts_ns: int) -> str:
        """Local time for people: 2026-12-04 10:15."""
        return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def duration(self, seconds: float) -> str:
        """The two largest non-zero units: 1小时2分 / 1 h 2 min; seconds only below a minute."""
        seconds, parts = max(0, int(seconds)), []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            n, seconds = divmod(seconds, size)
            if n or (unit == "s" and not parts):
                parts.append(self.w[unit].format(n=n))
        return self.w["unit_sep"].join(parts[:2])

    def label(self, status: ClockStatus) -> str:
        """The contract's label in Chinese; the plain clock name in English."""
        return status.label if self.language == "zh" else LABELS["en"][status.clock]

    def devices(self, ids: Sequence[str], devices: Mapping[str, Device]) -> str:
        """"东关路口枪机（C-0001）", for several "…等3个点位" (3 in all) / "… and 2 more"."""
        first = devices.get(ids[0])
        text = f"{first.name}（{ids[0]}）" if first is not None else ids[0]
        if self.language == "en" and first is not None:
            text = f"{first.name} ({ids[0]})"
        if len(ids) > 1:
            text += (" " if self.language == "en" else "") + self.w["more"].format(n=len(ids), rest=len(ids) - 1)
        return text

    def where(self, device: Device | None) -> str:
        return "/".join(x for x in (device.region, device.site) if x) if device is not None else "-"

    # -- notices --------------------------------------------------------------------------------

    def clock_notice(self, order: WorkOrder, s: ClockStatus, devices: Mapping[str, Device], now_ns: int) -> Fault:
        """A warning (state warning) or breach (state breached) notice of one clock."""
        w = self.w
        level = "breached" if s.state is ClockState.BREACHED else "warning"
        what = self.devices(order.devices, devices)
        title = w[level].format(ref=order.ref, label=self.label(s), pct=int(s.percent_used), what=what)
        allowed = self.duration(s.allowed_s) + (w["business"] if s.basis == "business" else "")
        left = (w["remaining"], self.duration(s.remaining_s)) if s.remaining_s >= 0 else (
            w["overdue"], self.duration(-s.remaining_s))
        facts = [
            (w["order"], order.ref), (w["device"], what), (w["where"], self.where(devices.get(order.devices[0]))),
            (w["clock"], f"{self.label(s)} {allowed}"), (w["deadline"], self.time(s.deadline_ns)), left,
            (w["assignee"], order.assignee or w["unassigned"]), (w["reported"], self.time(order.reported_ns)),
        ]
        details = {"order": order.ref, "clock": s.clock.value, "level": level, "deadline_ns": s.deadline_ns,
                   "assignee": order.assignee}
        return self._fault(order, f"sla_{s.clock.value}", title, facts, details, devices, now_ns)

    def offline_notice(
        self, order: WorkOrder, points: Sequence[LongOffline], days: float, devices: Mapping[str, Device], now_ns: int
    ) -> Fault:
        """The escalation of points offline over `days` (one notice per order)."""
        w = self.w
        ids = [p.device_id for p in points]
        what = self.devices(ids, devices)
        since = min(p.since_ns for p in points)
        facts = [
            (w["order"], order.ref), (w["points"], what), (w["where"], self.where(devices.get(ids[0]))),
            (w["offline_since"], self.time(since)), (w["offline_for"], self.duration((now_ns - since) / 1e9)),
            (w["assignee"], order.assignee or w["unassigned"]),
        ]
        title = w["offline"].format(days=f"{days:g}", what=what)
        details = {"order": order.ref, "level": "long_offline", "devices": ids, "since_ns": since,
                   "assignee": order.assignee}
        return self._fault(order, "long_offline", title, facts, details, devices, now_ns)

    def _fault(
        self, order: WorkOrder, kind: str, title: str, facts: list[tuple[str, str]], details: dict[str, Any],
        devices: Mapping[str, Device], now_ns: int,
    ) -> Fault:
        first = devices.get(order.devices[0])
        return Fault(
            id=order.ref, rule=RULE, kind=kind, scope=f"workorder:{order.ref}", severity=order.severity,
            state=FaultState.FIRING, title=title, first_seen_ns=order.reported_ns, last_seen_ns=now_ns,
            device_id=order.devices[0], site=first.site if first else None, region=first.region if first else None,
            affected=tuple(order.devices[1:]), details={**details, "facts": [list(f) for f in facts]},
        )
