"""Parts about faults and what the probes saw: faults opened and resolved, points offline at the
period's end with their likely cause, the points offline for days, UPS events, clock drift and
point-list mismatches (value rules), line quality (InfluxDB), faults by kind and cause, and
repeat faults (one device, two faults or more).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

from monitor.assess.orders import Source, WorkOrder
from monitor.core.model import Kind
from monitor.reports.content.facts import DAY_NS, NS, ReportFacts
from monitor.reports.content.parts_availability import seconds
from monitor.reports.content.words import DEVICE_KINDS, FAULT_KINDS, NO_ORDER, SEVERITIES, Say
from monitor.reports.document import Column, Part
from monitor.reports.document import ColumnType as T
from rules.model import Fault

UPS_KINDS = ("ups_on_battery", "ups_battery_low")
MAX_IDS = 8
"""Fault ids listed for one device of the repeat faults (the rest: "…")."""
CLOCK_KINDS = ("clock_drift", "inventory_mismatch")


def _open_at(fault: Fault, ts: int) -> bool:
    return fault.fired_ns is not None and fault.fired_ns < ts and (fault.resolved_ns is None or fault.resolved_ns >= ts)


def _state(fault: Fault, f: ReportFacts, say: Say) -> str:
    """Resolved by the period's end, or still open then."""
    if fault.resolved_ns is not None and fault.resolved_ns < f.end_ns:
        return say("已恢复", "resolved")
    return say("未恢复", "open")


def _order_by_fault(f: ReportFacts) -> dict[str, WorkOrder]:
    return {o.source_ref: o for o in f.orders if o.source is Source.FAULT and o.source_ref}


def faults_of_period(f: ReportFacts, say: Say) -> Part:
    """Faults that fired or resolved in the period (the daily report's 故障记录)."""
    orders = _order_by_fault(f)
    rows = []
    for fault in f.faults:
        fired = fault.fired_ns is not None and f.start_ns <= fault.fired_ns < f.end_ns
        resolved = fault.resolved_ns is not None and f.start_ns <= fault.resolved_ns < f.end_ns
        if not (fired or resolved):
            continue
        end = fault.resolved_ns if fault.resolved_ns is not None and fault.resolved_ns <= f.end_ns else f.end_ns
        order = orders.get(fault.id)
        rows.append((
            fault.id, say.label(SEVERITIES, fault.severity.value), fault.device_id or fault.scope.split(":", 1)[-1],
            fault.title, fault.first_seen_ns, seconds(max(0, end - fault.first_seen_ns)),
            _state(fault, f, say), order.ref if order else None,
        ))
    return Part(
        say("故障记录", "Faults"),
        (
            Column("id", "故障号", "Fault"),
            Column("severity", "级别", "Severity"),
            Column("device", "设备", "Device"),
            Column("title", "描述", "Description", width=24),
            Column("since", "发生时间", "Since", T.DATETIME),
            Column("length", "持续", "Lasted", T.DURATION),
            Column("state", "状态", "State"),
            Column("order", "工单", "Work order"),
        ),
        tuple(rows),
        say("本期新增或恢复的故障。持续时长计至恢复，未恢复的计至本期末。",
            "Faults opened or resolved in the period. Lasted: to the resolution, or to the period's end while open."),
    )


def likely_cause(device_id: str, f: ReportFacts, say: Say) -> str:
    """Why a point is offline at the period's end, as far as fleetmon knows: its parent down
    (unreachable behind it), the cause an open fault names (its access port, its site's UPS on
    battery), video down with the network up, or the fault's title; "" when nothing says."""
    points = f.availability.points
    point = points.get(device_id)
    for fault in f.faults:
        if not _open_at(fault, f.end_ns) or not (fault.device_id == device_id or device_id in fault.affected):
            continue
        cause = fault.details.get("cause") if fault.device_id == device_id else None
        if isinstance(cause, dict) and cause.get("port"):
            return say(f"接入端口 {cause['port']} 中断（{cause.get('switch')}）", f"access port {cause['port']} down ({cause.get('switch')})")
        if isinstance(cause, dict) and cause.get("ups"):
            return say(f"UPS {cause['ups']} 电池供电", f"UPS {cause['ups']} on battery")
        if fault.device_id != device_id:
            parent = points.get(fault.device_id or "")
            name = parent.device.name if parent else fault.device_id
            return say(f"上级设备离线：{name}", f"upstream device down: {name}")
        if fault.kind == "video_down":
            return say("视频中断（网络正常）", "no video (network up)")
        if fault.kind == "device_down":
            return say("设备无响应（网络不通）", "no answer on the network")
        return fault.title
    if point is not None and point.device.parent in f.offline:
        parent = points.get(point.device.parent)
        return say(f"上级设备离线：{parent.device.name if parent else point.device.parent}",
                   f"upstream device down: {parent.device.name if parent else point.device.parent}")
    return ""


def offline(f: ReportFacts, say: Say) -> Part:
    """Points offline at the period's end: since when, for how long, the likely cause, the
    work order (its cause class when classified)."""
    open_orders = {d: o for o in f.at_end for d in o.devices}
    rows = []
    for device_id, since in sorted(f.offline.items(), key=lambda x: (x[1], x[0])):
        point = f.availability.points.get(device_id)
        if point is None or not point.device.counted:
            continue
        d = point.device
        order = open_orders.get(device_id)
        rows.append((d.id, d.name, d.site, since, seconds(f.end_ns - since), likely_cause(device_id, f, say) or None,
                     order.ref if order else None))
    return Part(
        say("离线点位", "Points offline"),
        (
            Column("id", "点位编号", "Point"),
            Column("name", "点位名称", "Name", width=13),
            Column("site", "站点", "Site"),
            Column("since", "离线开始", "Offline since", T.DATETIME),
            Column("length", "已离线", "For", T.DURATION),
            Column("cause", "可能原因", "Likely cause", width=18),
            Column("order", "工单", "Work order"),
        ),
        tuple(rows),
        say("本期末仍离线的在用点位（网络或视频离线）。", "Active points offline (network or video) at the period's end."),
    )


def long_offline(f: ReportFacts, say: Say) -> Part:
    """Points offline at least the long-offline threshold at the period's end (tender:
    "保证掉线点位一周内要重新上线"); those whose order has an excluded cause are marked."""
    threshold = f.long_offline_days * DAY_NS
    open_orders = {d: o for o in f.at_end for d in o.devices}
    rows = []
    for device_id, since in sorted(f.offline.items(), key=lambda x: (x[1], x[0])):
        point = f.availability.points.get(device_id)
        if point is None or not point.device.counted or f.end_ns - since < threshold:
            continue
        d, order = point.device, open_orders.get(device_id)
        cause = None
        if order is not None:
            cause = say.cause(order.cause) + (say("（不计考核）", " (not assessed)")
                                               if order.cause and order.cause.excluded else "")
        rows.append((d.id, d.name, d.site, since, round((f.end_ns - since) / DAY_NS, 1),
                     order.ref if order else None, cause))
    days = f"{f.long_offline_days:g}"
    return Part(
        say(f"离线超过{days}天的点位", f"Points offline {days} days or more"),
        (
            Column("id", "点位编号", "Point"),
            Column("name", "点位名称", "Name", width=13),
            Column("site", "站点", "Site"),
            Column("since", "离线开始", "Offline since", T.DATETIME),
            Column("days", "离线天数", "Days", T.NUMBER, decimals=1, width=8),
            Column("order", "工单", "Work order"),
            Column("class", "原因分类", "Cause class", width=12),
        ),
        tuple(rows),
        say("合同要求掉线点位一周内重新上线；原因属除外情形（市政、电力、人为破坏、不可抗力等）的不计考核。",
            "The contract wants offline points back within a week; excluded causes (municipal, power, vandalism, "
            "force majeure …) are not assessed."),
    )


def value_faults(f: ReportFacts, say: Say, kinds: Iterable[str], title: str, empty: str) -> Part:
    """Faults of the value rules `kinds` open at some time of the period (UPS on battery,
    clock drift …), with their value and limit."""
    kinds = tuple(kinds)
    rows = []
    for fault in f.faults:
        if fault.kind not in kinds or fault.fired_ns is None:
            continue
        end = fault.resolved_ns if fault.resolved_ns is not None and fault.resolved_ns <= f.end_ns else f.end_ns
        rows.append((fault.id, fault.device_id or fault.scope.split(":", 1)[-1], fault.title,
                     None if fault.value is None else float(fault.value), fault.unit or None,
                     fault.first_seen_ns, seconds(max(0, end - fault.first_seen_ns)), _state(fault, f, say)))
    return Part(
        title,
        (
            Column("id", "故障号", "Fault"),
            Column("device", "设备", "Device"),
            Column("title", "描述", "Description", width=30),
            Column("value", "数值", "Value", T.NUMBER, decimals=1, width=7),
            Column("unit", "单位", "Unit"),
            Column("since", "开始", "Since", T.DATETIME),
            Column("length", "持续", "Lasted", T.DURATION),
            Column("state", "状态", "State"),
        ),
        tuple(rows),
        None if rows else empty,
    )


def ups(f: ReportFacts, say: Say) -> Part:
    has_ups = any(p.device.kind is Kind.UPS for p in f.availability.points.values())
    empty = say("本期无 UPS 事件。", "No UPS event in this period.") if has_ups else say(
        "点位表中没有 UPS 设备，UPS 事件无从监测。", "The point list has no UPS: UPS events cannot be seen.")
    return value_faults(f, say, UPS_KINDS, say("UPS 事件", "UPS events"), empty)


def clocks(f: ReportFacts, say: Say) -> Part:
    return value_faults(f, say, CLOCK_KINDS, say("时钟偏差与点位信息不符", "Clock drift and point-list mismatches"),
                        say("本期无时钟偏差或点位信息不符。", "No clock drift or point-list mismatch in this period."))


def links(f: ReportFacts, say: Say) -> Part:
    """Line quality over the period from InfluxDB: every line (kind link) and any other device
    whose mean RTT is over the limit or whose mean loss is over its limit; lines without a
    result are listed as such."""
    L = f.links
    columns = (
        Column("id", "设备", "Device"),
        Column("name", "名称", "Name"),
        Column("kind", "类型", "Kind"),
        Column("region", "区域", "Region"),
        Column("rtt_mean", "平均时延(ms)", "Mean RTT (ms)", T.MS),
        Column("rtt_max", "最大时延(ms)", "Max RTT (ms)", T.MS),
        Column("loss", "平均丢包", "Mean loss", T.PCT),
        Column("results", "探测次数", "Results", T.INT),
        Column("verdict", "结论", "Verdict"),
    )
    title = say("链路质量", "Line quality")
    limits = say(f"时延限值 {L.rtt_limit_ms:g} ms，丢包限值 {L.loss_limit_pct:g}%。",
                 f"Limits: RTT {L.rtt_limit_ms:g} ms, loss {L.loss_limit_pct:g} %.")
    if L.stats is None:
        note = say(f"未能读取 InfluxDB 中的探测结果，链路质量未统计：{L.unavailable}。",
                   f"Probe results could not be read from InfluxDB, line quality not shown: {L.unavailable}.")
        return Part(title, columns, (), note)
    rows, unseen = [], 0
    for p in f.availability.points.values():
        d, s = p.device, L.stats.get(p.device.id)
        slow = s is not None and s.rtt_mean_ms is not None and s.rtt_mean_ms > L.rtt_limit_ms
        lossy = s is not None and s.loss_mean_pct is not None and s.loss_mean_pct > L.loss_limit_pct
        if d.kind is not Kind.LINK and not (slow or lossy):
            continue
        if s is None:
            unseen += 1
            verdict = say("无探测结果", "no result")
        else:
            bad = [say("时延超限", "slow")] * slow + [say("丢包", "lossy")] * lossy
            verdict = say.join(bad) or say("正常", "ok")
        rows.append((d.id, d.name, say.label(DEVICE_KINDS, d.kind.value), d.region,
                     None if s is None else s.rtt_mean_ms, None if s is None else s.rtt_max_ms,
                     None if s is None or s.loss_mean_pct is None else s.loss_mean_pct / 100,
                     None if s is None else s.results, verdict))
    rows.sort(key=lambda r: (-(r[4] or 0), r[0]))
    note = limits + say("列出全部专线，以及平均时延或丢包超限的其他设备。", " Every line, and any other device over a limit.")
    if unseen:
        note += say(f"{unseen} 条专线本期在 InfluxDB 中没有探测结果。", f" {unseen} line(s) have no result in InfluxDB.")
    return Part(title, columns, tuple(rows), note)


def kinds_and_causes(f: ReportFacts, say: Say) -> Part:
    """Faults fired in the period by kind, device kind and the cause class of their work order."""
    orders = _order_by_fault(f)
    groups: dict[tuple[str, str, str], list[Fault]] = defaultdict(list)
    for fault in f.fired():
        point = f.availability.points.get(fault.device_id or "")
        device_kind = say.label(DEVICE_KINDS, point.device.kind.value) if point else "—"
        order = orders.get(fault.id)
        cause = say.cause(order.cause) if order else say.pick(NO_ORDER)
        groups[(say.label(FAULT_KINDS, fault.kind), device_kind, cause)].append(fault)
    rows = []
    for (kind, device_kind, cause), faults in sorted(groups.items(), key=lambda x: (-len(x[1]), x[0])):
        ended = [x.resolved_ns - x.first_seen_ns for x in faults if x.resolved_ns is not None]
        rows.append((kind, device_kind, cause, len(faults), len(ended), round(sum(ended) / len(ended) / NS) if ended else None))
    return Part(
        say("故障分类统计", "Faults by kind and cause"),
        (
            Column("kind", "故障类型", "Fault kind"),
            Column("device_kind", "设备类型", "Device kind"),
            Column("cause", "原因分类", "Cause class"),
            Column("count", "次数", "Count", T.INT),
            Column("resolved", "已恢复", "Resolved", T.INT),
            Column("mean", "平均持续", "Mean duration", T.DURATION),
        ),
        tuple(rows),
        say("本期新增的故障；原因分类取自其工单（未建工单的为“无工单”）。",
            "Faults fired in the period; the cause class is their work order's."),
    )


def repeats(f: ReportFacts, say: Say) -> Part:
    """Devices with two faults or more fired in the period (重复故障)."""
    by_device: dict[str, list[Fault]] = defaultdict(list)
    for fault in f.fired():
        if fault.device_id:
            by_device[fault.device_id].append(fault)
    rows = []
    for device_id, faults in by_device.items():
        if len(faults) < 2:
            continue
        point = f.availability.points.get(device_id)
        kinds = Counter(say.label(FAULT_KINDS, x.kind) for x in faults)
        ids = say.join(x.id for x in faults[:MAX_IDS]) + ("…" if len(faults) > MAX_IDS else "")
        rows.append((device_id, point.device.site if point else None, len(faults),
                     say.join(f"{k}×{n}" for k, n in kinds.most_common()), faults[0].first_seen_ns,
                     faults[-1].first_seen_ns, ids))
    rows.sort(key=lambda r: (-r[2], r[0]))
    return Part(
        say("重复故障", "Repeat faults"),
        (
            Column("id", "设备", "Device"),
            Column("site", "站点", "Site"),
            Column("count", "故障次数", "Faults", T.INT),
            Column("kinds", "类型", "Kinds", width=13),
            Column("first", "首次", "First", T.DATETIME),
            Column("last", "末次", "Last", T.DATETIME),
            Column("faults", "故障号", "Fault ids", width=16),
        ),
        tuple(rows),
        say("本期发生 2 次及以上故障的设备。", "Devices with two faults or more in the period."),
    )
