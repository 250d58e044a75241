"""Parts about work orders (工单): the orders open at the period's end with their SLA clocks,
the mean times to acknowledge, arrive and restore, the SLA breaches, the workload per engineer,
and the quarterly annexes (the orders the score counted, with their outcome; replacements).

Times to X are measured from the report (the SLA clocks' start) to the stamp, over the orders
reported in the period that have the stamp; cancelled orders (误报/重复) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from monitor.assess.orders import FLEETMON, WorkOrder
from monitor.assess.score import EvaluatedScore
from monitor.assess.sla import ClockStatus
from monitor.reports.content.facts import NS, ReportFacts
from monitor.reports.content.parts_availability import seconds
from monitor.reports.content.words import CLOCKS, OUTCOMES, SEVERITIES, TOTAL, Say
from monitor.reports.document import Column, Part
from monitor.reports.document import ColumnType as T
from rules.model import Severity

def _devices(order: WorkOrder, say: Say) -> str:
    """The order's first device, and how many more it lists."""
    more = len(order.devices) - 1
    return order.devices[0] + (say(f" 等{more + 1}个", f" +{more}") if more else "")


def _clock_text(s: ClockStatus, say: Say) -> str:
    return s.label if say.zh else say.label(CLOCKS, s.clock)


def open_orders(f: ReportFacts, say: Say) -> Part:
    """Orders open at the period's end, as they stood then, with their SLA clocks then: the
    worst state, the clocks past their deadline, the next deadline still running."""
    rows = []
    for order in sorted(f.at_end, key=lambda o: (o.reported_ns, o.ref)):
        clocks = f.clocks.get(order.ref, ())
        late = [s for s in clocks if s.state.late]
        running = [s for s in clocks if s.stopped_ns is None and not s.state.late]
        following = min(running, key=lambda s: s.deadline_ns, default=None)
        rows.append((
            order.ref, _devices(order, say), order.title, order.reported_ns, order.assignee,
            say.join(_clock_text(s, say) for s in late) or None,
            following.deadline_ns if following else None,
        ))
    return Part(
        say("未关闭工单", "Open work orders"),
        (
            Column("ref", "工单号", "Order"),
            Column("device", "设备", "Device"),
            Column("title", "描述", "Description", width=14),
            Column("reported", "报障时间", "Reported", T.DATETIME),
            Column("assignee", "负责人", "Assignee"),
            Column("late", "已超时限", "Past deadline", width=10),
            Column("next", "下一时限", "Next deadline", T.DATETIME),
        ),
        tuple(rows),
        say("本期末仍未关闭的工单：已超过的时限，以及尚在计时的最近一个时限（均为当时的状态）。",
            "Orders still open at the period's end: the clocks past their deadline, and the nearest deadline still "
            "running (as they stood then)."),
    )


def _delays(orders: list[WorkOrder]) -> tuple[list[int], list[int], list[int]]:
    respond = [o.responded_ns - o.reported_ns for o in orders if o.responded_ns is not None]
    arrive = [o.arrived_ns - o.reported_ns for o in orders if o.arrived_ns is not None]
    restore = [o.restored_ns - o.reported_ns for o in orders if o.restored_ns is not None]
    return respond, arrive, restore


def _mean_s(values: list[int]) -> float | None:
    return round(mean(values) / NS) if values else None


def mean_times(f: ReportFacts) -> tuple[float | None, float | None, float | None]:
    """Mean seconds from report to response, arrival and restore over the period's orders."""
    respond, arrive, restore = _delays(f.reported())
    return _mean_s(respond), _mean_s(arrive), _mean_s(restore)


def times(f: ReportFacts, say: Say) -> Part:
    """Mean and longest times to acknowledge, arrive and restore, per severity and in all."""
    reported = f.reported()
    groups = [(say.label(SEVERITIES, s.value), [o for o in reported if o.severity is s]) for s in Severity]
    rows = []
    for label, orders in [*groups, (say.pick(TOTAL), reported)]:
        if not orders and label != say.pick(TOTAL):
            continue
        respond, arrive, restore = _delays(orders)
        rows.append((label, len(orders), _mean_s(respond), _mean_s(arrive), len(arrive), _mean_s(restore),
                     round(max(restore) / NS) if restore else None, len(restore)))
    return Part(
        say("工单时效", "Work-order times"),
        (
            Column("severity", "级别", "Severity"),
            Column("orders", "工单数", "Orders", T.INT),
            Column("respond", "平均响应", "Mean to respond", T.DURATION),
            Column("arrive", "平均到场", "Mean to arrive", T.DURATION),
            Column("arrived", "到场次数", "Arrivals", T.INT),
            Column("restore", "平均修复", "Mean to restore", T.DURATION),
            Column("restore_max", "最长修复", "Longest restore", T.DURATION),
            Column("restored", "已修复", "Restored", T.INT),
        ),
        tuple(rows),
        say("本期报障的工单（误报/重复已取消的除外），自报障时起计。",
            "Orders reported in the period (cancelled ones left out), from the report."),
    )


def breaches(f: ReportFacts, say: Say) -> Part:
    """Clocks whose deadline fell in the period and were missed or are past it."""
    refs = {o.ref: o for o in f.orders}
    rows = []
    for b in f.breaches.breaches:
        order = refs.get(b.ref)
        stopped = b.stopped_ns
        rows.append((
            b.ref, _devices(order, say) if order else None, b.label if say.zh else say.label(CLOCKS, b.clock),
            say.label(SEVERITIES, b.severity.value), b.deadline_ns, stopped,
            seconds((stopped if stopped is not None else f.generated_ns) - b.deadline_ns), b.engineer,
        ))
    rows.sort(key=lambda r: (r[4], r[0]))
    return Part(
        say("SLA 超时", "SLA breaches"),
        (
            Column("ref", "工单号", "Order"),
            Column("device", "设备", "Device"),
            Column("clock", "时限", "Clock"),
            Column("severity", "级别", "Severity"),
            Column("deadline", "截止时间", "Deadline", T.DATETIME),
            Column("stopped", "完成时间", "Done", T.DATETIME),
            Column("over", "超出", "Over by", T.DURATION),
            Column("engineer", "负责人", "Engineer"),
        ),
        tuple(rows),
        say("截止时间在本期内、已超时或完成晚于截止的时限；原因属除外情形的工单不计。未完成的计至报告生成时。",
            "Clocks whose deadline fell in the period and were missed or are past it; orders with an excluded cause "
            "are not counted. Still running: counted to the report's generation."),
    )


def breach_summary(f: ReportFacts, say: Say) -> Part:
    """Breaches counted per clock (the long reports: a quarter of a large fleet has thousands;
    each is in the weekly and monthly reports, and the per-engineer counts in the workload)."""
    by_clock: dict[str, list] = defaultdict(list)
    for b in f.breaches.breaches:
        by_clock[b.label if say.zh else say.label(CLOCKS, b.clock)].append(b)
    rows = []
    for label, items in sorted(by_clock.items(), key=lambda x: -len(x[1])):
        stopped = [b for b in items if b.stopped_ns is not None]
        over = [b.stopped_ns - b.deadline_ns for b in stopped]
        rows.append((label, len(items), len({b.ref for b in items}), len(items) - len(stopped), _mean_s(over),
                     round(max(over) / NS) if over else None))
    if rows:
        rows.append((say.pick(TOTAL), f.breaches.total, len(f.breaches.by_order), sum(r[3] for r in rows), None, None))
    return Part(
        say("SLA 超时", "SLA breaches"),
        (
            Column("clock", "时限", "Clock"),
            Column("count", "超时次数", "Breaches", T.INT),
            Column("orders", "涉及工单", "Orders", T.INT),
            Column("running", "至今未完成", "Still running", T.INT),
            Column("over", "平均超出", "Mean overrun", T.DURATION),
            Column("over_max", "最长超出", "Longest overrun", T.DURATION),
        ),
        tuple(rows),
        say("截止时间在本期内、已超时或完成晚于截止的时限，按时限分类；原因属除外情形的工单不计。逐单明细见各周报、月报，逐人次数见工作量统计。",
            "Clocks whose deadline fell in the period and were missed or are past it, per clock; orders with an "
            "excluded cause are not counted. Each one is in the weekly and monthly reports, per engineer in the "
            "workload."),
    )


def workload(f: ReportFacts, say: Say) -> Part:
    """Per engineer, the stamps they recorded in the period: responses, arrivals (on-site
    visits), restores, replacements, closes; and the breaches counted against them."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * 5)

    def count(who: str | None, ts: int | None, column: int) -> None:
        if who and who != FLEETMON and ts is not None and f.start_ns <= ts < f.end_ns:
            counts[who][column] += 1

    for o in f.orders:
        count(o.acknowledged_by, o.acknowledged_ns, 0)
        count(o.arrived_by, o.arrived_ns, 1)
        count(o.restored_by, o.restored_ns, 2)
        for r in o.replacements:
            count(r.by, r.ts_ns, 3)
        count(o.closed_by, o.closed_ns, 4)
    by_engineer = f.breaches.by_engineer
    names = sorted(set(counts) | {e for e in by_engineer if e != "-"})
    rows = [(name, *counts[name], by_engineer.get(name, 0)) for name in names]
    totals = [sum(r[i] for r in rows) for i in range(1, 7)]
    reported = f.reported()
    closed = sum(1 for o in f.orders if o.closed_ns is not None and f.start_ns <= o.closed_ns < f.end_ns)
    rows.append((say.pick(TOTAL), *totals))
    note = say(
        f"本期报障工单 {len(reported)} 张（人工申告 {sum(1 for o in reported if o.source.value == 'manual')} 张），"
        f"关闭 {closed} 张；到场 {totals[1]} 次，更换设备 {totals[3]} 次。由系统自动记录的修复与关闭不计入个人工作量。",
        f"Orders reported in the period: {len(reported)} ({sum(1 for o in reported if o.source.value == 'manual')} by "
        f"hand); closed: {closed}; on-site visits: {totals[1]}; replacements: {totals[3]}. Restores and closes "
        "fleetmon recorded itself are nobody's workload.")
    return Part(
        say("工作量统计", "Workload"),
        (
            Column("engineer", "人员", "Engineer"),
            Column("acknowledged", "响应", "Responses", T.INT),
            Column("arrived", "到场", "On site", T.INT),
            Column("restored", "修复", "Restores", T.INT),
            Column("replaced", "更换", "Replacements", T.INT),
            Column("closed", "关闭", "Closes", T.INT),
            Column("breaches", "超时", "Breaches", T.INT),
        ),
        tuple(rows),
        note,
    )


_ITEM_CLOCKS = {
    "camera_replacement_timely_pct": "replacement",
    "other_replacement_timely_pct": "replacement",
    "arrival_timely_pct": "arrival",
}
"""The score's order ratios and the column of the annex they fill (monitor.assess.order_ratios:
an order is counted by one replacement item, by its device kind, and by the arrival item)."""


def counted_orders(f: ReportFacts, say: Say, score: EvaluatedScore | None) -> Part:
    """Annex: the work orders reported in the period and how the score's order ratios counted
    each (及时/超时/未到期/除外/不适用), with the time they measured from the report."""
    outcome: dict[tuple[str, str], tuple[str, float | None]] = {}
    for item in score.items if score else ():
        column = _ITEM_CLOCKS.get(item.metric.name)
        for e in item.metric.evidence if column else ():
            if e.kind == "order":
                outcome[(e.ref, column)] = (e.outcome, e.minutes)
    rows, unjudged = [], 0
    for o in f.reported():
        results = [outcome.get((o.ref, column), (None, None)) for column in ("replacement", "arrival")]
        if score is not None and all(r in (None, "not_needed") for r, _ in results):
            unjudged += 1  # neither a replacement nor a visit was needed: no item counted it
            continue
        row = [o.ref, _devices(o, say), o.reported_ns, say.cause(o.cause)]
        for result, minutes in results:
            row += [say.label(OUTCOMES, result) if result else None, None if minutes is None else round(minutes * 60)]
        rows.append(tuple(row))
    note = say(f"本期报障工单中由考核项计入（及时、超时、未到期）或因除外原因不计入的工单；其余 {unjudged} 张既无须更换也无须到场，未列出。"
               "更换：自报障起 72 小时内更换为及时；到场：在 SLA 到场时限内到达为及时。",
               f"The orders of the period an item counted (timely, late, pending) or left out for an excluded cause; "
               f"the other {unjudged} needed neither a replacement nor a visit and are not listed. Replacement: timely "
               "within 72 h of the report; arrival: timely by the SLA arrival deadline.")
    if score is None:
        note = say("本期没有考核得分，工单未按考核项判定（列出本期报障的全部工单）。",
                   "No score this period: orders not judged by item (every order reported is listed).")
    return Part(
        say("附件2 考核工单", "Annex 2: work orders counted"),
        (
            Column("ref", "工单号", "Order"),
            Column("device", "设备", "Device"),
            Column("reported", "报障时间", "Reported", T.DATETIME),
            Column("cause", "原因分类", "Cause class"),
            Column("replacement", "更换", "Replacement"),
            Column("replacement_took", "更换用时", "Took", T.DURATION),
            Column("arrival", "到场", "Arrival"),
            Column("arrival_took", "到场用时", "Took", T.DURATION),
        ),
        tuple(rows),
        note,
    )


def replacements(f: ReportFacts, say: Say) -> Part:
    """Annex: every replacement (更换) recorded in the period, with its time from the report."""
    rows = []
    for o in f.orders:
        for r in o.replacements:
            if not f.start_ns <= r.ts_ns < f.end_ns:
                continue
            took = r.ts_ns - o.reported_ns
            rows.append((o.ref, r.device_id, r.old_serial, r.new_serial, r.ts_ns, seconds(took),
                         say("是", "yes") if took <= 3 * 86_400 * NS else say("否", "no")))
    rows.sort(key=lambda r: (r[4], r[0]))
    return Part(
        say("附件3 设备更换记录", "Annex 3: replacements"),
        (
            Column("ref", "工单号", "Order"),
            Column("device", "设备", "Device"),
            Column("old_serial", "原序列号", "Old serial"),
            Column("new_serial", "新序列号", "New serial"),
            Column("replaced", "更换时间", "Replaced", T.DATETIME),
            Column("took", "用时", "Took", T.DURATION),
            Column("in_time", "3天内", "Within 3 days"),
        ),
        tuple(rows),
        say("用时自报障起计；“3天内”：72 小时内更换（故障摄像头 3 天内更换为及时更换）。",
            "Took: from the report; within 3 days: replaced within 72 h of it (the tender's timely replacement)."),
    )
