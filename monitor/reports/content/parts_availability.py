"""Parts about availability (在线率): per region and per site, the trend, each point (the
quarterly annex), the excluded time with its reasons, the monitor's own blind periods, and the
data notes. Rates are the availability layer's (percent), shown as the document's fractions;
times are sums over the points (point-hours), in seconds.
"""

from __future__ import annotations

import re

from monitor.assess.availability import ALL, Figures
from monitor.core.model import Basis, Kind
from monitor.reports.content.facts import NS, ReportFacts
from monitor.reports.content.notes import data_notes, group_label
from monitor.reports.content.words import DEVICE_KINDS, EXCLUSION_KINDS, STATUSES, Say
from monitor.reports.document import BarChart, Column, LineChart, Part, Series
from monitor.reports.document import ColumnType as T

_MAINTENANCE_ID = re.compile(r" \(maintenance #(\d+)\)$")


def frac(pct: float | None) -> float | None:
    """A layer's percent as the document's fraction."""
    return None if pct is None else pct / 100


def seconds(ns: int) -> int:
    return round(ns / NS)


def _times(figures: Figures | None) -> tuple[int | None, int | None, int | None]:
    if figures is None:
        return None, None, None
    return seconds(figures.offline_ns), seconds(figures.unknown_ns), seconds(figures.excluded_ns)


def regions(f: ReportFacts, say: Say) -> Part:
    """Online rate per region on each basis (the fleet first), with the regions' bars against
    the target; its note says what data could not be seen. The service and picture (画面正常)
    columns only where the basis was measured (or, the picture, online requires it)."""
    groups = [("fleet", ALL)] + [(g.scope, g.group) for g in f.availability.groups if g.scope == "region" and g.kind == ALL]
    with_service = any(f.figures(s, g, ALL, Basis.SERVICE) is not None for s, g in groups)
    with_picture = Basis.PICTURE in f.availability.online_requires or any(
        f.figures(s, g, ALL, Basis.PICTURE) is not None for s, g in groups)
    rows = []
    for scope, group in groups:
        points = f.availability.group(scope, group, ALL).points
        row = [group_label(group, say), points, frac(f.rate(scope, group)), frac(f.rate(scope, group, Kind.CAMERA.value)),
               frac(f.rate(scope, group, ALL, Basis.NETWORK)), frac(f.rate(scope, group, ALL, Basis.VIDEO))]
        if with_picture:
            row.append(frac(f.rate(scope, group, ALL, Basis.PICTURE)))
        if with_service:
            row.append(frac(f.rate(scope, group, ALL, Basis.SERVICE)))
        rows.append((*row, *_times(f.figures(scope, group))))
    columns = [
        Column("region", "区域", "Region"),
        Column("points", "点位数", "Points", T.INT),
        Column("online", "在线率", "Online", T.PCT),
        Column("camera", "摄像机在线率", "Cameras online", T.PCT),
        Column("network", "网络在线率", "Network", T.PCT),
        Column("video", "视频在线率", "Video", T.PCT),
        *([Column("picture", "画面正常率", "Picture normal", T.PCT)] if with_picture else []),
        *([Column("service", "服务在线率", "Service", T.PCT)] if with_service else []),
        Column("offline", "离线点时", "Offline point-h", T.DURATION),
        Column("unknown", "未知点时", "Unknown point-h", T.DURATION),
        Column("excluded", "排除点时", "Excluded point-h", T.DURATION),
    ]
    names = [g for s, g in groups if s == "region"]
    camera = Kind.CAMERA.value
    chart = BarChart(say("各区域摄像机在线率", "Camera online rate per region"), tuple(names),
                     tuple(frac(f.rate("region", g, camera)) for g in names), target=f.target_pct / 100)
    charts = [chart] if names else []
    if f.trend:
        charts.append(_trend_chart(f, say))
    note = _join(data_notes(f, say), say)
    return Part(say("区域在线率", "Online rate per region"), tuple(columns), tuple(rows), note, tuple(charts))


def sites(f: ReportFacts, say: Say) -> Part:
    """Online rate per site, the worst first."""
    rows = []
    for g in f.availability.groups:
        if g.scope != "site" or g.kind != ALL:
            continue
        figures = g.figures.get(Basis.ONLINE)
        region = next((p.device.region for p in f.availability.points.values() if p.device.site == g.group), "")
        rows.append((region, g.group, g.points, frac(figures.rate_pct if figures else None), *_times(figures)))
    rows.sort(key=lambda r: (r[3] is None, r[3] if r[3] is not None else 0, r[0], r[1]))
    return Part(
        say("站点在线率", "Online rate per site"),
        (
            Column("region", "区域", "Region"),
            Column("site", "站点", "Site"),
            Column("points", "点位数", "Points", T.INT),
            Column("online", "在线率", "Online", T.PCT),
            Column("offline", "离线点时", "Offline point-h", T.DURATION),
            Column("unknown", "未知点时", "Unknown point-h", T.DURATION),
            Column("excluded", "排除点时", "Excluded point-h", T.DURATION),
        ),
        tuple(rows),
        say("按在线率从低到高排列。", "Worst first."),
    )


def _step_words(f: ReportFacts, say: Say) -> tuple[str, str, str]:
    """(part title, first column header, chart title) of the trend."""
    return {
        "day": (say("每日在线率", "Daily online rate"), say("日期", "Day"),
                say("每日摄像机在线率", "Daily camera online rate")),
        "week": (say("每周在线率", "Weekly online rate"), say("周", "Week"),
                 say("每周摄像机在线率", "Weekly camera online rate")),
        "month": (say("每月在线率", "Monthly online rate"), say("月份", "Month"),
                  say("每月摄像机在线率", "Monthly camera online rate")),
    }[f.trend_step]


def _trend_chart(f: ReportFacts, say: Say) -> LineChart:
    """The cameras' rate step by step against the target: the contract's figure (the table
    of the trend has every device and every region too)."""
    return LineChart(
        _step_words(f, say)[2],
        tuple(s.label for s in f.trend),
        (Series(say("摄像机", "Cameras"), tuple(frac(s.rate(kind=Kind.CAMERA.value)) for s in f.trend)),),
        target=f.target_pct / 100,
    )


def trend(f: ReportFacts, say: Say) -> Part:
    """The trend as a table: per step, the fleet, its cameras and each region (its chart is in
    the regions part)."""
    title, header, _ = _step_words(f, say)
    names = sorted({g for s in f.trend for (scope, g, kind) in s.rates if scope == "region" and kind == ALL})
    columns = (
        Column("step", header, header),
        Column("all", "全部设备", "All devices", T.PCT),
        Column("camera", "摄像机", "Cameras", T.PCT),
        *(Column(f"region_{i}", name, name, T.PCT) for i, name in enumerate(names)),
    )
    rows = tuple(
        (s.label, frac(s.rate()), frac(s.rate(kind=Kind.CAMERA.value)), *(frac(s.rate("region", n)) for n in names))
        for s in f.trend
    )
    return Part(title, columns, rows)


def points(f: ReportFacts, say: Say) -> Part:
    """Annex: every point's figures on basis online, in point-list order."""
    rows = []
    for p in f.availability.points.values():
        d, figures = p.device, p.figures[Basis.ONLINE]
        outages = len({o.start_ns for o in p.outages(Basis.ONLINE)})
        rows.append((
            d.id, d.name, say.label(DEVICE_KINDS, d.kind.value), d.site, frac(figures.rate_pct), seconds(figures.offline_ns), seconds(figures.unknown_ns),
            seconds(figures.excluded_ns), outages,
        ))
    return Part(
        say("附件1 点位在线率明细", "Annex 1: availability per point"),
        (
            Column("id", "点位编号", "Point"),
            Column("name", "点位名称", "Name", width=13),
            Column("kind", "类型", "Kind"),
            Column("site", "站点", "Site"),
            Column("online", "在线率", "Online", T.PCT),
            Column("offline", "离线时长", "Offline", T.DURATION),
            Column("unknown", "未知时长", "Unknown", T.DURATION),
            Column("excluded", "排除时长", "Excluded", T.DURATION),
            Column("outages", "离线次数", "Outages", T.INT),
        ),
        tuple(rows),
        say("在线率 = 在线时长 ÷ (在线时长 + 离线时长)；未知时段与排除时段（延建、拆除见附件4）不计入。离线次数为计入的离线时段数。",
            "Online rate = online ÷ (online + offline); unknown and excluded time (延建/拆除: annex 4) are not counted. "
            "Outages: the counted offline stretches."),
    )


def exclusion_reason(kind: str, reason: str, say: Say) -> str:
    """An exclusion's reason for people: a status named, a maintenance window's reason and id."""
    if kind == "status":
        return say.label(STATUSES, reason)
    m = _MAINTENANCE_ID.search(reason)
    if kind == "maintenance" and m:
        return reason[: m.start()] + say(f"（维护窗口 #{m[1]}）", f" (maintenance window #{m[1]})")
    return reason


def exclusions(f: ReportFacts, say: Say) -> Part:
    """Annex: the excluded time with its reasons (延建/拆除, maintenance windows, work orders with
    an excluded cause), clipped to the period: one row per reason and stretch of time, with the
    point, or how many points shared it (a window over a region is one row, not one per camera)."""
    groups: dict[tuple[int, int, str, str], list[str]] = {}
    for p in f.availability.points.values():
        for e in p.exclusions:
            groups.setdefault((e.start_ns, e.end_ns, e.kind, e.reason), []).append(p.device.id)
    rows = []
    for (start, end, kind, reason), ids in sorted(groups.items(), key=lambda x: (x[0][0], x[1][0])):
        who = ids[0] if len(ids) == 1 else say(f"{len(ids):,} 个点位", f"{len(ids):,} points")
        rows.append((who, say.label(EXCLUSION_KINDS, kind), start, end, seconds(end - start),
                     exclusion_reason(kind, reason, say)))
    return Part(
        say("附件4 排除时段及原因", "Annex 4: excluded time and reasons"),
        (
            Column("point", "点位", "Point"),
            Column("kind", "类别", "Kind"),
            Column("start", "开始", "Start", T.DATETIME),
            Column("end", "结束", "End", T.DATETIME),
            Column("length", "时长", "Length", T.DURATION),
            Column("reason", "原因", "Reason", width=24),
        ),
        tuple(rows),
        say("同一原因、同一时段涉及多个点位的合并为一行（如区域维护窗口）；同一点位的维护窗口可相互重叠，在线率计算中重叠时段只排除一次。",
            "One row per reason and stretch of time, with how many points it covered (a window over a region); a "
            "point's windows may overlap, and the online rate excludes overlapping time once."),
    )


def blind(f: ReportFacts, say: Say) -> Part:
    """The monitor's own blind periods: not running, a probe stalled, since the last heartbeat, a
    probe agent silent."""
    kinds = {
        "not running": say("监测系统未运行", "fleetmon not running"),
        "stalled": say("探针停滞", "probe stalled"),
        "since the last heartbeat": say("最近心跳之后", "since the last heartbeat"),
    }

    def what(reason: str, agent: str | None) -> str:
        if reason == "agent silent":
            return say(f"探测代理{agent}失联", f"probe agent {agent} silent")
        return kinds.get(reason, reason)

    rows = tuple(
        (what(g.reason, g.agent), g.probe or say("全部", "all"), g.start_ns, g.end_ns, seconds(g.end_ns - g.start_ns))
        for g in f.availability.gaps
    )
    return Part(
        say("监测盲区", "Blind periods"),
        (
            Column("what", "类型", "What"),
            Column("probe", "探针", "Probe"),
            Column("start", "开始", "Start", T.DATETIME),
            Column("end", "结束", "End", T.DATETIME),
            Column("length", "时长", "Length", T.DURATION),
        ),
        rows,
        say("监测系统自身未在观察的时段：其间点位状态未知，不作在线或离线处理。",
            "When fleetmon itself was not watching: the points' state then is unknown, neither up nor down."),
    )


def notes(f: ReportFacts, say: Say, more: list[str]) -> Part:
    """Every note of the report in one list (the data notes, then `more`)."""
    lines = data_notes(f, say) + more
    if not lines:
        lines = [say("本期监测数据完整：监测系统全程运行，所有在用点位均有数据。",
                     "Nothing unseen: fleetmon watched throughout and every active point has data.")]
    return Part(
        say("数据说明", "Data notes"),
        (Column("n", "序号", "No.", T.INT), Column("note", "说明", "Note", width=90)),
        tuple((i, line) for i, line in enumerate(lines, start=1)),
    )


def _join(lines: list[str], say: Say) -> str | None:
    return (say("", " ").join(lines)) or None
