"""统计分析周报 (weekly), 运维月报 (monthly), 半年 and 年度 reports: availability per region and
site with its trend, faults by kind and cause, the mean times to respond, arrive and restore,
SLA breaches, repeat faults and the workload; the monthly, half-year and annual reports add
问题隐患及建议 (Nantong: "哪些方面存在问题隐患及解决方案"); the weekly, line quality (Liyang:
"网络链路状况…每周排查一次"); the half-year and annual, the score when the configured scheme
assesses such a period (Zhangjiagang's half-year and annual reports).
"""

from __future__ import annotations

from monitor.reports.content import parts_availability as av
from monitor.reports.content import parts_faults as fa
from monitor.reports.content import parts_orders as wo
from monitor.reports.content import parts_score as sc
from monitor.reports.content.advice import advice
from monitor.reports.content.common import blind_kpi, order_kpis, rate_kpis, report
from monitor.reports.content.facts import ReportFacts
from monitor.reports.content.words import Say
from monitor.reports.document import Kpi, Report
from monitor.reports.document import ColumnType as T


def build_periodic(f: ReportFacts) -> Report:
    """The weekly, monthly, half-year or annual report of `f` (by `f.kind`)."""
    say = Say(f.language)  # type: ignore[arg-type]
    repeat = len({x.device_id for x in f.fired() if x.device_id and sum(1 for y in f.fired() if y.device_id == x.device_id) >= 2})
    kpis = [*rate_kpis(f, say), *order_kpis(f, say),
            Kpi(say("重复故障设备", "Devices with repeat faults"), repeat, T.INT, unit=say("台", "")), *blind_kpi(f, say)]
    parts = []
    if f.score is not None:
        kpis = sc.score_kpis(f.score, say) + kpis
        parts += [sc.score_table(f.score, say), sc.payment(f.score, say)]
    parts.append(av.regions(f, say))
    if f.kind != "weekly":
        parts.append(advice(f, say))
    parts += [
        av.sites(f, say),
        fa.kinds_and_causes(f, say),
        wo.times(f, say),
        wo.breaches(f, say) if f.kind in ("weekly", "monthly") else wo.breach_summary(f, say),
        fa.repeats(f, say),
        wo.workload(f, say),
    ]
    if f.kind == "weekly":
        parts.append(fa.links(f, say))
    missing = sc.missing_note(f, say)
    # The trend table last: with a column per region it is a landscape page of its own.
    parts += [av.blind(f, say), av.notes(f, say, [missing] if missing else []), av.trend(f, say)]
    return report(f, say, kpis, parts)
