"""Clock steps (issue 13, "Nothing lost, nothing false"): durations run on the monotonic clock,
stamps on the wall clock. A wall clock stepped an hour forward or back neither fires a pending
fault early nor holds it an hour: rule for_s and clear_for_s, the flapping window, reminders,
escalation and the SLA countdowns of work orders, each with a clock driven by hand
(lab/faults_clock.py SteppedClock), across a restart too; and the real daemon under
libfaketime, its wall clock stepped ±1 h while a rule's for_s runs."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from lab.faults_clock import SteppedClock, hold_across_step
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import ClockState, Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.config_base import SelectorConfig
from monitor.core.model import Kind
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State, Transition
from rules.alerting.config import NotifyConfig
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.alerting.notifiers.base import RouteConfigBase
from rules.alerting.service import Alerting
from rules.base import Condition, View
from rules.config import FlappingConfig
from rules.engine import RulesEngine
from rules.families.device import DeviceDownRule
from rules.model import FaultState, Severity
from tests.plugins.factories import device

S = 1_000_000_000
T0 = 1_800_000_000 * S
HOUR = 3600
STEPS = pytest.mark.parametrize("step_s", [HOUR, -HOUR], ids=["+1h", "-1h"])

INV = Inventory([
    device("SW1", Kind.SWITCH, name="一号交换机", site="S1", region="城关镇"),
    device("C1", name="一号摄像机", site="S1", region="城关镇", parent="SW1"),
    device("C2", name="二号摄像机", site="S2", region="城关镇"),
])


def down(for_s: float = 120.0, clear_for_s: float = 0.0, since: int | None = None) -> Condition:
    return Condition("down", "device_down", "device:SW1", Severity.MAJOR, "SW1离线", for_s, clear_for_s,
                     since_ns=since, device_id="SW1", site="S1", region="城关镇")


async def fault_book(db, routes=(RouteConfigBase(name="duty"),)) -> FaultBook:
    return await FaultBook.load(db, INV, list(routes), await MaintenanceBook.load(db, INV, []))


async def apply(faults: FaultBook, conditions: list[Condition], clock: SteppedClock) -> FaultState | None:
    """One evaluation at the clock's now; the state of the (only) open fault after it."""
    await faults.apply({c.key: c for c in conditions}, clock.wall_ns(), clock.mono_ns())
    open_faults = faults.open_faults()
    return open_faults[0].state if open_faults else None


# -- the fault lifecycle ----------------------------------------------------------------------


@STEPS
async def test_for_s_holds_exactly_across_a_step(tmp_path, step_s):
    clock = SteppedClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db)
        c = down(for_s=120)
        assert await apply(faults, [c], clock) is FaultState.PENDING
        clock.advance(60)
        clock.step(step_s)
        assert await apply(faults, [c], clock) is FaultState.PENDING  # +1 h: not fired at once
        clock.advance(59.9)
        assert await apply(faults, [c], clock) is FaultState.PENDING
        clock.advance(0.1)
        assert await apply(faults, [c], clock) is FaultState.FIRING  # −1 h: not held an hour
        (f,) = faults.open_faults()
        # The stamps people read stay on the wall clock, step and all.
        assert (f.first_seen_ns, f.fired_ns) == (T0, T0 + (120 + step_s) * S)


@STEPS
async def test_for_s_counts_from_the_conditions_start_across_a_step(tmp_path, step_s):
    """A device down since 30 s before the fault was made (Condition.since_ns)."""
    clock = SteppedClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db)
        c = down(for_s=120, since=T0 - 30 * S)
        assert await apply(faults, [c], clock) is FaultState.PENDING
        clock.step(step_s)
        clock.advance(89.9)
        assert await apply(faults, [c], clock) is FaultState.PENDING
        clock.advance(0.1)
        assert await apply(faults, [c], clock) is FaultState.FIRING
        assert faults.open_faults()[0].first_seen_ns == T0 - 30 * S


@STEPS
async def test_clear_for_s_holds_exactly_across_a_step(tmp_path, step_s):
    clock = SteppedClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db)
        c = down(for_s=0, clear_for_s=300)
        assert await apply(faults, [c], clock) is FaultState.FIRING
        clock.advance(10)
        assert await apply(faults, [], clock) is FaultState.FIRING  # gone: the clear hold starts
        clock.advance(100)
        clock.step(step_s)
        assert await apply(faults, [], clock) is FaultState.FIRING
        clock.advance(199.9)
        assert await apply(faults, [], clock) is FaultState.FIRING
        clock.advance(0.1)
        assert await apply(faults, [], clock) is None
        (f,) = await faults.faults(FaultState.RESOLVED)
        assert f.resolved_ns == T0 + (310 + step_s) * S


@STEPS
async def test_reminders_and_escalation_keep_their_intervals_across_a_step(tmp_path, step_s):
    routes = [
        RouteConfigBase(name="duty", remind_every_s=600, escalate_after_s=1800, escalate_to="boss"),
        RouteConfigBase(name="boss", match=SelectorConfig(region=["nowhere"])),
    ]
    clock = SteppedClock(T0)
    sent: list[tuple[int, str, str]] = []  # (seconds since it fired, route, event)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db, routes)
        c = down(for_s=0)
        for t in range(0, 2001, 50):
            if t == 250:
                clock.step(step_s)
            before = len(outbox(tmp_path / "s.db"))
            await apply(faults, [c], clock)
            sent += [(t, route, event) for route, event in outbox(tmp_path / "s.db")[before:]]
            clock.advance(50)
    assert sent == [(0, "duty", "firing"), (600, "duty", "reminder"), (1200, "duty", "reminder"),
                    (1800, "duty", "reminder"), (1800, "boss", "escalated")]


@STEPS
async def test_a_restart_counts_the_time_before_it_on_the_wall_and_after_it_on_the_monotonic_clock(tmp_path, step_s):
    """Pending for 60 s, restarted (after a reboot: the monotonic clock has another origin), the
    wall clock stepped after the restart: it fires 120 s after it began all the same."""
    clock = SteppedClock(T0)
    async with StateDB(tmp_path / "s.db") as db:
        c = down(for_s=120)
        assert await apply(await fault_book(db), [c], clock) is FaultState.PENDING
    clock.advance(60)
    rebooted = SteppedClock(clock.wall_ns(), mono_ns=7 * S)
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db)
        assert await apply(faults, [c], rebooted) is FaultState.PENDING
        rebooted.step(step_s)
        rebooted.advance(59.9)
        assert await apply(faults, [c], rebooted) is FaultState.PENDING
        rebooted.advance(0.1)
        assert await apply(faults, [c], rebooted) is FaultState.FIRING
        assert faults.open_faults()[0].first_seen_ns == T0


def outbox(path) -> list[tuple[str, str]]:
    rows = sqlite3.connect(path).execute("SELECT route, event FROM outbox ORDER BY id").fetchall()
    return [(route, json.loads(e)["event"]) for route, e in rows]


@STEPS
async def test_alerting_reads_both_clocks_of_its_clock(tmp_path, step_s):
    """The component as the daemon runs it: views in, the FaultBook advanced on its own task."""
    clock = SteppedClock(T0)
    states = {d: State.UP for d in INV.devices} | {"C2": State.DOWN}
    rates = online_rates(INV.devices.values(), states)

    async def cycle(alerting: Alerting) -> FaultState:
        alerting.cycle(View(clock.wall_ns(), states, {"C2": T0}, rates, mono_ns=clock.mono_ns()))
        for _ in range(500):  # until its task has applied this view
            faults = alerting.faults.open_faults()
            if faults and faults[0].last_seen_ns == clock.wall_ns():
                return faults[0].state
            await asyncio.sleep(0.01)
        raise AssertionError("the view was not applied within 5 s")

    async with StateDB(tmp_path / "s.db") as db, Alerting(
        INV, db, rules=[DeviceDownRule(name="down", for_s=120)], flapping=FlappingConfig(), maintenance=[],
        notify=NotifyConfig(), language="zh", timezone="Asia/Shanghai", clock=clock,
    ) as alerting:
        assert await cycle(alerting) is FaultState.PENDING
        clock.advance(60)
        clock.step(step_s)
        assert await cycle(alerting) is FaultState.PENDING
        clock.advance(59.9)
        assert await cycle(alerting) is FaultState.PENDING
        clock.advance(0.1)
        assert await cycle(alerting) is FaultState.FIRING


# -- the engine: flap damping -------------------------------------------------------------------


@STEPS
def test_the_flapping_window_is_measured_on_the_monotonic_clock(step_s):
    e = RulesEngine(INV, [DeviceDownRule(name="down")], FlappingConfig(window_s=600, max_changes=4))
    clock = SteppedClock(T0)

    def flapping() -> bool:
        states = {d: State.UP for d in INV.devices}
        view = View(clock.wall_ns(), states, {}, online_rates(INV.devices.values(), states), mono_ns=clock.mono_ns())
        return ("flapping", "device:C2") in e.evaluate(view, {("flapping", "device:C2")})

    for k in range(4):
        old, new = (State.UP, State.DOWN) if k % 2 == 0 else (State.DOWN, State.UP)
        e.observe_transition(Transition("C2", "icmp", clock.wall_ns(), old, new, None), clock.mono_ns())
        clock.advance(10)
    assert flapping()
    clock.advance(300)  # the last change 310 s ago
    clock.step(step_s)
    assert flapping()  # +1 h: not forgotten at once
    clock.advance(289)  # 599 s: still inside the 600 s window
    assert flapping()
    clock.advance(2)  # 601 s after the last change
    assert not flapping()  # −1 h: not held an hour


# -- work orders: SLA countdowns ------------------------------------------------------------------


@STEPS
async def test_sla_countdowns_run_on_the_monotonic_clock(tmp_path, step_s):
    """Qionglai: respond within 15 min; the warning at 80 % (12 min), the breach after 15 min."""
    clock = SteppedClock(T0)
    sla = Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai")
    async with StateDB(tmp_path / "s.db") as db:
        book = await WorkOrderBook.load(db, INV, WorkOrderConfig(routes=["duty"]), sla, clock=clock.wall_ns,
                                        mono=clock.mono_ns)
        o = await book.report(["C1"], by="王", title="黑屏")
        clock.advance(10 * 60)
        clock.step(step_s)
        assert (await book.tick()).notices == 0  # 67 %: nothing (+1 h would be a breach)
        response = book.countdown(o)[0]
        assert (response.label, response.state, response.remaining_s) == ("响应", ClockState.OK, 300.0)
        clock.advance(2 * 60 - 1)
        assert (await book.tick()).notices == 0
        clock.advance(1)
        assert (await book.tick()).notices == 1  # the warning, at 12 min
        clock.advance(3 * 60)
        assert (await book.tick()).notices == 0
        clock.advance(1)
        assert (await book.tick()).notices == 1  # the breach, 15 min after the report (not an hour off)
        assert book.countdown(o)[0].state is ClockState.BREACHED
        # Restarted (reloaded from the database): the countdown goes on from the stored report,
        # its age before the restart read on the wall clock (the step included, a step back
        # beyond the report counting as none), after it on the monotonic clock.
        again = await WorkOrderBook.load(db, INV, WorkOrderConfig(routes=["duty"]), sla, clock=clock.wall_ns,
                                         mono=clock.mono_ns)
        assert again.countdown(o)[0].remaining_s == 900 - max(0, 901 + step_s)
        clock.advance(60)
        assert again.countdown(o)[0].remaining_s == 900 - max(0, 901 + step_s) - 60


async def test_after_a_step_back_fleetmons_own_stamps_keep_the_orders_valid(tmp_path):
    """The wall clock stepped back an hour after two orders opened: the fault of one resolving
    still restores and closes it, the other's response breach is still recorded and sent, each
    stamped not before the order's own stamps. Before: the close was refused as "before the
    report" (logged as a bug) for an hour, and the breach failed the whole tick."""
    clock = SteppedClock(T0)
    sla = Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai")
    async with StateDB(tmp_path / "s.db") as db:
        faults = await fault_book(db, routes=())
        book = await WorkOrderBook.load(
            db, INV, WorkOrderConfig(routes=["duty"], auto_close="close",
                                     open_on=[{"rules": ["down"], "min_severity": "major"}]),
            sla, faults=faults, clock=clock.wall_ns, mono=clock.mono_ns)
        manual = await book.report(["C2"], by="王", title="黑屏")
        c = down(for_s=0)
        await apply(faults, [c], clock)
        (opened,) = (await book.tick()).opened
        clock.advance(20 * 60)
        clock.step(-HOUR)
        await apply(faults, [], clock)  # SW1 is back: resolved at the (stepped) wall clock
        report = await book.tick()
        assert report.closed == (opened,) and report.notices == 1  # the manual order's breach
        closed = await book.get(opened)
        assert closed.restored_ns == closed.closed_ns == T0  # its report, not 40 min before it
        assert ("response", "breached") in (await book.get(manual.ref)).notices


def test_a_running_sla_clock_counts_the_monotonic_time_since_the_report():
    sla = Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai")
    from monitor.assess.orders import Action, OrderEvent, fold

    order = fold([OrderEvent(1, "WO-1", Action.OPENED, T0, T0, "王", {
        "devices": ["C1"], "kind": "camera", "severity": "major", "source": "manual", "source_ref": None,
        "title": "黑屏", "fault_start_ns": None, "assignee": None})])
    wall = sla.evaluate(order, T0 + HOUR * S)[0]  # the wall clock says an hour passed
    steady = sla.evaluate(order, T0 + HOUR * S, elapsed_ns=5 * 60 * S)[0]  # five minutes did
    assert wall.state is ClockState.BREACHED and wall.remaining_s == -45 * 60
    assert steady.state is ClockState.OK and steady.remaining_s == 10 * 60 and steady.used_s == 300


# -- the real daemon under libfaketime ------------------------------------------------------------


@pytest.mark.peer
@STEPS
def test_the_daemon_fires_for_s_after_the_condition_began_when_its_clock_steps(tmp_path, step_s):
    """Needs libfaketime (Makefile APT_PKGS: faketime, libfaketime); fails loudly without it."""
    run = hold_across_step(tmp_path, step_s, for_s=7.0, cycle_s=2.0, step_after_s=3.0)
    assert run.hold_s is not None, f"no firing within {run.waited_s} s (held by the step)"
    # The daemon's own stamps (first seen → fired) show the step reached it; less the step
    # (libfaketime's offset is exact) they are its hold time: for_s, late by at most a cycle
    # (evaluations come at the ends of cycles, 2 s apart: with for_s 7 s the one that fires is
    # about 1 s past the hold, not on its edge), and 0.5 s for a loaded machine.
    assert run.wall_hold_s is not None
    assert run.for_s <= run.wall_hold_s - step_s <= run.for_s + run.cycle_s + 0.5, run
    # The same from outside, on this process's monotonic clock (its polling of the state DB
    # adds its own delays): neither early nor an hour late.
    assert -0.2 <= run.error_s <= run.cycle_s + 2.0, run
