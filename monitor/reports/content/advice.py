"""问题隐患及建议 (the monthly report's "what is wrong and what to do", Nantong: "哪些方面存在问题
隐患及解决方案…并提出日常维护的建议"): a short list generated from the period's facts, each
finding with the figures it stands on and a suggestion. The findings, in this order:

- the cameras' online rate under the target; sites under the target (the worst first);
- points offline at least the long-offline threshold at the period's end;
- repeat offenders (devices with two faults or more);
- UPS on battery or low (the mains at those sites);
- SLA breaches (by clock);
- clock drift and point-list mismatches;
- lines over the RTT or loss limit (when InfluxDB was read);
- fleetmon's own blind time.
None found: one line saying so.
"""

from __future__ import annotations

from collections import Counter

from monitor.assess.availability import ALL
from monitor.core.model import Basis, Kind
from monitor.reports.content.facts import DAY_NS, NS, ReportFacts
from monitor.reports.content.parts_faults import CLOCK_KINDS, UPS_KINDS
from monitor.reports.content.words import CLOCKS, Say
from monitor.reports.document import Column, Part
from monitor.reports.document import ColumnType as T
from monitor.reports.text import word_duration

SHOWN = 5
"""Sites, devices … named in one finding; the rest are counted."""


def _pct(value: float) -> str:
    return f"{value:.2f}%"


def findings(f: ReportFacts, say: Say) -> list[tuple[str, str, str]]:
    """(category, finding, suggestion) in the order of the module docstring."""
    out = []
    target = f.target_pct
    cameras = f.rate("fleet", ALL, Kind.CAMERA.value)
    if cameras is not None and cameras < target:
        out.append((say("在线率", "Online rate"),
                    say(f"摄像机在线率 {_pct(cameras)}，低于 {target:g}% 的合同目标。",
                        f"Camera online rate {_pct(cameras)}, under the contract's {target:g} %."),
                    say("按站点排查离线点位的供电、传输链路与设备，优先处理在线率最低的站点。",
                        "Check power, lines and devices of the offline points, worst sites first.")))
    low = sorted(
        ((g.group, g.figures[Basis.ONLINE].rate_pct) for g in f.availability.groups
         if g.scope == "site" and g.kind == ALL and Basis.ONLINE in g.figures
         and g.figures[Basis.ONLINE].rate_pct is not None and g.figures[Basis.ONLINE].rate_pct < target),
        key=lambda x: x[1])
    if low:
        named = say.join(f"{site}（{_pct(rate)}）" if say.zh else f"{site} ({_pct(rate)})" for site, rate in low[:SHOWN])
        more = say(f"等 {len(low)} 个", f" and {len(low) - SHOWN} more") if len(low) > SHOWN else ""
        out.append((say("站点", "Sites"),
                    say(f"{len(low)} 个站点在线率低于 {target:g}%：{named}{more}。",
                        f"{len(low)} site(s) under {target:g} %: {named}{more}."),
                    say("对上述站点开展专项巡检，检查交换机、光纤与供电，必要时更换老化设备。",
                        "Inspect these sites: switches, fibre and power; replace ageing equipment where needed.")))
    threshold = f.long_offline_days * DAY_NS
    long = [d for d, since in f.offline.items() if f.end_ns - since >= threshold
            and d in f.availability.points and f.availability.points[d].device.counted]
    if long:
        out.append((say("长期离线", "Long offline"),
                    say(f"{len(long)} 个点位离线已超过 {f.long_offline_days:g} 天（{say.join(sorted(long)[:SHOWN])}）。",
                        f"{len(long)} point(s) offline for {f.long_offline_days:g} days or more "
                        f"({say.join(sorted(long)[:SHOWN])})."),
                    say("合同要求掉线点位一周内重新上线：逐点落实责任人与修复时间，属除外原因的及时在工单中登记。",
                        "The contract wants them back within a week: name an engineer and a date for each; record "
                        "excluded causes in the work order.")))
    per_device = Counter(x.device_id for x in f.fired() if x.device_id)
    repeat = [(d, n) for d, n in per_device.most_common() if n >= 2]
    if repeat:
        named = say.join(f"{d}×{n}" for d, n in repeat[:SHOWN])
        out.append((say("重复故障", "Repeat faults"),
                    say(f"{len(repeat)} 台设备本期发生 2 次及以上故障：{named}。",
                        f"{len(repeat)} device(s) failed twice or more: {named}."),
                    say("对重复故障设备做预防性检修，查明根因（供电、接头、设备老化），必要时更换。",
                        "Service them preventively, find the root cause (power, connectors, age), replace if needed.")))
    ups = [x for x in f.fired() if x.kind in UPS_KINDS]
    if ups:
        sites = say.join(sorted({x.site or x.scope for x in ups})[:SHOWN])
        out.append((say("供电", "Power"),
                    say(f"UPS 电池供电或电量低 {len(ups)} 次（{sites}）。", f"UPS on battery or low {len(ups)} time(s) ({sites})."),
                    say("核实市电供应情况，检测 UPS 电池容量，到使用年限的电池提前更换。",
                        "Check the mains supply and the UPS batteries' capacity; replace batteries at the end of their life.")))
    if f.breaches.total:
        by_clock = say.join(f"{say.label(CLOCKS, c)} {n}" for c, n in f.breaches.by_clock.items())
        out.append((say("SLA", "SLA"),
                    say(f"SLA 超时 {f.breaches.total} 次（{by_clock}）。", f"{f.breaches.total} SLA breach(es) ({by_clock})."),
                    say("加强值班响应与备件储备，超时工单逐单复盘。",
                        "Strengthen on-duty response and spare parts; review each late order.")))
    drift = [x for x in f.fired() if x.kind in CLOCK_KINDS]
    if drift:
        out.append((say("时钟与点位表", "Clocks and point list"),
                    say(f"时钟偏差或与点位表不符 {len(drift)} 次。", f"{len(drift)} clock drift or point-list mismatch fault(s)."),
                    say("为摄像机配置 NTP 校时；设备更换后及时更新点位表。",
                        "Set the cameras to NTP; update the point list after each replacement.")))
    if f.links.stats is not None:
        bad = [s for s in f.links.stats.values()
               if (s.rtt_mean_ms or 0) > f.links.rtt_limit_ms or (s.loss_mean_pct or 0) > f.links.loss_limit_pct]
        if bad:
            out.append((say("链路", "Lines"),
                        say(f"{len(bad)} 条链路平均时延或丢包超限。", f"{len(bad)} line(s) over the RTT or loss limit."),
                        say("联系运营商核查线路质量，必要时扩容或更换线路。",
                            "Ask the carrier to check the lines; upgrade or replace them if needed.")))
    blind = sum(g.end_ns - g.start_ns for g in f.availability.gaps if g.reason == "not running")
    if blind:
        d = word_duration(blind / NS, say.language)
        out.append((say("监测系统", "Monitoring"),
                    say(f"监测系统本期有 {d} 未运行，形成监测盲区。", f"fleetmon was not running for {d} this period."),
                    say("检查监测服务器的运行与供电，配置服务自动重启，避免盲区。",
                        "Check the monitoring server and its power; keep the service restarting on failure.")))
    return out


def advice(f: ReportFacts, say: Say) -> Part:
    rows = findings(f, say)
    if not rows:
        rows = [(say("总体", "Overall"), say("本期未发现需要特别关注的问题。", "Nothing in this period needs special attention."),
                 say("继续按计划巡检与维护。", "Keep to the inspection and maintenance plan."))]
    return Part(
        say("问题隐患及建议", "Issues and suggestions"),
        (Column("n", "序号", "No.", T.INT), Column("what", "类别", "Area"), Column("finding", "问题", "Finding", width=44),
         Column("suggestion", "建议", "Suggestion", width=44)),
        tuple((i, *row) for i, row in enumerate(rows, start=1)),
        say("根据本期数据自动生成。", "Generated from this period's figures."),
    )
