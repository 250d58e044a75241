"""Report contents from a generated quarter (tests/plugins/quarter.py: lab/history.py and
lab/duty.py through fleetmon's own code paths, 250 points): each report type gathered, built,
rendered, and read back — the XLSX with openpyxl, the PDF with pdftotext — with its numbers
checked against the functions the API and the CLI answer with (availability(), the work-order
book, the fault table, offline_at), called here independently."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from monitor.assess.availability import ALL
from monitor.assess.offline import offline_at, probes_for
from monitor.assess.periods import PeriodError, parse_period
from monitor.core.model import Basis
from monitor.reports.content import build
from monitor.reports.content.gather import gather, steps
from monitor.reports.document import Report
from monitor.reports.render import render
from monitor.reports.xlsx import HEADER_ROW, sheet_names
from rules.alerting.faults import faults_between
from rules.model import Fault, FaultState, Severity
from tests.plugins.quarter import ZONE

DAY = "2026-09-20"


def period(text: str):
    return parse_period(text, ZONE)


def column(xlsx: bytes, report: Report, title: str, key: str) -> list:
    """The values of column `key` of part `title` as the workbook holds them (read back)."""
    wb = load_workbook(io.BytesIO(xlsx))
    index = [p.title for p in report.parts].index(title)
    sheet = wb[sheet_names(report)[index]]
    part = report.parts[index]
    col = next(i for i, c in enumerate(part.columns, start=1) if c.key == key)
    assert sheet.cell(HEADER_ROW, col).value == part.columns[col - 1].header(report.language)
    return [sheet.cell(r, col).value for r in range(HEADER_ROW + 1, HEADER_ROW + 1 + len(part.rows))]


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


async def truth(a, p):
    """Availability as the API and the CLI answer it (Assessment.availability)."""
    return await a.availability(p)


@needs_pdftotext
async def test_daily_report_says_what_the_assessment_says(quarter, tmp_path):
    p = period(DAY)
    async with quarter.open() as a:
        facts = await gather("daily", p, quarter.sources(a))
        expected = await truth(a, p)
        faults = await a.db.execute(lambda c: faults_between(c, p.start_ns, p.end_ns))
        offline = await a.db.execute(lambda c: offline_at(c, probes_for([Basis.NETWORK, Basis.VIDEO]), p.end_ns))
        orders = await a.book.orders(p.start_ns, p.end_ns)
    report = build(facts)
    xlsx = render(report, "xlsx")

    regions = [g for g in expected.groups if g.scope == "region" and g.kind == ALL]
    assert column(xlsx, report, "区域在线率", "region") == ["全部"] + [g.group for g in regions]
    rates = [expected.group().figures[Basis.ONLINE].rate_pct] + [g.figures[Basis.ONLINE].rate_pct for g in regions]
    assert column(xlsx, report, "区域在线率", "online") == pytest.approx([r / 100 for r in rates], abs=1e-12)
    network = [expected.group("region", g.group).figures[Basis.NETWORK].rate_pct / 100 for g in regions]
    assert column(xlsx, report, "区域在线率", "network")[1:] == pytest.approx(network, abs=1e-12)

    counted = sorted((ts, d) for d, ts in offline.items() if quarter.inventory.devices[d].counted)
    assert counted, "the generated day has points offline at its end"
    assert column(xlsx, report, "离线点位", "id") == [d for _, d in counted]

    day_faults = [f.id for f in faults if (f.fired_ns is not None and p.start_ns <= f.fired_ns < p.end_ns)
                  or (f.resolved_ns is not None and p.start_ns <= f.resolved_ns < p.end_ns)]
    assert day_faults and column(xlsx, report, "故障记录", "id") == day_faults

    still_open = sorted((o.reported_ns, o.ref) for o in orders if o.closed_ns is None or o.closed_ns >= p.end_ns)
    assert column(xlsx, report, "未关闭工单", "ref") == [ref for _, ref in still_open]
    kpis = {k.label: k for k in report.kpis}
    camera = expected.group("fleet", ALL, "camera").figures[Basis.ONLINE].rate_pct
    assert kpis["摄像机在线率"].value == camera / 100 and kpis["摄像机在线率"].ok is (camera >= 95)
    assert kpis["日终离线点位"].value == len(counted)

    text = pdf_text(render(report, "pdf"), tmp_path)
    assert "巡检日报" in text and f"{camera:.2f}%" in text
    for header in ("区域在线率", "离线点位", "故障记录", "未关闭工单", "链路质量", "UPS 事件", "监测盲区"):
        assert header in text
    assert "InfluxDB" in text  # no InfluxDB was given: the line-quality part says it could not be read


async def test_the_trend_is_availability_over_each_day(quarter):
    p = period("2026-W38")
    async with quarter.open() as a:
        facts = await gather("weekly", p, quarter.sources(a))
        days = [await truth(a, d) for d in steps(p, "day")]
    report = build(facts)
    xlsx = render(report, "xlsx")
    assert column(xlsx, report, "每日在线率", "step") == [f"09-{d:02d}" for d in range(14, 21)]
    expected = [d.group().figures[Basis.ONLINE].rate_pct / 100 for d in days]
    assert column(xlsx, report, "每日在线率", "all") == pytest.approx(expected, abs=1e-12)
    chart = report.part("区域在线率").charts[1]  # the cameras' rate, the contract's figure
    cameras = [d.group("fleet", ALL, "camera").figures[Basis.ONLINE].rate_pct / 100 for d in days]
    assert chart.title == "每日摄像机在线率" and list(chart.series[0].values) == pytest.approx(cameras, abs=1e-12)


async def test_weekly_work_orders_breaches_and_workload_match_the_book(quarter):
    p = period("2026-W38")
    async with quarter.open() as a:
        facts = await gather("weekly", p, quarter.sources(a))
        breaches = await a.book.breaches(p.start_ns, p.end_ns)
        orders = await a.book.orders(p.start_ns, p.end_ns)
    report = build(facts)
    xlsx = render(report, "xlsx")
    assert breaches.total > 0
    assert sorted(column(xlsx, report, "SLA 超时", "ref")) == sorted(b.ref for b in breaches.breaches)
    kpis = {k.label: k.value for k in report.kpis}
    assert kpis["SLA 超时"] == breaches.total
    reported = [o for o in orders if p.start_ns <= o.reported_ns < p.end_ns and not o.cancelled]
    assert kpis["报障工单"] == len(reported)
    arrivals = sum(1 for o in orders if o.arrived_ns is not None and p.start_ns <= o.arrived_ns < p.end_ns)
    workload = report.part("工作量统计")
    assert workload.rows[-1][0] == "合计" and workload.column("arrived")[-1] == arrivals
    engineers = column(xlsx, report, "工作量统计", "engineer")[:-1]
    assert engineers and set(engineers) <= {"张工", "李工", "王工", "赵工"}
    mean_restore = sum(o.restored_ns - o.reported_ns for o in reported if o.restored_ns) / sum(
        1 for o in reported if o.restored_ns) / 1e9
    assert kpis["平均修复时长"] == round(mean_restore)
    times = column(xlsx, report, "工单时效", "restore")
    assert times[-1] == timedelta(seconds=round(mean_restore))  # a duration cell, [h]:mm


async def test_repeat_faults_are_devices_with_two_or_more(quarter):
    p = period("2026-09")
    async with quarter.open() as a:
        facts = await gather("monthly", p, quarter.sources(a))
    fired = [f for f in facts.faults if f.fired_ns is not None and p.start_ns <= f.fired_ns < p.end_ns and f.device_id]
    counts = {d: sum(1 for f in fired if f.device_id == d) for d in {f.device_id for f in fired}}
    report = build(facts)
    part = report.part("重复故障")
    assert dict(zip(part.column("id"), part.column("count"))) == {d: n for d, n in counts.items() if n >= 2}


async def test_the_monthly_report_names_what_is_wrong_and_what_to_do(quarter):
    p = period("2026-09")
    async with quarter.open() as a:
        facts = await gather("monthly", p, quarter.sources(a))
    ups = Fault("F90001", "ups-on-battery", "ups_on_battery", "device:UPS-1", Severity.MAJOR, FaultState.RESOLVED,
                "UPS 城关镇-001 市电中断，电池供电", p.start_ns + 3600 * 10**9, p.start_ns + 7200 * 10**9,
                site="城关镇-001", fired_ns=p.start_ns + 3700 * 10**9, resolved_ns=p.start_ns + 7200 * 10**9)
    report = build(dataclasses.replace(facts, faults=facts.faults + (ups,)))
    advice = report.part("问题隐患及建议")
    areas = advice.column("what")
    assert "重复故障" in areas and "SLA" in areas and "供电" in areas
    finding = dict(zip(areas, advice.column("finding")))
    assert "UPS 电池供电或电量低 1 次（城关镇-001）" in finding["供电"]
    low = sorted((g.figures[Basis.ONLINE].rate_pct, g.group) for g in facts.availability.groups
                 if g.scope == "site" and g.kind == ALL and g.figures[Basis.ONLINE].rate_pct < 95)
    if low:
        assert f"{low[0][1]}（{low[0][0]:.2f}%）" in finding["站点"]
    assert report.parts[1].title == "问题隐患及建议"


async def test_the_long_offline_point_is_listed_from_its_start(quarter):
    p = period("2026-09-30")
    async with quarter.open() as a:
        facts = await gather("daily", p, quarter.sources(a))
    report = build(facts)
    part = report.part("离线超过7天的点位")
    assert part.column("id") == (quarter.extras.long_offline,)
    since = next(o.start_ns for o in quarter.scenario.outages if o.device_id == quarter.extras.long_offline
                 and o.what == "device" and o.start_ns > p.start_ns - 11 * 86_400 * 10**9)
    assert part.column("since") == (since,) and part.column("days") == (round((p.end_ns - since) / 86_400e9, 1),)
    assert part.column("order")[0] is not None  # its fault opened an order, escalated a week on
    kpis = {k.label: k for k in report.kpis}
    assert kpis["离线超过7天"].value == 1 and kpis["离线超过7天"].ok is False


async def test_clock_drift_and_point_list_mismatches_are_listed(quarter):
    rule, device, start, _, value = quarter.extras.value_faults[0]
    day = datetime.fromtimestamp(start / 1e9, ZoneInfo(ZONE))
    p = period(day.date().isoformat())
    async with quarter.open() as a:
        report = build(await gather("daily", p, quarter.sources(a)))
    part = report.part("时钟偏差与点位信息不符")
    assert any(d.startswith(device) for d in part.column("device"))
    assert value in part.column("value")


async def test_quarterly_score_table_is_the_assessments_score(quarter, tmp_path):
    p = period("2026Q3")
    async with quarter.open() as a:
        facts = await gather("quarterly", p, quarter.sources(a))
        expected = (await a.score(p)).score
    report = build(facts)
    xlsx = render(report, "xlsx")
    items = [i.name.zh for i in expected.items]
    assert column(xlsx, report, "考核得分", "item") == items + ["合计"]
    assert column(xlsx, report, "考核得分", "value")[:-1] == pytest.approx([i.value for i in expected.items])
    assert column(xlsx, report, "考核得分", "rule")[:-1] == [i.rule for i in expected.items]
    assert column(xlsx, report, "考核得分", "deduction") == [float(i.deduction) for i in expected.items] + [
        float(sum(i.deduction for i in expected.items))]
    assert column(xlsx, report, "考核得分", "score")[-1] == float(expected.total)
    pay = expected.payment
    assert column(xlsx, report, "服务费核算", "yuan") == [float(pay.fee_yuan), float(pay.deduction_yuan),
                                                     float(pay.payable_yuan)]
    kpis = {k.label: k.value for k in report.kpis}
    assert kpis["考核得分"] == float(expected.total) and kpis["应付服务费"] == float(pay.payable_yuan)
    assert report.title == "邛崃市雪亮工程运维服务季度考核报告"
    text = pdf_text(render(report, "pdf"), tmp_path)
    assert "考核得分" in text and f"{float(pay.payable_yuan):,.2f}" in text and items[0] in text


async def test_quarterly_annexes_hold_every_point_order_replacement_and_exclusion(quarter):
    p = period("2026Q3")
    async with quarter.open() as a:
        facts = await gather("quarterly", p, quarter.sources(a))
        expected = await truth(a, p)
        orders = await a.book.orders(p.start_ns, p.end_ns)
        score = (await a.score(p)).score
    report = build(facts)
    xlsx = render(report, "xlsx")
    ids = column(xlsx, report, "附件1 点位在线率明细", "id")
    assert ids == list(quarter.inventory.devices)
    rates = [None if (r := expected.points[d].figures[Basis.ONLINE].rate_pct) is None else r / 100 for d in ids]
    assert column(xlsx, report, "附件1 点位在线率明细", "online") == pytest.approx(rates, abs=1e-12)
    # Annex 2: the orders the score's order ratios counted (timely, late, pending) or excluded.
    judged = {e.ref for i in score.items for e in i.metric.evidence if e.kind == "order" and e.outcome != "not_needed"}
    listed = column(xlsx, report, "附件2 考核工单", "ref")
    assert listed and set(listed) == judged
    arrival = {e.ref: e.outcome for e in score.item("arrival").metric.evidence if e.kind == "order"}
    outcomes = dict(zip(listed, column(xlsx, report, "附件2 考核工单", "arrival")))
    words = {"timely": "及时", "late": "超时", "pending": "未到期", "excluded": "除外", "not_needed": "不适用"}
    assert all(outcomes[ref] == words[arrival[ref]] for ref in listed if ref in arrival)
    swaps = sorted((r.ts_ns, o.ref) for o in orders for r in o.replacements if p.start_ns <= r.ts_ns < p.end_ns)
    assert swaps and column(xlsx, report, "附件3 设备更换记录", "ref") == [ref for _, ref in swaps]
    groups: dict = {}
    for d, pt in expected.points.items():
        for e in pt.exclusions:
            groups.setdefault((e.start_ns, e.end_ns, e.kind, e.reason), []).append(d)
    rows = sorted(groups.items(), key=lambda x: (x[0][0], x[1][0]))
    assert column(xlsx, report, "附件4 排除时段及原因", "point") == [
        ids[0] if len(ids) == 1 else f"{len(ids):,} 个点位" for _, ids in rows]
    assert any(len(ids) > 20 for _, ids in rows)  # a region's maintenance window: one row
    reasons = set(column(xlsx, report, "附件4 排除时段及原因", "reason"))
    assert {"延建", "拆除"} <= reasons and any("电力" in r for r in reasons) and any("维护窗口 #" in r for r in reasons)
    notes = report.part("数据说明").column("note")
    assert any("监测盲区" in n for n in notes)  # the crash and the upgrade stop of the generated quarter
    blind = report.part("监测盲区")
    assert sum(r[4] for r in blind.rows if r[0] == "监测系统未运行") == round(
        sum(g.end_ns - g.start_ns for g in expected.gaps if g.reason == "not running") / 1e9)
    # The probe agent's silence of the generated quarter (lab/history): a row and a note of its own.
    (silence,) = [g for g in expected.gaps if g.reason == "agent silent"]
    assert [(r[2], r[3], r[4]) for r in blind.rows if r[0] == f"探测代理{silence.agent}失联"] == [
        (silence.start_ns, silence.end_ns, 4.5 * 3600)]
    assert any(f"监测盲区：探测代理{silence.agent}共失联" in n for n in notes)


async def test_without_a_scheme_the_quarterly_says_so_and_lists_every_order(quarter):
    p = period("2026Q3")
    async with quarter.open(scheme=None) as a:
        report = build(await gather("quarterly", p, quarter.sources(a)))
        orders = await a.book.orders(p.start_ns, p.end_ns)
    assert "考核得分" not in [x.title for x in report.parts] and report.title == "季度考核报告"
    assert any("未配置考核办法" in n for n in report.part("数据说明").column("note"))
    reported = [o.ref for o in orders if p.start_ns <= o.reported_ns < p.end_ns and not o.cancelled]
    assert list(report.part("附件2 考核工单").column("ref")) == reported


async def test_a_scheme_of_another_period_is_said_not_scored(quarter):
    async with quarter.open(scheme="zhangjiagang") as a:  # a half-year scheme
        report = build(await gather("quarterly", period("2026Q3"), quarter.sources(a)))
    assert any("所配置的考核办法按半年考核" in n for n in report.part("数据说明").column("note"))


async def test_half_year_and_annual_trends_go_by_week_and_by_month(quarter):
    async with quarter.open() as a:
        half = build(await gather("half-year", period("2026H2"), quarter.sources(a)))
        year = build(await gather("annual", period("2026"), quarter.sources(a)))
    weeks = half.part("每周在线率").column("step")  # 1 July (a Wednesday) to now: the half has not ended
    assert weeks == tuple(f"W{w}" for w in range(27, 27 + len(weeks))) and len(weeks) >= 22
    first, second = steps(period("2026H2"), "week")[:2]
    assert (first.start_ns, first.end_ns) == (period("2026-07-01").start_ns, period("2026-07-06").start_ns)
    assert second.end_ns - second.start_ns == 7 * 86_400 * 10**9
    assert year.part("每月在线率").column("step") == tuple(f"2026-{m:02d}" for m in range(1, 13))
    # Before the generated history and after it fleetmon was not running: unknown, said so.
    assert year.part("每月在线率").rows[0][1] is None
    assert any("监测系统共" in n for n in year.part("数据说明").column("note"))


async def test_english_is_selectable(quarter):
    async with quarter.open() as a:
        report = build(await gather("weekly", period("2026-W38"), quarter.sources(a, language="en")))
    assert report.title == "Weekly statistical report" and report.language == "en"
    titles = [p.title for p in report.parts]
    assert titles[:2] == ["Online rate per region", "Online rate per site"] and titles[-1] == "Daily online rate"
    assert report.part("Online rate per region").rows[0][0] == "All"
    headers = [c.en for p in report.parts for c in p.columns if not c.key.startswith("region_")]  # regions: names
    assert not [h for h in headers if any("\u4e00" <= ch <= "\u9fff" for ch in h)]


async def test_a_period_before_any_data_says_so(quarter, tmp_path):
    p = period("2026-06-01")  # before the generated history began
    async with quarter.open() as a:
        report = build(await gather("daily", p, quarter.sources(a)))
    kpis = {k.label: k for k in report.kpis}
    assert kpis["摄像机在线率"].value is None and kpis["摄像机在线率"].ok is None
    note = report.part("区域在线率").note
    assert "本期没有可计入的监测数据" in note and "个在用点位本期无任何监测数据" in note
    assert report.part("离线点位").rows == () and report.part("故障记录").rows == ()
    xlsx = load_workbook(io.BytesIO(render(report, "xlsx")))
    assert "—" in [c.value for row in xlsx["概览"].iter_rows() for c in row]  # the figure that could not be computed


async def test_a_period_not_yet_over_is_counted_to_now_and_says_so(quarter):
    now = parse_period("2026-09-20", ZONE).start_ns + 10 * 3600 * 10**9
    p = parse_period("2026-09-20", ZONE, now)
    assert p.clipped
    async with quarter.open() as a:
        report = build(await gather("daily", p, quarter.sources(a), now_ns=now))
    assert report.period.end_ns == now
    assert report.part("区域在线率").note.startswith("本期尚未结束，统计截至 2026-09-20 10:00。")


def test_a_period_in_the_future_is_refused():
    with pytest.raises(PeriodError, match="starts in the future"):
        parse_period("2027-01", ZONE, parse_period("2026-12", ZONE).start_ns)


async def test_the_quarterly_of_the_qionglai_fleet_1850_points(quarter_1850):
    p = period("2026Q3")
    async with quarter_1850.open() as a:
        facts = await gather("quarterly", p, quarter_1850.sources(a))
        expected = await truth(a, p)
        score = (await a.score(p)).score
    report = build(facts)
    xlsx = render(report, "xlsx")
    ids = column(xlsx, report, "附件1 点位在线率明细", "id")
    assert len(ids) == len(quarter_1850.inventory.devices) >= 1850
    rates = [None if (r := expected.points[d].figures[Basis.ONLINE].rate_pct) is None else r / 100 for d in ids]
    assert column(xlsx, report, "附件1 点位在线率明细", "online") == pytest.approx(rates, abs=1e-12)
    assert column(xlsx, report, "考核得分", "value")[:-1] == pytest.approx([i.value for i in score.items])
    assert column(xlsx, report, "考核得分", "score")[-1] == float(score.total)
    camera = expected.group("fleet", ALL, "camera").figures[Basis.ONLINE].rate_pct
    assert {k.label: k.value for k in report.kpis}["摄像机在线率"] == camera / 100
    assert column(xlsx, report, "区域在线率", "points")[0] == len(ids)


async def test_the_picture_column_is_shown_only_where_the_picture_is_measured_or_required(quarter):
    """画面正常 (the picture basis) beside 网络在线率 and 视频在线率 in the regions part: absent
    when no point was judged on picture (the generated quarter), its groups' rates when the
    basis was measured, empty cells when online requires it and nothing was judged."""
    p = period(DAY)
    async with quarter.open() as a:
        facts = await gather("daily", p, quarter.sources(a))

    def regions_part(f):
        report = build(f)
        return report, next(x for x in report.parts if x.title == "区域在线率")

    _, plain = regions_part(facts)
    assert "picture" not in [c.key for c in plain.columns]

    def with_picture(g):  # a picture rate of its own per group: 1.5 points under its video rate
        video = g.figures.get(Basis.VIDEO)
        if video is None or video.rate_pct is None:
            return g
        return dataclasses.replace(g, figures={**g.figures, Basis.PICTURE: dataclasses.replace(
            video, rate_pct=video.rate_pct - 1.5)})

    av = facts.availability
    measured = dataclasses.replace(facts, availability=dataclasses.replace(av, groups=tuple(map(with_picture, av.groups))))
    report, part = regions_part(measured)
    xlsx = render(report, "xlsx")
    regions = [g for g in av.groups if g.scope == "region" and g.kind == ALL]
    expected = [measured.availability.group("fleet").figures[Basis.PICTURE].rate_pct] + [
        measured.availability.group("region", g.group).figures[Basis.PICTURE].rate_pct for g in regions]
    assert column(xlsx, report, "区域在线率", "picture") == pytest.approx([r / 100 for r in expected], abs=1e-12)
    keys = [c.key for c in part.columns]
    assert keys.index("picture") == keys.index("video") + 1
    assert next(c for c in part.columns if c.key == "picture").header("en") == "Picture normal"

    required = dataclasses.replace(facts, availability=dataclasses.replace(
        av, online_requires=(Basis.NETWORK, Basis.VIDEO, Basis.PICTURE)))
    _, part = regions_part(required)
    index = [c.key for c in part.columns].index("picture")
    assert [row[index] for row in part.rows] == [None] * len(part.rows)
