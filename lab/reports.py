"""A synthetic report for the report infrastructure's tests and benchmark (monitor/reports):
shaped like a quarterly assessment of `points` camera points (the Qionglai contract's 1,850 by
default), with made-up but plausible figures, deterministic for a seed.

It exercises every column type, a note about data not seen, both chart kinds, Chinese and
English texts, and an empty part. It is not the real quarterly report: the content builders on
top of monitor.assess make that one.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.reports.document import (
    BarChart,
    Column,
    ColumnType,
    Kpi,
    LineChart,
    Part,
    Period,
    Report,
    Series,
)

NS = 1_000_000_000
ZONE = "Asia/Shanghai"
REGIONS = ("城东区", "城西区", "城南区", "城北区", "高新区", "临邛镇", "羊安镇", "平乐镇")
CAUSES = ("设备故障", "线路故障", "电力", "运营商", "市政", "软件/配置")
QUARTER = (date(2026, 10, 1), date(2027, 1, 1))

T = ColumnType


def _ns(day: date, zone: ZoneInfo, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()) * NS


def sample_report(points: int = 1850, *, seed: int = 1, language: str = "zh", orders: int | None = None) -> Report:
    """A quarterly-shaped report of `points` points (one availability row each), `orders` work
    orders (default points / 10), eight regions, a 92-day trend."""
    rng = random.Random(seed)
    zone = ZoneInfo(ZONE)
    zh = language == "zh"
    start, end = QUARTER
    start_ns, end_ns = _ns(start, zone), _ns(end, zone)
    quarter_s = (end_ns - start_ns) // NS

    rows = []
    per_region: dict[str, list[float]] = {r: [] for r in REGIONS}
    blind = []
    for i in range(points):
        region = REGIONS[i % len(REGIONS)]
        if i % 617 == 5:  # a few points the monitor never heard from
            blind.append(f"CAM-{i + 1:05d}")
            rows.append((f"CAM-{i + 1:05d}", f"{region}{i % 40 + 1}号路口", region, "camera", None, None, None, None, None))
            continue
        rate = min(1.0, max(0.70, rng.gauss(0.972, 0.03)))
        down_s = round((1 - rate) * quarter_s)
        excluded_s = rng.choice((0, 0, 0, 3600, 7200 + rng.randrange(3600)))
        last_down = start_ns + rng.randrange(quarter_s) * NS if down_s else None
        rtt = round(rng.uniform(2.0, 180.0), 1)
        rows.append(
            (f"CAM-{i + 1:05d}", f"{region}{i % 40 + 1}号路口", region, "camera", rate, down_s, excluded_s, last_down, rtt)
        )
        per_region[region].append(rate)

    availability = Part(
        title="点位可用性" if zh else "Availability per point",
        columns=(
            Column("id", "点位编号", "Point", T.TEXT),
            Column("name", "点位名称", "Name", T.TEXT),
            Column("region", "区域", "Region", T.TEXT),
            Column("kind", "类型", "Kind", T.TEXT),
            Column("online", "在线率", "Online rate", T.PCT),
            Column("down", "离线时长", "Offline", T.DURATION),
            Column("excluded", "排除时长", "Excluded", T.DURATION),
            Column("last_down", "最近离线", "Last offline", T.DATETIME),
            Column("rtt", "平均时延(ms)", "Mean RTT (ms)", T.MS),
        ),
        rows=tuple(rows),
        note=(
            f"未见数据：{len(blind)} 个点位本期无任何探测结果（{'、'.join(blind)}），不计入在线率。"
            if zh
            else f"Data not seen: {len(blind)} points have no probe result this period ({', '.join(blind)}); "
            "they are not counted in the online rate."
        ),
    )

    region_rates = {r: sum(v) / len(v) if v else None for r, v in per_region.items()}
    days = [start + timedelta(days=d) for d in range((end - start).days)]
    trend = [min(1.0, max(0.85, rng.gauss(0.972, 0.012))) for _ in days]
    trend[40] = None  # a day the monitor itself was down
    regions = Part(
        title="区域在线率" if zh else "Online rate per region",
        columns=(
            Column("region", "区域", "Region", T.TEXT),
            Column("points", "点位数", "Points", T.INT),
            Column("online", "在线率", "Online rate", T.PCT),
            Column("target", "目标", "Target", T.PCT, decimals=0),
        ),
        rows=tuple((r, len(per_region[r]), region_rates[r], 0.95) for r in REGIONS),
        note=(
            "监测盲区：2026-11-10 02:00 至 11:40 监测系统自身停机，该时段不计入统计。"
            if zh
            else "Blind period: the monitor itself was down 2026-11-10 02:00 to 11:40; that time is not counted."
        ),
        charts=(
            BarChart(
                "各区域在线率" if zh else "Online rate per region",
                tuple(REGIONS),
                tuple(region_rates[r] for r in REGIONS),
                target=0.95,
            ),
            LineChart(
                "每日在线率" if zh else "Daily online rate",
                tuple(f"{d:%m-%d}" for d in days),
                (Series("全部点位" if zh else "All points", tuple(trend)),),
                target=0.95,
            ),
        ),
    )

    n_orders = points // 10 if orders is None else orders
    order_rows = []
    for k in range(n_orders):
        opened = start_ns + rng.randrange(quarter_s - 5 * 86400) * NS
        response = rng.randrange(60, 3600)
        restore = response + rng.randrange(600, 5 * 86400)
        order_rows.append(
            (
                f"WO-2026-{k + 1:05d}",
                f"CAM-{rng.randrange(points) + 1:05d}",
                rng.choice(CAUSES),
                opened,
                response,
                restore,
                ("是" if restore <= 3 * 86400 else "否") if zh else ("yes" if restore <= 3 * 86400 else "no"),
            )
        )
    work_orders = Part(
        title="工单" if zh else "Work orders",
        columns=(
            Column("id", "工单号", "Order", T.TEXT),
            Column("point", "点位", "Point", T.TEXT),
            Column("cause", "原因", "Cause", T.TEXT),
            Column("opened", "报障时间", "Reported", T.DATETIME),
            Column("response", "响应时长", "Response", T.DURATION),
            Column("restore", "修复时长", "Restore", T.DURATION),
            Column("in_time", "3天内更换", "Within 3 days", T.TEXT),
        ),
        rows=tuple(order_rows),
    )
    exclusions = Part(
        title="排除时段" if zh else "Exclusions",
        columns=(
            Column("point", "点位", "Point", T.TEXT),
            Column("start", "开始", "Start", T.DATETIME),
            Column("end", "结束", "End", T.DATETIME),
            Column("reason", "原因", "Reason", T.TEXT),
        ),
        rows=(),
    )

    counted = [r[4] for r in rows if r[4] is not None]
    online = sum(counted) / len(counted)
    in_time = sum(1 for r in order_rows if r[5] <= 3 * 86400) / max(1, len(order_rows))
    kpis = (
        Kpi("前端摄像机在线率" if zh else "Camera online rate", online, T.PCT, target=0.95, ok=online >= 0.95),
        Kpi("故障及时更换率" if zh else "Timely replacement", in_time, T.PCT, target=0.95, ok=in_time >= 0.95),
        Kpi("考核点位" if zh else "Points assessed", len(counted), T.INT, unit="个" if zh else "points"),
        Kpi("平均修复时长" if zh else "Mean time to restore", sum(r[5] for r in order_rows) / max(1, len(order_rows)), T.DURATION),
        Kpi("平均时延" if zh else "Mean RTT", sum(r[8] for r in rows if r[8] is not None) / len(counted), T.MS, target=200.0, ok=True),
    )
    return Report(
        kind="quarterly",
        title="邛崃雪亮工程 季度考核报告（示例数据）" if zh else "Qionglai Xueliang project: quarterly assessment (sample data)",
        period=Period("2026Q4", start_ns, end_ns),
        generated_ns=_ns(date(2027, 1, 1), zone, 8, 0),
        timezone=ZONE,
        language=language,  # type: ignore[arg-type]
        scope="全部区域" if zh else "All regions",
        kpis=kpis,
        parts=(regions, availability, work_orders, exclusions),
    )
