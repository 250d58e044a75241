"""What a report could not see, said in its own language (tenders: "每有1个不符合项，扣1分": a
report must not pass off what fleetmon did not watch as known): a period not yet over, time
fleetmon was not running or a probe stalled, the time since the last heartbeat of a daemon
still running, points without any data, unknown time and what the contract's policy does with
it, exclusions of points no longer in the point list. Built from the availability report's
structured figures (its own `notes` are English text for the API).
"""

from __future__ import annotations

from monitor.assess.availability import ALL
from monitor.assess.config import UnknownPolicy
from monitor.core.model import Basis
from monitor.reports.content.facts import NS, ReportFacts
from monitor.reports.content.words import Say
from monitor.reports.text import local_time, word_duration

MAX_IDS = 8
"""Point ids spelled out in a note; the rest are counted."""


def data_notes(f: ReportFacts, say: Say) -> list[str]:
    """The notes about the availability figures, most important first ([] when everything was
    seen)."""
    out = []
    tz = f.timezone
    av = f.availability
    if f.period.clipped:
        out.append(say(f"本期尚未结束，统计截至 {local_time(f.end_ns, tz)}。",
                       f"The period has not ended: figures up to {local_time(f.end_ns, tz)}."))
    fleet = f.figures()
    if fleet is None or fleet.counted_ns == 0:
        out.append(say("本期没有可计入的监测数据（监测系统未运行，或点位尚无任何探测结果），在线率无法计算。",
                       "No monitoring data could be counted in this period (fleetmon was not running, or no point "
                       "had a probe result yet): the online rate cannot be computed."))
    policy = {
        UnknownPolicy.EXCLUDE: ("不计入在线率", "left out of the online rate"),
        UnknownPolicy.COUNT_AS_UP: ("按合同约定计为在线", "counted as online, as the contract says"),
        UnknownPolicy.COUNT_AS_DOWN: ("按合同约定计为离线", "counted as offline, as the contract says"),
    }[av.unknown_policy]
    not_running = sum(g.end_ns - g.start_ns for g in av.gaps if g.reason == "not running")
    if not_running:
        d = word_duration(not_running / NS, say.language)
        out.append(say(f"监测盲区：监测系统共 {d} 未运行（见“监测盲区”），该时段点位状态未知，{say.pick(policy)}。",
                       f"Blind time: fleetmon was not running for {d} (see \"Blind periods\"); the points' state "
                       f"then is unknown and {say.pick(policy)}."))
    for g in av.gaps:
        if g.reason == "since the last heartbeat":
            out.append(say(f"监测系统最近一次心跳在 {local_time(g.start_ns, tz)}，其后 {word_duration((g.end_ns - g.start_ns) / NS, 'zh')} 状态未知。",
                           f"fleetmon's last heartbeat was at {local_time(g.start_ns, tz)}: the "
                           f"{word_duration((g.end_ns - g.start_ns) / NS, 'en')} since are unknown."))
    stalled = sum(g.end_ns - g.start_ns for g in av.gaps if g.reason == "stalled")
    if stalled:
        probes = say.join(sorted({g.probe or "" for g in av.gaps if g.reason == "stalled"}))
        out.append(say(f"探测停滞：{probes} 探针共停滞 {word_duration(stalled / NS, 'zh')}，相应基准的状态未知，{policy[0]}。",
                       f"Probes stalled: {probes} for {word_duration(stalled / NS, 'en')} in all; that basis is "
                       f"unknown then and {policy[1]}."))
    for agent in sorted({g.agent or "" for g in av.gaps if g.reason == "agent silent"}):
        lost = sum(g.end_ns - g.start_ns for g in av.gaps if g.reason == "agent silent" and g.agent == agent)
        d = word_duration(lost / NS, say.language)
        out.append(say(f"监测盲区：探测代理{agent}共失联 {d}（见“监测盲区”），其点位该时段状态未知，{policy[0]}。",
                       f"Blind time: probe agent {agent} was silent for {d} (see \"Blind periods\"); its points' "
                       f"state then is unknown and {policy[1]}."))
    silent = [p.device.id for p in av.points.values() if p.device.counted and p.figures[Basis.ONLINE].span_ns == 0]
    if silent:
        shown = say.join(silent[:MAX_IDS]) + (say(f" 等 {len(silent):,} 个", f" and {len(silent) - MAX_IDS:,} more")
                                                if len(silent) > MAX_IDS else "")
        out.append(say(f"{len(silent):,} 个在用点位本期无任何监测数据（{shown}），未计入在线率。",
                       f"{len(silent):,} active point(s) have no monitoring data in this period ({shown}); "
                       "they are not in the online rate."))
    unknown = [p for p in av.points.values() if p.figures[Basis.ONLINE].unknown_ns and p.figures[Basis.ONLINE].span_ns]
    if unknown and fleet is not None and fleet.unknown_ns:
        d = word_duration(fleet.unknown_ns / NS / max(1, len(unknown)), say.language)
        out.append(say(f"{len(unknown):,} 个点位有状态未知的时段（平均每点 {d}），{policy[0]}。",
                       f"{len(unknown):,} point(s) had time of unknown state ({d} each on average), {policy[1]}."))
    gone = sum(1 for e in f.exclusions if e.device_id not in av.points)
    if gone:
        out.append(say(f"{gone} 条工单除外时段所属点位已不在点位表中，未予计算。",
                       f"{gone} excluded-cause period(s) of work orders name points no longer in the point list: "
                       "left out."))
    return out


def group_label(group: str, say: Say) -> str:
    """The fleet's "all" as people read it."""
    return say("全部", "All") if group == ALL else group
