"""巡检日报 (daily inspection report; Liyang: "每日检查图像在线状况、网络链路状况…并做好记录";
Songjiang: "每天系统至少巡检 1 次"): the day's online rate on each basis per region, the points
offline at the day's end with since when and the likely cause, the points offline for days,
the faults opened and resolved, the work orders still open with their SLA clocks, line quality,
UPS events, clock drift and point-list mismatches, and the monitor's own blind periods.
"""

from __future__ import annotations

from monitor.reports.content import parts_availability as av
from monitor.reports.content import parts_faults as fa
from monitor.reports.content import parts_orders as wo
from monitor.reports.content.common import blind_kpi, rate_kpis, report
from monitor.reports.content.facts import DAY_NS, ReportFacts
from monitor.reports.content.words import Say
from monitor.reports.document import Kpi, Report
from monitor.reports.document import ColumnType as T


def build_daily(f: ReportFacts) -> Report:
    """The daily inspection report of `f` (a day, or any period: the parts are the same)."""
    say = Say(f.language)  # type: ignore[arg-type]
    counted = [d for d in f.offline if d in f.availability.points and f.availability.points[d].device.counted]
    long = [d for d in counted if f.end_ns - f.offline[d] >= f.long_offline_days * DAY_NS]
    resolved = [x for x in f.faults if x.resolved_ns is not None and f.start_ns <= x.resolved_ns < f.end_ns]
    late = sum(1 for clocks in f.clocks.values() if any(s.state.late for s in clocks))
    kpis = [
        *rate_kpis(f, say),
        Kpi(say("日终离线点位", "Points offline at the end"), len(counted), T.INT, unit=say("个", "")),
        Kpi(say(f"离线超过{f.long_offline_days:g}天", f"Offline ≥ {f.long_offline_days:g} days"), len(long), T.INT,
            target=0, ok=not long, unit=say("个", "")),
        Kpi(say("新增故障", "Faults opened"), len(f.fired()), T.INT, unit=say("起", "")),
        Kpi(say("恢复故障", "Faults resolved"), len(resolved), T.INT, unit=say("起", "")),
        Kpi(say("未关闭工单", "Open work orders"), len(f.at_end), T.INT, unit=say("张", "")),
        Kpi(say("其中已超时", "of which past a deadline"), late, T.INT, target=0, ok=late == 0, unit=say("张", "")),
        *blind_kpi(f, say),
    ]
    parts = [
        av.regions(f, say),
        fa.offline(f, say),
        fa.long_offline(f, say),
        fa.faults_of_period(f, say),
        wo.open_orders(f, say),
        fa.links(f, say),
        fa.ups(f, say),
        fa.clocks(f, say),
        av.blind(f, say),
        av.notes(f, say, []),
    ]
    return report(f, say, kpis, parts)
