"""A work order's whole life with real peers: a fault fires (FaultBook, real SQLite), the order
opens, its response clock warns and then breaches in the WeCom group (the robot simulator, via
the outbox worker and the WeCom route), the engineer acknowledges, arrives, restores and closes;
the fault's own firing and resolution go out too, and nothing else."""

from __future__ import annotations

import ipaddress
import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

from lab.wecom import WeComSimulator
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Device, Kind
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from rules.alerting.duty import DutyRoster, DutyShift
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.alerting.notifiers.wecom import WeComConfig, WeComRoute
from rules.alerting.outbox import OutboxWorker
from rules.base import Condition
from rules.model import Severity
from tests.plugins.daemon import until

SH = ZoneInfo("Asia/Shanghai")
S, MIN = 10**9, 60 * 10**9
T0 = int(datetime(2026, 12, 4, 10, 0, tzinfo=SH).timestamp()) * S
ON_DUTY = "13800000001"
_env = itertools.count(1)

INV = Inventory([
    Device("SW1", "城关一号交换机", Kind.SWITCH, ipaddress.ip_address("198.18.9.1"), "东关派出所", "城关镇"),
    Device("C1", "东关路口枪机", Kind.CAMERA, ipaddress.ip_address("198.18.9.2"), "东关派出所", "城关镇", parent="SW1"),
])


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


async def test_fault_order_warning_breach_arrival_restore_close_in_the_wecom_group(tmp_path, monkeypatch):
    env = f"WO_WECOM_KEY_{next(_env)}"
    async with WeComSimulator() as wecom, StateDB(tmp_path / "s.db") as db:
        key = wecom.add_robot()
        monkeypatch.setenv(env, key)
        route_cfg = WeComConfig(name="duty", type="wecom", url=wecom.url, key_env=env, msgtype="text")
        roster = DutyRoster([DutyShift(name="张工", mobile=ON_DUTY)])
        faults = await FaultBook.load(db, INV, [route_cfg], await MaintenanceBook.load(db, INV, []))
        async with WeComRoute(route_cfg, roster) as route, OutboxWorker(db, {"duty": route}) as worker:
            clock = FakeClock()
            cfg = WorkOrderConfig(open_on=[{"rules": ["down"], "min_severity": "major"}], routes=["duty"],
                                  auto_close="close")
            book = await WorkOrderBook.load(
                db, INV, cfg, Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai"), faults=faults,
                known_routes={"duty"}, clock=clock, wake=worker.wake,
            )

            def texts() -> list[str]:
                return [m.content for m in wecom.messages(key)]

            async def step(now: int, conditions: dict) -> None:
                clock.now = now
                if await faults.apply(conditions, now):
                    worker.wake()
                await book.tick(now)

            down = Condition("down", "device_down", "device:SW1", Severity.MAJOR, "城关一号交换机离线", 60.0, 0.0,
                             device_id="SW1", site="东关派出所", region="城关镇", affected=("C1",))
            firing = {down.key: down}
            await step(T0 - MIN, firing)
            await step(T0, firing)  # fires: the fault's own message, and the order
            (order,) = book.open_orders()
            assert order.ref == "WO-20261204-0001" and order.devices == ("SW1", "C1")
            await until(lambda: len(texts()) == 1, 10, "the fault's firing message")
            assert "城关一号交换机离线" in texts()[0]

            await step(T0 + 11 * MIN, firing)  # 73 % of the 15-minute response: quiet
            await step(T0 + 12 * MIN, firing)  # 80 %: the warning
            await until(lambda: len(texts()) == 2, 10, "the warning")
            warning = texts()[1]
            assert warning.splitlines() == [
                "【时限预警·严重】工单WO-20261204-0001 响应时限将到（已用80%）：城关一号交换机（SW1）等2个点位",
                "工单：WO-20261204-0001",
                "设备：城关一号交换机（SW1）等2个点位",
                "位置：城关镇/东关派出所",
                "时限：响应 15分",
                "截止时间：2026-12-04 10:15",
                "剩余：3分",
                "负责人：未指派",
                "报障时间：2026-12-04 10:00",
                "通知编号：#2",  # the outbox event id: a repeat is recognisable
            ]
            assert wecom.messages(key)[1].mentioned_mobile_list == (ON_DUTY,)

            await step(T0 + 13 * MIN, firing)
            await step(T0 + 16 * MIN, firing)  # the breach
            await until(lambda: len(texts()) == 3, 10, "the breach")
            breach = texts()[2].splitlines()
            assert breach[0] == "【已超时·严重】工单WO-20261204-0001 响应已超时：城关一号交换机（SW1）等2个点位"
            assert "截止时间：2026-12-04 10:15" in breach and "已超时：1分" in breach

            clock.now = T0 + 20 * MIN
            await book.acknowledge(order.ref, by="张工")
            await book.classify(order.ref, by="张工", resolution="on_site")  # 须现场处理: 48 h to restore
            clock.now = T0 + 50 * MIN
            await book.arrive(order.ref, by="张工")
            await step(T0 + 100 * MIN, firing)  # past the 2-hour remote share, but on site: no warning
            clock.now = T0 + 110 * MIN
            await book.restore(order.ref, by="张工")
            await step(T0 + 111 * MIN, {})  # the switch answers again: the fault resolves
            closed = await book.get(order.ref)
            assert not closed.is_open and closed.closed_by == "fleetmon" and closed.restored_by == "张工"
            assert [(c.clock.value, c.state.value) for c in book.countdown(closed, T0 + 111 * MIN)] == [
                ("response", "missed"), ("restore", "met"), ("replacement", "met")]
            await until(lambda: len(texts()) == 4, 10, "the fault's resolution")
            assert texts()[3].startswith("【已恢复】")
            await step(T0 + 3 * 60 * MIN, {})
            assert await worker.pending() == 0 and len(texts()) == 4  # nothing else, nothing twice
            assert (await book.breaches(T0, T0 + 86400 * S, T0 + 3 * 60 * MIN)).by_engineer == {"张工": 1}


async def test_the_service_ticks_at_once_when_a_fault_fires(tmp_path):
    import time

    from monitor.assess.workorders import WorkOrderService

    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
        cfg = WorkOrderConfig(open_on=[{"rules": ["down"]}], tick_s=3600)
        book = await WorkOrderBook.load(db, INV, cfg, Sla.from_config(SlaConfig(), "Asia/Shanghai"), faults=faults)
        ticks = []
        tick = book.tick

        async def counted(now_ns=None):
            ticks.append(await tick(now_ns))
            return ticks[-1]

        book.tick = counted
        async with WorkOrderService(book) as service:
            faults.listeners.append(service.on_fault_event)
            await until(lambda: ticks, 5, "the first tick")
            down = Condition("down", "device_down", "device:C1", Severity.MINOR, "东关路口枪机离线", 0.0, 0.0,
                             device_id="C1", site="东关派出所", region="城关镇")
            await faults.apply({down.key: down}, time.time_ns())  # fires at once (for_s 0)
            (order,) = await until(book.open_orders, 5, "the order, long before tick_s")
            assert len(ticks) == 2 and ticks[1].opened == (order.ref,)
            assert order.source_ref == "F1" and book.countdown(order) == []  # no preset: no clocks


def test_sla_notices_render_in_markdown_and_in_english():
    from monitor.assess.orders import Source, WorkOrder
    from monitor.assess.texts import Texts
    from rules.alerting.notifiers.texts import Renderer
    from rules.model import EventKind, FaultEvent

    order = WorkOrder("WO-20261204-0003", ("SW1", "C1"), Kind.SWITCH, Severity.MINOR, Source.FAULT, "F3", "t", T0,
                      "fleetmon", assignee="李工")
    now = T0 + 5 * 60 * MIN
    (status, *_) = Sla.from_config(SlaConfig(preset="zhangjiagang"), "Asia/Shanghai").evaluate(order, now)
    zh = Texts("zh", "Asia/Shanghai").clock_notice(order, status, INV.devices, now)
    en = Texts("en", "Asia/Shanghai").clock_notice(order, status, INV.devices, now)
    md = Renderer("markdown", "zh", "Asia/Shanghai").single(FaultEvent(1, EventKind.SLA_BREACHED, now, zh), 4096)
    assert md.splitlines()[:2] == [
        '<font color="warning">【已超时·一般】</font>**工单WO-20261204-0003 响应已超时：城关一号交换机（SW1）等2个点位**',
        "> 工单：WO-20261204-0003"]
    assert "> 截止时间：2026-12-04 14:00" in md and "> 已超时：1小时" in md and "> 负责人：李工" in md
    text = Renderer("text", "en", "Asia/Shanghai").single(FaultEvent(1, EventKind.SLA_BREACHED, now, en), 2048)
    assert text.splitlines()[0] == (
        "[SLA BREACHED · MINOR] Work order WO-20261204-0003: response deadline missed: 城关一号交换机 (SW1) and 1 more")
    assert "Deadline: 2026-12-04 14:00" in text and "Overdue by: 1 h" in text
