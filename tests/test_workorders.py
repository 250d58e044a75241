"""Work orders against a real SQLite state database: a report through its whole life, reference
numbers, every bad input refused with nothing written, append-only tables, orders opened and
closed by faults, replacement proposals, exclusions for the availability report, breach
counts, long-offline points, and SLA notices once each across kill -9."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.model import Cause, Exclusion
from monitor.assess.orders import (
    Action, OrderStateError, Resolution, Source, UnknownOrderError, WorkOrderError,
)
from monitor.assess.sla import ClockState, Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.config_base import SelectorConfig
from monitor.core.model import Device, Kind, Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.tracker import State, Transition
from rules.alerting.config import MaintenanceWindowConfig
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.base import Condition
from rules.model import Severity

SH = ZoneInfo("Asia/Shanghai")
S = 10**9
MIN = 60 * S
HOUR = 3600 * S
DAY = 86400 * S


def at(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SH).timestamp()) * S


T0 = at("2026-12-04 10:00")  # a Friday morning in Shanghai


def ip(n: int):
    return ipaddress.ip_address(f"198.18.9.{n}")


INV = Inventory([
    Device("SW1", "城关一号交换机", Kind.SWITCH, ip(1), "东关派出所", "城关镇"),
    Device("C1", "东关路口枪机", Kind.CAMERA, ip(2), "东关派出所", "城关镇", parent="SW1", model="DS-2CD3T46",
           serial="SN-OLD"),
    Device("C2", "河西桥头球机", Kind.CAMERA, ip(3), "河西桥", "河西乡"),
    Device("C3", "北街枪机", Kind.CAMERA, ip(4), "北街", "城关镇"),
    Device("SRV1", "视频平台服务器", Kind.SERVER, ip(5), "机房", "中心"),
    Device("C9", "已拆除点位", Kind.CAMERA, None, "北街", "城关镇", status=Status.REMOVED),
])


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def qionglai() -> Sla:
    return Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai")


async def load(db, clock, faults=None, sla=None, **cfg) -> WorkOrderBook:
    cfg.setdefault("routes", ["duty"])
    return await WorkOrderBook.load(
        db, INV, WorkOrderConfig.model_validate(cfg), sla or qionglai(), faults=faults, clock=clock,
    )


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("workorders", "workorder_devices", "workorder_events", "outbox")}


def outbox(path: Path) -> list[tuple[str, str, str, str]]:
    """(route, event, order ref, the notice's clock or kind) of every queued notification."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT route, event FROM outbox ORDER BY id").fetchall()
    out = []
    for route, doc in rows:
        e = json.loads(doc)
        out.append((route, e["event"], e["fault"]["id"], e["fault"]["details"].get("clock") or e["fault"]["kind"]))
    return out


# -- a report through its whole life ------------------------------------------------------------


async def test_a_manual_report_through_its_whole_life(tmp_path):
    clock = FakeClock()
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        o = await book.report(["C1"], by="值班员王", title="采购方来电：东关路口画面黑屏", ts_ns=T0 - 5 * MIN)
        assert (o.ref, o.source, o.kind, o.stage, o.reported_ns) == ("WO-20261204-0001", Source.MANUAL, Kind.CAMERA,
                                                                     "reported", T0 - 5 * MIN)
        clock.now = T0 + 5 * MIN
        o = await book.acknowledge(o.ref, by="张工")
        assert (o.assignee, o.acknowledged_ns, o.stage) == ("张工", T0 + 5 * MIN, "acknowledged")
        clock.now = T0 + 2 * HOUR
        o = await book.arrive(o.ref, by="张工", ts_ns=T0 + 90 * MIN)  # entered late, stamped when it happened
        o = await book.replace(o.ref, by="张工", device_id="C1", old_serial="SN-OLD", new_serial="SN-NEW",
                               new_model="DS-2CD3T47")
        o = await book.restore(o.ref, by="张工")
        o = await book.classify(o.ref, by="张工", cause=Cause.DEVICE)
        o = await book.note(o.ref, "更换枪机后画面恢复", by="张工")
        assert o.resolution is Resolution.ON_SITE  # inferred: somebody arrived
        statuses = {c.clock.value: c.state for c in book.countdown(o)}
        assert statuses == {"response": ClockState.MET, "restore": ClockState.MET, "replacement": ClockState.MET}
        o = await book.close(o.ref, by="张工")
        assert not o.is_open and o.stage == "closed" and book.open_orders() == []
        (r,) = o.replacements
        assert (r.old_serial, r.new_serial, r.old_model, r.new_model) == ("SN-OLD", "SN-NEW", "DS-2CD3T46", "DS-2CD3T47")
        events = await book.events(o.ref)
        assert [e.action for e in events] == [
            Action.OPENED, Action.ACKNOWLEDGED, Action.ASSIGNED, Action.ARRIVED, Action.REPLACED, Action.RESTORED,
            Action.CLASSIFIED, Action.NOTED, Action.CLOSED]
        assert events[3].ts_ns == T0 + 90 * MIN and events[3].recorded_ns == T0 + 2 * HOUR
        assert {e.by for e in events} == {"值班员王", "张工"}
    async with StateDB(tmp_path / "s.db") as db:  # the same order, folded from the file
        again = await (await load(db, clock)).get(o.ref)
        assert again == o


async def test_references_are_unique_and_sortable_by_local_day(tmp_path):
    clock = FakeClock(at("2026-12-05 01:00"))
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        refs = [(await book.report(["C2"], by="王", title=f"报障{i}", ts_ns=ts)).ref
                for i, ts in enumerate([at("2026-12-04 23:30"), at("2026-12-04 23:40"), at("2026-12-05 00:30")])]
        assert refs == ["WO-20261204-0001", "WO-20261204-0002", "WO-20261205-0001"]
    async with StateDB(tmp_path / "s.db") as db:  # numbering goes on after a restart
        book = await load(db, clock)
        assert (await book.report(["C2"], by="王", title="再报", ts_ns=at("2026-12-04 23:50"))).ref == "WO-20261204-0003"
        assert sorted(refs) == refs


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
async def prepared(tmp_path):
    """A (reported at T0, arrived T0+30 min), B (reported T0), C (closed as cancelled); now T0+1 h."""
    clock = FakeClock(T0 + HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        a = await book.report(["C1"], by="王", title="A", ts_ns=T0)
        await book.arrive(a.ref, by="张工", ts_ns=T0 + 30 * MIN)
        b = await book.report(["C2"], by="王", title="B", ts_ns=T0)
        c = await book.report(["C3"], by="王", title="C", ts_ns=T0)
        await book.close(c.ref, by="王", cancelled=True, note="重复报障")
        yield book, tmp_path / "s.db", a.ref, b.ref, c.ref


BAD = {
    "unknown device": (lambda k, a, b, c: k.report(["C404"], by="王", title="x"), WorkOrderError,
                       "unknown device: C404"),
    "no device": (lambda k, a, b, c: k.report([], by="王", title="x"), WorkOrderError, "at least one device"),
    "report without who": (lambda k, a, b, c: k.report(["C1"], by=" ", title="x"), WorkOrderError, "missing"),
    "report in the future": (lambda k, a, b, c: k.report(["C1"], by="王", title="x", ts_ns=T0 + 2 * HOUR),
                             WorkOrderError, "in the future"),
    "report without title": (lambda k, a, b, c: k.report(["C1"], by="王", title=""), WorkOrderError, "title"),
    "bad severity": (lambda k, a, b, c: k.report(["C1"], by="王", title="x", severity="urgent"),
                     WorkOrderError, "urgent"),
    "arrival before the report": (lambda k, a, b, c: k.arrive(b, by="张工", ts_ns=T0 - MIN), OrderStateError,
                                  "before the report"),
    "acknowledged after the arrival": (lambda k, a, b, c: k.acknowledge(a, by="张工"), OrderStateError,
                                       "already arrived"),
    "arrived twice": (lambda k, a, b, c: k.arrive(a, by="张工"), OrderStateError, "already recorded"),
    "on-site restore without arrival": (
        lambda k, a, b, c: k.restore(b, by="张工", resolution=Resolution.ON_SITE), OrderStateError,
        "needs the arrival"),
    "restore before the arrival": (lambda k, a, b, c: k.restore(a, by="张工", ts_ns=T0 + 20 * MIN),
                                   OrderStateError, "before the arrived stamp"),
    "close before the restore": (lambda k, a, b, c: k.close(b, by="张工"), OrderStateError, "restore"),
    "replace a device of another order": (
        lambda k, a, b, c: k.replace(a, by="张工", device_id="C2", old_serial="1", new_serial="2"),
        WorkOrderError, "not one of this order"),
    "replace with the same serial": (
        lambda k, a, b, c: k.replace(a, by="张工", device_id="C1", old_serial="1", new_serial="1"),
        WorkOrderError, "equals the old"),
    "unknown order": (lambda k, a, b, c: k.arrive("WO-20991231-0001", by="张工"), UnknownOrderError,
                      "no work order"),
    "action on a closed order": (lambda k, a, b, c: k.note(c, "x", by="王"), OrderStateError, "is closed"),
    "acknowledge without who": (lambda k, a, b, c: k.acknowledge(b, by=""), WorkOrderError, "by is missing"),
    "assign to nobody": (lambda k, a, b, c: k.assign(b, " ", by="王"), WorkOrderError, "assignee is missing"),
    "stamp in the future": (lambda k, a, b, c: k.restore(b, by="张工", ts_ns=T0 + 3 * HOUR), WorkOrderError,
                            "in the future"),
    "time not an instant": (lambda k, a, b, c: k.arrive(b, by="张工", ts_ns="10:30"), WorkOrderError,
                            "an integer"),
    "classify nothing": (lambda k, a, b, c: k.classify(b, by="张工"), WorkOrderError, "give a cause"),
    "unknown cause": (lambda k, a, b, c: k.classify(b, by="张工", cause="weather"), WorkOrderError, "weather"),
    "empty note": (lambda k, a, b, c: k.note(b, "  ", by="张工"), WorkOrderError, "note: missing"),
    "proposal for an unknown device": (lambda k, a, b, c: k.propose_replacement("C404", "1", "2"),
                                       WorkOrderError, "unknown device"),
    "proposal on a closed order": (lambda k, a, b, c: k.propose_replacement(c, "1", "2"), OrderStateError,
                                   "is closed"),
    "nothing to confirm": (lambda k, a, b, c: k.confirm_replacement(b, by="张工"), OrderStateError,
                           "no replacement proposal"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(prepared, case):
    book, path, a, b, c = prepared
    call, error, message = BAD[case]
    before, orders = counts(path), book.open_orders()
    with pytest.raises(error, match=message):
        await call(book, a, b, c)
    assert counts(path) == before and book.open_orders() == orders


async def test_the_tables_refuse_update_and_delete(prepared):
    _, path, a, *_ = prepared
    with sqlite3.connect(path) as conn:
        for sql in ("UPDATE workorder_events SET by='x'", "DELETE FROM workorder_events",
                    "UPDATE workorders SET source='manual'", "DELETE FROM workorder_devices"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


# -- faults open and close orders ---------------------------------------------------------------


def down(device="SW1", severity=Severity.MAJOR, rule="down", affected=("C1",)):
    d = INV.devices[device]
    return Condition(rule, "device_down", f"device:{device}", severity, f"{d.name}离线", 60.0, 0.0,
                     device_id=device, site=d.site, region=d.region, affected=tuple(affected))


OPEN_ON = [{"rules": ["down"], "min_severity": "major", "kinds": ["switch", "camera"]}]


async def test_a_firing_fault_opens_an_order_and_its_resolution_closes_it(tmp_path):
    clock = FakeClock(T0 - HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
        book = await load(db, clock, faults, open_on=OPEN_ON, auto_close="close")
        sw, minor, server = down(), down("C2", Severity.MINOR, affected=()), down("SRV1", affected=())
        conditions = {c.key: c for c in (sw, minor, server)}
        await faults.apply(conditions, T0 - MIN)
        assert (await book.tick(T0 - MIN)).opened == ()  # pending: no order yet
        await faults.apply(conditions, T0)
        report = await book.tick(T0)
        (o,) = book.open_orders()
        assert report.opened == (o.ref,) and o.devices == ("SW1", "C1") and o.kind is Kind.SWITCH
        assert (o.source, o.reported_ns, o.fault_start_ns, o.reported_by) == (Source.FAULT, T0, T0 - MIN, "fleetmon")
        assert (await book.tick(T0 + MIN)).opened == ()  # once
        clock.now = T0 + 10 * MIN
        await book.acknowledge(o.ref, by="张工")
        await faults.apply({minor.key: minor, server.key: server}, T0 + 20 * MIN)  # SW1 is back
        report = await book.tick(T0 + 21 * MIN)
        assert report.restored == (o.ref,) and report.closed == (o.ref,) and book.open_orders() == []
        closed = await book.get(o.ref)
        assert (closed.restored_ns, closed.restored_by, closed.auto_restored, closed.resolution) == (
            T0 + 20 * MIN, "fleetmon", True, Resolution.REMOTE)


async def test_propose_mode_records_the_restore_and_waits_for_the_duty_engineer(tmp_path):
    clock = FakeClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
        book = await load(db, clock, faults, open_on=OPEN_ON)  # auto_close: propose (default)
        c = down()
        await faults.apply({c.key: c}, T0 - MIN)
        await faults.apply({c.key: c}, T0)
        await book.tick(T0)
        await faults.apply({}, T0 + 30 * MIN)
        clock.now = T0 + 31 * MIN
        report = await book.tick()
        (o,) = book.open_orders()
        assert report.close_proposed == (o.ref,) and o.close_proposed_ns == T0 + 30 * MIN and o.restored_ns
        assert (await book.tick(T0 + 32 * MIN)).close_proposed == ()  # proposed once
        assert not (await book.close(o.ref, by="张工")).is_open


async def test_an_order_is_opened_after_a_crash_and_never_twice(tmp_path):
    """The fault fired and was stored, the daemon died before its tick: the next start opens the
    order (from the FaultBook's open faults); a restart never opens a second one."""
    clock = FakeClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
        c = down()
        await faults.apply({c.key: c}, T0 - MIN)
        await faults.apply({c.key: c}, T0)
    for _ in range(2):
        async with StateDB(tmp_path / "s.db") as db:
            faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
            book = await load(db, clock, faults, open_on=OPEN_ON)
            await book.tick(T0 + MIN)
            assert [o.source_ref for o in book.open_orders()] == ["F1"]


async def test_faults_in_maintenance_open_no_order_until_the_window_ends(tmp_path):
    t1 = at("2027-03-05 10:00")  # windows already over on the real clock are not loaded
    window = MaintenanceWindowConfig(
        match=SelectorConfig(site=["东关派出所"]), reason="割接",
        start=datetime.fromtimestamp((t1 - HOUR) / S, SH), end=datetime.fromtimestamp((t1 + HOUR) / S, SH))
    clock = FakeClock(t1 - DAY)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, [window]))
        book = await load(db, clock, faults, open_on=OPEN_ON)
        c = down()
        for t in (t1 - MIN, t1):
            await faults.apply({c.key: c}, t)
        assert (await book.tick(t1)).opened == ()
        await faults.apply({c.key: c}, t1 + HOUR + MIN)
        (ref,) = (await book.tick(t1 + HOUR + MIN)).opened
        assert (await book.get(ref)).reported_ns == t1 + HOUR + MIN  # the clock starts after the window


async def test_faults_before_work_orders_were_enabled_start_their_clock_at_enabling(tmp_path):
    clock = FakeClock(T0 + HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
        c = down()
        await faults.apply({c.key: c}, T0 - MIN)
        await faults.apply({c.key: c}, T0)
        book = await load(db, clock, faults, open_on=OPEN_ON)  # first load: enabled now
        (ref,) = (await book.tick()).opened
        assert book.enabled_ns == T0 + HOUR and (await book.get(ref)).reported_ns == T0 + HOUR


# -- replacements -------------------------------------------------------------------------------


async def test_a_changed_onvif_serial_proposes_a_replacement_once_and_the_engineer_confirms(tmp_path):
    clock = FakeClock(T0 + HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        o = await book.report(["C1"], by="王", title="黑屏", ts_ns=T0)
        p = await book.propose_replacement("C1", "SN-OLD", "SN-NEW", new_model="DS-2CD3T47")
        assert p.ref == o.ref and [x.new_serial for x in p.pending_proposals] == ["SN-NEW"]
        assert await book.propose_replacement("C1", "SN-OLD", "SN-NEW") is None  # every cycle: once
        done = await book.confirm_replacement(o.ref, by="张工")
        (r,) = done.replacements
        assert (r.device_id, r.old_serial, r.new_serial, r.new_model, r.by, r.ts_ns) == (
            "C1", "SN-OLD", "SN-NEW", "DS-2CD3T47", "张工", T0 + HOUR)
        assert done.pending_proposals == () and done.on_site
        # No open order for C2: an order of its own, to confirm or cancel.
        q = await book.propose_replacement("C2", "A1", "B2")
        assert q.source is Source.SERIAL_CHANGE and q.reported_by == "fleetmon" and "疑似更换" in q.title
    async with StateDB(tmp_path / "s.db") as db:  # remembered across a restart
        assert await (await load(db, clock)).propose_replacement("C1", "SN-OLD", "SN-NEW") is None


# -- exclusions and breaches --------------------------------------------------------------------


async def test_excluded_causes_give_the_availability_report_merged_device_downtime(tmp_path):
    clock = FakeClock(T0 + 10 * HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        power = await book.report(["C1", "C3"], by="王", title="停电", ts_ns=T0)
        await book.restore(power.ref, by="张工", ts_ns=T0 + 2 * HOUR)
        await book.classify(power.ref, by="张工", cause=Cause.POWER)
        works = await book.report(["C1"], by="王", title="道路施工挖断光缆", ts_ns=T0 + HOUR)
        await book.classify(works.ref, by="张工", cause=Cause.MUNICIPAL)  # still open: until now
        ours = await book.report(["C2"], by="王", title="枪机故障", ts_ns=T0)
        await book.classify(ours.ref, by="张工", cause=Cause.DEVICE)
        got = await book.excluded(T0 - DAY, T0 + DAY)
        assert got == [
            Exclusion("C1", T0, T0 + 10 * HOUR, "cause", f"{power.ref} 电力; {works.ref} 市政"),
            Exclusion("C3", T0, T0 + 2 * HOUR, "cause", f"{power.ref} 电力"),
        ]
        assert await book.excluded(T0 + HOUR, T0 + 90 * MIN) == [
            Exclusion("C1", T0 + HOUR, T0 + 90 * MIN, "cause", f"{power.ref} 电力; {works.ref} 市政"),
            Exclusion("C3", T0 + HOUR, T0 + 90 * MIN, "cause", f"{power.ref} 电力"),
        ]
        assert await book.excluded(T0 + DAY, T0 + 2 * DAY) == []


async def test_breaches_are_counted_per_order_engineer_and_period(tmp_path):
    clock = FakeClock(at("2026-12-06 12:00"))
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        late = await book.report(["C1"], by="王", title="a", ts_ns=at("2026-12-04 10:00"), assignee="张工")
        await book.acknowledge(late.ref, by="张工", ts_ns=at("2026-12-04 10:30"))  # response missed
        await book.restore(late.ref, by="张工", ts_ns=at("2026-12-04 13:00"))  # restore (2 h) missed
        ok = await book.report(["C2"], by="王", title="b", ts_ns=at("2026-12-04 11:00"), assignee="李工")
        await book.acknowledge(ok.ref, by="李工", ts_ns=at("2026-12-04 11:05"))
        await book.restore(ok.ref, by="李工", ts_ns=at("2026-12-04 12:00"))
        open_ = await book.report(["C3"], by="王", title="c", ts_ns=at("2026-12-05 10:00"))  # nobody: all breached
        day1 = await book.breaches(at("2026-12-04 00:00"), at("2026-12-05 00:00"))
        assert day1.total == 2 and day1.by_order == {late.ref: ("response", "restore")}
        assert day1.by_engineer == {"张工": 2}
        day2 = await book.breaches(at("2026-12-05 00:00"), at("2026-12-06 00:00"))
        assert day2.by_order == {open_.ref: ("response", "restore")} and day2.by_engineer == {"-": 2}
        # The replacement clock of the open order (3 days) falls due on the 8th: not yet late.
        assert (await book.breaches(at("2026-12-04 00:00"), at("2026-12-09 00:00"))).by_clock == {
            "response": 2, "restore": 2}


# -- long-offline points ------------------------------------------------------------------------


def tr(device: str, ts: int, old: State, new: State, probe: str = "icmp") -> Transition:
    return Transition(device, probe, ts, old, new, "test")


async def test_points_offline_a_week_are_listed_and_escalated_once_excluded_causes_respected(tmp_path):
    clock = FakeClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        await db.record([
            tr("C1", T0 - 8 * DAY, State.UNKNOWN, State.DOWN),
            tr("C1", T0 - 3 * DAY, State.DOWN, State.UNREACHABLE),  # its switch died later: one run
            tr("C2", T0 - 2 * DAY, State.UP, State.DOWN),  # two days: not yet
            tr("C3", T0 - 9 * DAY, State.UP, State.DOWN),
            tr("C3", T0 - 8 * DAY, State.DOWN, State.UP, "rtsp"),
            tr("C3", T0 - 7 * DAY - HOUR, State.UP, State.DOWN, "rtsp"),
            tr("C9", T0 - 20 * DAY, State.UP, State.DOWN),  # removed point: not counted
        ])
        book = await load(db, clock)
        power = await book.report(["C3"], by="王", title="供电局检修线路", ts_ns=T0 - 9 * DAY + HOUR)
        await book.classify(power.ref, by="张工", cause=Cause.POWER)
        listed = await book.long_offline()
        assert [(x.device_id, round(x.days, 2), x.excluded, x.escalated, x.order_ref) for x in listed] == [
            ("C3", 9.0, True, False, power.ref), ("C1", 8.0, False, False, None)]
        report = await book.tick(T0)
        (ref,) = report.escalated
        assert report.opened == (ref,) and report.notices == 1
        o = await book.get(ref)
        assert (o.source, o.source_ref, o.devices, o.fault_start_ns, o.severity) == (
            Source.LONG_OFFLINE, "C1", ("C1",), T0 - 8 * DAY, Severity.MAJOR)
        assert outbox(tmp_path / "s.db") == [("duty", "sla_breached", ref, "long_offline")]
        assert (await book.tick(T0 + HOUR)).escalated == ()
        assert [x.escalated for x in await book.long_offline()] == [False, True]
        # C1 comes back: its long-offline order is restored at that moment and proposed for closing.
        await db.record([tr("C1", T0 + 2 * HOUR, State.UNREACHABLE, State.UP)])
        clock.now = T0 + 3 * HOUR
        report = await book.tick()
        assert report.close_proposed == (ref,) and (await book.get(ref)).restored_ns == T0 + 2 * HOUR


async def test_an_open_order_of_a_long_offline_point_is_escalated_not_duplicated(tmp_path):
    clock = FakeClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        await db.record([tr("C2", T0 - 10 * DAY, State.UP, State.DOWN)])
        book = await load(db, clock)
        o = await book.report(["C2"], by="王", title="河西桥头无图像", ts_ns=T0 - 10 * DAY)
        report = await book.tick(T0)
        assert report.escalated == (o.ref,) and report.opened == ()
        assert (await book.get(o.ref)).escalated_ns == T0


# -- SLA notices: once each, durable across kill -9 ----------------------------------------------

CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
sys.path.insert(0, os.environ["TESTS_DIR"])
from tests.test_workorders import FakeClock, load
from monitor.state.db import StateDB

async def main(path, now):
    db = StateDB(Path(path))
    await db.__aenter__()
    book = await load(db, FakeClock(now))
    if not book.open_orders() and not os.environ.get("NO_REPORT"):
        await book.report(["C1"], by="王", title="黑屏", ts_ns=int(os.environ["T0"]))
    report = await book.tick(now)
    print(report.notices, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no clean close: whatever tick committed must be whole

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def run_killed(path: Path, now: int) -> int:
    env = {**os.environ, "TESTS_DIR": str(Path(__file__).parents[1]), "T0": str(T0),
           "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(now)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout.strip())


def test_warnings_and_breaches_go_out_once_each_across_kill_9(tmp_path):
    path = tmp_path / "s.db"
    assert run_killed(path, T0 + 11 * MIN) == 0  # 73 % of the 15 min response
    assert run_killed(path, T0 + 12 * MIN) == 1  # 80 %: the warning
    assert run_killed(path, T0 + 13 * MIN) == 0  # not again after kill -9 and a restart
    assert run_killed(path, T0 + 16 * MIN) == 1  # the breach
    assert run_killed(path, T0 + 17 * MIN) == 0
    assert run_killed(path, T0 + 97 * MIN) == 1  # the 2 h restore: warning at 96 min
    assert run_killed(path, T0 + 2 * HOUR + MIN) == 1  # and its breach
    assert run_killed(path, T0 + 3 * HOUR) == 0
    ref = "WO-20261204-0001"
    assert outbox(path) == [("duty", "sla_warning", ref, "response"), ("duty", "sla_breached", ref, "response"),
                            ("duty", "sla_warning", ref, "restore"), ("duty", "sla_breached", ref, "restore")]
    with sqlite3.connect(path) as conn:
        notices = conn.execute("SELECT count(*) FROM workorder_events WHERE action='sla_notice'").fetchone()[0]
    assert notices == 4


async def test_a_clock_found_already_breached_sends_only_the_breach(tmp_path):
    clock = FakeClock(T0 + HOUR)
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        o = await book.report(["C1"], by="王", title="黑屏", ts_ns=T0)
        await book.tick()
        assert outbox(tmp_path / "s.db") == [("duty", "sla_breached", o.ref, "response")]


async def test_unknown_notification_routes_are_refused_at_load(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        with pytest.raises(ValueError, match="no such notify route: pager"):
            await WorkOrderBook.load(db, INV, WorkOrderConfig(routes=["duty", "pager"]), qionglai(),
                                     known_routes={"duty"})


async def test_an_order_with_an_excluded_cause_is_not_assessed(tmp_path):
    clock = FakeClock(T0 + 5 * MIN)
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock)
        o = await book.report(["C1"], by="王", title="停电", ts_ns=T0)
        await book.classify(o.ref, by="张工", cause=Cause.POWER)
        assert (await book.tick(T0 + 3 * HOUR)).notices == 0
        assert (await book.breaches(T0, T0 + DAY, T0 + 3 * HOUR)).total == 0


async def test_orders_feed_the_scores_count_ratios(tmp_path):
    from dataclasses import dataclass

    from monitor.assess import order_ratios

    @dataclass(frozen=True)
    class Period:
        label: str
        start_ns: int
        end_ns: int

    q4 = Period("2026Q4", at("2026-10-01 00:00"), at("2027-01-01 00:00"))
    clock = FakeClock(at("2026-12-10 12:00"))
    sla = Sla.from_config(SlaConfig(preset="qionglai", policies=[{"clocks": {"arrival": {"within": "4h"}}}]),
                          "Asia/Shanghai")
    async with StateDB(tmp_path / "s.db") as db:
        book = await load(db, clock, sla=sla)
        fast = await book.report(["C1"], by="王", title="a", ts_ns=T0)  # on site in 1 h, replaced the next day
        await book.arrive(fast.ref, by="张工", ts_ns=T0 + HOUR)
        await book.replace(fast.ref, by="张工", device_id="C1", old_serial="S1", new_serial="S2", ts_ns=T0 + DAY)
        slow = await book.report(["C2"], by="王", title="b", ts_ns=T0)  # on site after 5 h, replaced after 4 days
        await book.arrive(slow.ref, by="张工", ts_ns=T0 + 5 * HOUR)
        await book.replace(slow.ref, by="张工", device_id="C2", old_serial="S3", new_serial="S4", ts_ns=T0 + 4 * DAY)
        remote = await book.report(["C3"], by="王", title="c", ts_ns=T0)  # fixed remotely: counts in neither
        await book.restore(remote.ref, by="张工", ts_ns=T0 + HOUR)
        dup = await book.report(["C3"], by="王", title="d", ts_ns=T0)
        await book.close(dup.ref, by="王", cancelled=True)
        facts = await book.facts(q4.start_ns, q4.end_ns)
        assert [f.ref for f in facts] == [fast.ref, slow.ref, remote.ref]
        assert facts[0].arrival_due_ns == T0 + 4 * HOUR and facts[2].arrival_due_ns is None
        replaced = order_ratios.camera_replacement_timely_pct(facts, q4, clock.now)
        arrived = order_ratios.arrival_timely_pct(facts, q4, clock.now)
        assert (replaced.value, replaced.numerator, replaced.denominator) == (50.0, 1, 2)
        assert (arrived.value, arrived.numerator, arrived.denominator) == (50.0, 1, 2)
