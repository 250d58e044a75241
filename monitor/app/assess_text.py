"""The assessment documents of monitor.app.assess_views as text for people (the CLI without
`--json`), in Chinese (default) or English (`language` in config). Made from the same
documents `--json` prints, so the two never disagree.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from rich.cells import cell_len

from monitor.app.assess_views import (
    AvailabilityOut,
    FiguresOut,
    LongOfflineOut,
    MetricOut,
    PeriodOut,
    ScoreOut,
    SpotCheckOut,
)
from monitor.assess.periods import format_local

_WORDS = {
    "zh": {
        "availability": "考核在线率", "definition": "计算方式", "policy": "未知时间", "requires": "在线判据",
        "basis": "口径", "point_time": "按时长加权（Σ在线时长÷Σ计入时长）",
        "daily_snapshot": "每日定时点平均（在线点位÷计入点位）", "exclude": "不计入", "count_as_up": "按在线计",
        "count_as_down": "按离线计",
        "group_head": ("范围", "分组", "类型", "点位", "在线率", "在线(时)", "离线(时)", "未知(时)", "其中监测盲区(时)",
                       "排除(时)"),
        "point_head": ("编号", "名称", "站点", "在线率", "离线(分)", "中断次数", "未知(分)", "其中监测盲区(分)", "排除(分)"),
        "fleet": "全网", "region": "区域", "site": "站点", "all": "全部",
        "gaps": "未监测时段", "not running": "fleetmon未运行", "stalled": "探测停滞",
        "agent silent": "监测盲区：探测代理{agent}失联",
        "since the last heartbeat": "最后心跳之后", "notes": "说明",
        "score": "考核得分", "item_head": ("考核项目", "分值", "指标值", "适用档位", "扣分", "得分"),
        "total": "总分", "fee": "服务费", "deduction": "扣除", "payable": "应付", "yuan": "元",
        "pay_full": "全额支付", "pay_per_point": "比全额线少{short}分，按分扣减", "pay_below_floor": "低于最低线，扣{cut}%",
        "pay_grade": "等级：{grade}", "pay_veto": "一票否决：{grade}", "vetoes": "否决项", "hit": "触发", "clear": "未触发",
        "evidence": "依据", "reading": "口径",
        "spot": "抽查", "seen": "所见", "counted": "计入", "spot_head": ("口径", "所见", "计入"),
        "status": "点位状态", "since": "自", "probes": "探测", "before": "之前", "after": "之后", "none": "无",
        "session": "监测会话", "not_running_at": "该时刻fleetmon未运行：上次心跳 {last}，下次启动 {next}",
        "exclusions": "排除", "results": "原始探测结果", "n_results": "{n}条",
        "offline": "离线超过{days:g}天的点位：{n}个",
        "offline_head": ("编号", "名称", "区域/站点", "离线起始", "天数", "工单", "原因", "已升级"),
        "yes": "是", "no": "否",
    },
    "en": {
        "availability": "Availability", "definition": "definition", "policy": "unknown time", "requires": "online means",
        "basis": "basis", "point_time": "time-weighted (Σ online ÷ Σ counted time)",
        "daily_snapshot": "mean of the daily checks (points online ÷ points counted)", "exclude": "left out",
        "count_as_up": "counted as online", "count_as_down": "counted as offline",
        "group_head": ("scope", "group", "kind", "points", "rate", "up (h)", "offline (h)", "unknown (h)",
                       "of which agent silent (h)", "excluded (h)"),
        "point_head": ("id", "name", "site", "rate", "offline (min)", "outages", "unknown (min)",
                       "of which agent silent (min)", "excluded (min)"),
        "fleet": "fleet", "region": "region", "site": "site", "all": "all",
        "gaps": "not watched", "not running": "fleetmon not running", "stalled": "probe stalled",
        "agent silent": "monitor blind: probe agent {agent} silent",
        "since the last heartbeat": "since the last heartbeat", "notes": "notes",
        "score": "Score", "item_head": ("item", "points", "value", "tier", "deducted", "score"),
        "total": "total", "fee": "fee", "deduction": "deducted", "payable": "payable", "yuan": "yuan",
        "pay_full": "paid in full", "pay_per_point": "{short} points below full pay, deducted per point",
        "pay_below_floor": "below the floor: {cut} % cut", "pay_grade": "grade: {grade}", "pay_veto": "vetoed: {grade}",
        "vetoes": "vetoes", "hit": "hit", "clear": "clear", "evidence": "evidence", "reading": "reading",
        "spot": "Spot check", "seen": "seen", "counted": "counted", "spot_head": ("basis", "seen", "counted"),
        "status": "status", "since": "since", "probes": "probes", "before": "before", "after": "after", "none": "none",
        "session": "session", "not_running_at": "fleetmon was not running then: last heartbeat {last}, next start {next}",
        "exclusions": "exclusions", "results": "raw probe results", "n_results": "{n}",
        "offline": "Points offline over {days:g} days: {n}",
        "offline_head": ("id", "name", "region/site", "offline since", "days", "order", "cause", "escalated"),
        "yes": "yes", "no": "no",
    },
}


def _w(language: str) -> dict:
    return _WORDS["en" if language == "en" else "zh"]


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows as aligned columns (CJK counted as two cells), the first row a header."""
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c + " " * (w - cell_len(c)) for c, w in zip(row, widths)).rstrip() for row in rows]


def _period(p: PeriodOut, language: str) -> str:
    span = f"{format_local(p.start_ns, p.timezone)} – {format_local(p.end_ns, p.timezone)}"
    return f"{p.label} ({span}, {p.timezone})" if language == "en" else f"{p.label}（{span}，{p.timezone}）"


def _rate(f: FiguresOut | None) -> str:
    return "-" if f is None or f.rate_pct is None else f"{f.rate_pct:.3f} %"


def _h(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def _m(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def availability_text(doc: AvailabilityOut, language: str) -> list[str]:
    w = _w(language)
    lines = [
        f"{w['availability']} {_period(doc.period, language)}",
        f"{w['definition']}: {w[doc.definition]}; {w['policy']}: {w[doc.unknown_policy]}; "
        f"{w['requires']}: {'+'.join(b.value for b in doc.online_requires)}; {w['basis']}: {doc.basis.value}",
        "",
    ]
    rows = [w["group_head"]]
    for g in doc.groups:
        f = g.figures
        rows.append((
            w[g.scope], w["all"] if g.group == "all" else g.group, w["all"] if g.kind == "all" else g.kind,
            str(g.points), _rate(f), *((_h(f.up_s), _h(f.offline_s), _h(f.unknown_s), _h(f.agent_silent_s),
                                        _h(f.excluded_s)) if f else ("-",) * 5),
        ))
    lines += table(rows)
    if doc.points is not None:
        rows = [w["point_head"]]
        for p in doc.points:
            f = p.figures
            rows.append((p.id, p.name, p.site, _rate(f), _m(f.offline_s) if f else "-", str(len(p.outages)),
                         _m(f.unknown_s) if f else "-", _m(f.agent_silent_s) if f else "-",
                         _m(f.excluded_s) if f else "-"))
        lines += ["", *table(rows)]
    if doc.gaps:
        tz = doc.period.timezone
        lines += ["", f"{w['gaps']}:"] + [
            f"  {format_local(g.start_ns, tz)} – {format_local(g.end_ns, tz)}  "
            + " ".join(x for x in (g.probe, w.get(g.reason, g.reason).format(agent=g.agent or "")) if x)
            for g in doc.gaps
        ]
    return lines + _notes(doc.notes, w)


def _notes(notes: Iterable[str], w: dict) -> list[str]:
    notes = list(notes)
    return ["", f"{w['notes']}:", *(f"  - {n}" for n in notes)] if notes else []


def _value(m: MetricOut) -> str:
    unit = {"pct": " %", "count": "", "minutes": " min"}[m.unit]
    return f"{m.value:.3f}{unit}" if m.unit != "count" else f"{m.value:g}"


def _pts(x: float) -> str:
    return f"{x:g}"


def score_text(doc: ScoreOut, language: str) -> list[str]:
    w = _w(language)
    lang = "en" if language == "en" else "zh"
    lines = [f"{w['score']} {_period(doc.period, language)}", f"{getattr(doc.title, lang)} ({doc.scheme})", ""]
    rows = [w["item_head"]] + [
        (getattr(i.name, lang), _pts(i.points), _value(i.metric), i.rule, _pts(i.deduction), _pts(i.score))
        for i in doc.items
    ]
    lines += table(rows)
    p = doc.payment
    basis = {
        "full": w["pay_full"],
        "per_point": w["pay_per_point"].format(short=_pts(p.points_short or 0)),
        "below_floor": w["pay_below_floor"].format(cut=_pts(p.cut_pct or 0)),
        "grade": w["pay_grade"].format(grade=getattr(p.grade_name, lang) if p.grade_name else p.grade),
        "veto": w["pay_veto"].format(grade=getattr(p.grade_name, lang) if p.grade_name else p.grade),
    }[p.basis]
    lines += [
        "",
        f"{w['total']}: {_pts(doc.total)}",
        f"{w['fee']} {p.fee_yuan:.2f} {w['yuan']}, {w['deduction']} {p.deduction_yuan:.2f} {w['yuan']}, "
        f"{w['payable']} {p.payable_yuan:.2f} {w['yuan']} ({basis})",
    ]
    if doc.vetoes:
        lines += ["", f"{w['vetoes']}:"] + [
            f"  {getattr(v.name, lang)}: {_value(v.metric)}, {v.rule} → {w['hit'] if v.hit else w['clear']}"
            for v in doc.vetoes
        ]
    for item in doc.items:
        m = item.metric
        if isinstance(m.evidence, list):
            lines += ["", f"{w['evidence']} — {getattr(item.name, lang)}: {_value(m)}"
                      + (f" = {m.numerator:g} ÷ {m.denominator:g}" if m.denominator else "")]
            lines.append(f"  {w['reading']}: {m.note}")
            lines += [
                f"  {e.kind} {e.ref} {e.outcome}" + (f" {e.minutes:.1f} min" if e.minutes is not None else "")
                + (f": {e.detail}" if e.detail else "")
                for e in m.evidence
            ]
    return lines + _notes(doc.notes, w)


def spot_check_text(doc: SpotCheckOut, language: str, timezone: str) -> list[str]:
    w = _w(language)
    d = doc.device

    def local(ns: int | None) -> str:
        return "-" if ns is None else format_local(ns, timezone)

    head = f"{w['spot']} {d.id} {d.name}（{d.region}/{d.site}） {doc.local}" if language != "en" else \
        f"{w['spot']} {d.id} {d.name} ({d.region}/{d.site}) at {doc.local}"
    bases = list(dict.fromkeys([*doc.seen, *doc.counted]))
    lines = [head, "", *table([w["spot_head"], *((b, doc.seen.get(b, "-"), doc.counted.get(b, "-")) for b in bases)],
                              "  ")]
    since = f" ({w['since']} {local(doc.status_since_ns)})" if doc.status_since_ns is not None else ""
    lines += ["", f"{w['status']}: {doc.status.value}{since}", f"{w['probes']}:"]
    for p in doc.probes:
        when = f" {w['since']} {local(p.since_ns)}" if p.since_ns is not None else ""
        lines.append(f"  {p.probe}: {p.state or '-'}{when} ({p.coverage})")
        for label, items in ((w["before"], p.before), (w["after"], p.after)):
            if items:
                lines.append(f"    {label}: " + "; ".join(f"{t.local} {t.old}→{t.new}" for t in items))
    if doc.session is not None:
        s = doc.session
        lines.append(f"{w['session']}: #{s.id} {local(s.started_ns)} – {local(s.last_seen_ns)}")
    elif doc.not_running is not None:
        lines.append(w["not_running_at"].format(last=local(doc.not_running.last_heartbeat_ns),
                                                next=local(doc.not_running.next_start_ns)))
    lines.append(f"{w['exclusions']}: " + ("; ".join(
        f"{e.kind} {e.reason} ({local(e.start_ns)} – {local(e.end_ns)})" for e in doc.exclusions) or w["none"]))
    lines.append(f"{w['results']}: " + (w["n_results"].format(n=len(doc.results)) if doc.results else
                                        doc.results_note or w["none"]))
    for r in doc.results:
        values = ", ".join(f"{k}={v}" for k, v in sorted(r.values.items()))
        lines.append(f"  {local(r.ts_ns)} {r.measurement}: {values}")
    return lines


def long_offline_text(doc: LongOfflineOut, language: str, timezone: str) -> list[str]:
    w = _w(language)
    lines = [w["offline"].format(days=doc.days, n=len(doc.points))]
    if doc.points:
        rows = [w["offline_head"]] + [
            (p.device_id, p.name, f"{p.region}/{p.site}", format_local(p.since_ns, timezone), f"{p.days:.1f}",
             p.order_ref or "-", p.cause or "-", w["yes"] if p.escalated else w["no"])
            for p in doc.points
        ]
        lines += ["", *table(rows)]
    return lines
