"""What every report type shares: the document's header (title, period, zone, language, scope)
and the headline figures (KPIs) about availability and work orders."""

from __future__ import annotations

from monitor.assess.availability import ALL
from monitor.core.model import Kind
from monitor.reports.content.facts import NS, ReportFacts
from monitor.reports.content.parts_orders import mean_times
from monitor.reports.content.words import TITLES, Say
from monitor.reports.document import Kpi, Part, Period, Report
from monitor.reports.document import ColumnType as T


def report(f: ReportFacts, say: Say, kpis: list[Kpi], parts: list[Part], title: str | None = None) -> Report:
    return Report(
        kind=f.kind, title=title or say.pick(TITLES[f.kind]),
        period=Period(f.period.label, f.start_ns, f.end_ns), generated_ns=f.generated_ns, timezone=f.timezone,
        language=say.language, scope=say("全部区域", "All regions"), kpis=tuple(kpis), parts=tuple(parts),
    )


def rate_kpis(f: ReportFacts, say: Say) -> list[Kpi]:
    """The cameras' online rate against the target, and every device's."""
    target = f.target_pct / 100
    cameras = f.rate("fleet", ALL, Kind.CAMERA.value)
    devices = f.rate()
    return [
        Kpi(say("摄像机在线率", "Camera online rate"), None if cameras is None else cameras / 100, T.PCT, target=target,
            ok=None if cameras is None else cameras >= f.target_pct),
        Kpi(say("全部设备在线率", "Online rate, all devices"), None if devices is None else devices / 100, T.PCT,
            target=target, ok=None if devices is None else devices >= f.target_pct),
    ]


def order_kpis(f: ReportFacts, say: Say) -> list[Kpi]:
    """Faults, orders, the mean times to respond, arrive and restore, SLA breaches."""
    respond, arrive, restore = mean_times(f)
    reported = f.reported()
    closed = sum(1 for o in f.orders if o.closed_ns is not None and f.start_ns <= o.closed_ns < f.end_ns)
    return [
        Kpi(say("新增故障", "Faults"), len(f.fired()), T.INT, unit=say("起", "")),
        Kpi(say("报障工单", "Work orders reported"), len(reported), T.INT, unit=say("张", "")),
        Kpi(say("关闭工单", "Work orders closed"), closed, T.INT, unit=say("张", "")),
        Kpi(say("平均响应时长", "Mean time to respond"), respond, T.DURATION),
        Kpi(say("平均到场时长", "Mean time to arrive"), arrive, T.DURATION),
        Kpi(say("平均修复时长", "Mean time to restore"), restore, T.DURATION),
        Kpi(say("SLA 超时", "SLA breaches"), f.breaches.total, T.INT, target=0, ok=f.breaches.total == 0,
            unit=say("次", "")),
    ]


def blind_kpi(f: ReportFacts, say: Say) -> list[Kpi]:
    """The monitor's own time not running, when there was some."""
    blind = sum(g.end_ns - g.start_ns for g in f.availability.gaps if g.reason == "not running")
    if not blind:
        return []
    return [Kpi(say("监测盲区", "Blind time"), round(blind / NS), T.DURATION)]
