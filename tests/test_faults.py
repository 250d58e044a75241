"""Fault lifecycle against a real SQLite state database: pending → firing → resolved, one
notification each per route, nothing lost or repeated across a restart, maintenance,
reminders, escalation, acknowledgement."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from monitor.core.config_base import SelectorConfig
from monitor.fleet.inventory import Inventory
from monitor.core.model import Kind
from monitor.state.db import StateDB
from rules.alerting.config import MaintenanceWindowConfig
from rules.base import Condition
from rules.alerting.faults import FaultBook, FaultStateError
from rules.alerting.maintenance import MaintenanceBook
from rules.model import FaultState, Severity
from rules.alerting.notifiers.base import RouteConfigBase
from tests.plugins.factories import device

S = 1_000_000_000
T0 = 1_800_000_000 * S  # 2027-01-15, fixed: the lifecycle is driven by the times given to apply()

INV = Inventory(
    [
        device("SW1", Kind.SWITCH, name="一号交换机", site="S1", region="城关镇"),
        device("C1", name="一号摄像机", site="S1", region="城关镇", parent="SW1"),
        device("C2", name="二号摄像机", site="S2", region="河西乡"),
    ]
)
ROUTES = [
    RouteConfigBase(name="duty"),
    RouteConfigBase(name="boss", min_severity=Severity.MAJOR),
    RouteConfigBase(name="hexi", match=SelectorConfig(region=["河西乡"])),
]


def down(device="SW1", severity=Severity.MAJOR, for_s=60.0, clear_for_s=0.0, since=None):
    return Condition(
        "down", "device_down", f"device:{device}", severity, f"{device}离线", for_s, clear_for_s, since_ns=since,
        device_id=device, site=INV.devices[device].site, region=INV.devices[device].region,
    )


def outbox(path) -> list[tuple[str, str, str]]:
    rows = sqlite3.connect(path).execute("SELECT route, event FROM outbox ORDER BY id").fetchall()
    return [(route, json.loads(e)["event"], json.loads(e)["fault"]["id"]) for route, e in rows]


async def book(db, routes=ROUTES, windows=()):
    maintenance = await MaintenanceBook.load(db, INV, list(windows))
    return await FaultBook.load(db, INV, routes, maintenance)


async def test_pending_fires_after_for_s_and_resolves_with_one_notice_per_route(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db)
        c = down()
        await faults.apply({c.key: c}, T0)
        (f,) = faults.open_faults()
        assert f.state is FaultState.PENDING and outbox(tmp_path / "s.db") == []
        await faults.apply({c.key: c}, T0 + 59 * S)
        assert faults.open_faults()[0].state is FaultState.PENDING
        await faults.apply({c.key: c}, T0 + 60 * S)
        assert faults.open_faults()[0].state is FaultState.FIRING
        # SW1 is major in 城关镇: the duty and boss routes, not the 河西乡 one.
        assert outbox(tmp_path / "s.db") == [("duty", "firing", f.id), ("boss", "firing", f.id)]
        await faults.apply({c.key: c}, T0 + 90 * S)  # still firing: nothing new
        await faults.apply({}, T0 + 120 * S)
        assert faults.open_faults() == []
        assert outbox(tmp_path / "s.db")[2:] == [("duty", "resolved", f.id), ("boss", "resolved", f.id)]
        (stored,) = await faults.faults(FaultState.RESOLVED)
        assert stored.resolved_ns == T0 + 120 * S and stored.fired_ns == T0 + 60 * S


async def test_a_condition_that_goes_away_while_pending_is_dropped_silently(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db)
        c = down()
        await faults.apply({c.key: c}, T0)
        await faults.apply({}, T0 + 30 * S)
        assert faults.open_faults() == [] and await faults.faults() == []
    assert outbox(tmp_path / "s.db") == []


async def test_since_ns_counts_towards_for_s_and_clear_for_s_delays_resolution(tmp_path):
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db)
        c = down(since=T0 - 100 * S, clear_for_s=60)
        await faults.apply({c.key: c}, T0)  # down for 100 s already: fires at once
        assert faults.open_faults()[0].state is FaultState.FIRING
        await faults.apply({}, T0 + 10 * S)
        await faults.apply({}, T0 + 50 * S)
        assert faults.open_faults()[0].state is FaultState.FIRING
        await faults.apply({c.key: c}, T0 + 60 * S)  # back before clear_for_s: the clock restarts
        await faults.apply({}, T0 + 70 * S)
        await faults.apply({}, T0 + 129 * S)
        assert faults.open_faults()
        await faults.apply({}, T0 + 130 * S)
        assert faults.open_faults() == []


async def test_restart_resumes_open_faults_without_repeating_or_losing_notices(tmp_path):
    path = tmp_path / "s.db"
    c = down(since=T0 - 100 * S)
    async with StateDB(path) as db:
        faults = await book(db)
        await faults.apply({c.key: c}, T0)
        fault_id = faults.open_faults()[0].id
    async with StateDB(path) as db:  # a new daemon: same database
        faults = await book(db)
        assert [f.id for f in faults.open_faults()] == [fault_id]
        await faults.apply({c.key: c}, T0 + 30 * S)
        assert [e for _, e, _ in outbox(path)] == ["firing", "firing"]  # not repeated
        await faults.apply({}, T0 + 60 * S)
        other = down("C2", Severity.MINOR, for_s=0)
        await faults.apply({other.key: other}, T0 + 61 * S)
        new_id = faults.open_faults()[0].id
    assert [e for _, e, _ in outbox(path)] == ["firing", "firing", "resolved", "resolved", "firing", "firing"]
    assert new_id != fault_id  # ids keep counting after a restart


async def test_nothing_is_notified_inside_maintenance_and_a_fault_outliving_it_is(tmp_path):
    start = datetime.fromtimestamp(T0 / S, timezone.utc)
    window = MaintenanceWindowConfig(
        match=SelectorConfig(region=["城关镇"]), start=start, end=start + timedelta(minutes=10), reason="割接"
    )
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db, windows=[window])
        a, b = down("SW1", for_s=0), down("C1", Severity.MINOR, for_s=0)
        await faults.apply({a.key: a, b.key: b}, T0 + 60 * S)
        assert all(f.in_maintenance for f in faults.open_faults()) and outbox(tmp_path / "s.db") == []
        await faults.apply({a.key: a}, T0 + 120 * S)  # C1 resolves inside: never notified, no resolution
        await faults.apply({a.key: a}, T0 + 601 * S)  # the window is over, SW1 still down
        assert [(r, e) for r, e, _ in outbox(tmp_path / "s.db")] == [("duty", "firing"), ("boss", "firing")]
    windows = sqlite3.connect(tmp_path / "s.db").execute("SELECT reason, source FROM maintenance").fetchall()
    assert windows == [("割接", "config")]  # kept for reports


async def test_reminders_until_acknowledged_and_escalation(tmp_path):
    routes = [
        RouteConfigBase(name="duty", remind_every_s=600, escalate_after_s=1800, escalate_to="boss"),
        RouteConfigBase(name="boss", match=SelectorConfig(region=["nowhere"])),
    ]
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db, routes)
        c = down(for_s=0)
        for t in (0, 300, 600, 1200, 1800):
            await faults.apply({c.key: c}, T0 + t * S)
        events = [(r, e) for r, e, _ in outbox(tmp_path / "s.db")]
        assert events == [
            ("duty", "firing"), ("duty", "reminder"), ("duty", "reminder"), ("duty", "reminder"), ("boss", "escalated"),
        ]
        fault = await faults.ack(faults.open_faults()[0].id, "张工")
        assert fault.acked_by == "张工" and fault.acked_ns is not None
        await faults.apply({c.key: c}, T0 + 3000 * S)  # acknowledged: no more reminders
        await faults.apply({}, T0 + 3100 * S)
        tail = [(r, e) for r, e, _ in outbox(tmp_path / "s.db")][5:]
        assert tail == [("duty", "acknowledged"), ("boss", "acknowledged"), ("duty", "resolved"), ("boss", "resolved")]
        with pytest.raises(FaultStateError):
            await faults.ack(fault.id, "李工")
        with pytest.raises(KeyError):
            await faults.ack("F999", "李工")
    history = sqlite3.connect(tmp_path / "s.db").execute("SELECT event, by FROM fault_events ORDER BY id").fetchall()
    assert history == [("firing", None), ("acknowledged", "张工"), ("resolved", None)]


async def test_quiet_hours_hold_back_all_but_critical_faults_until_they_end(tmp_path):
    """An SMS route quiet 22:00–07:00 Beijing time for all but critical faults: a major fault
    firing at 23:00 goes to the duty group at once and to SMS at 07:00 if still open; a critical
    one goes to both at once; one resolved before 07:00 never reaches SMS (nor its resolution)."""
    from rules.alerting.notifiers.base import QuietHours

    sms = RouteConfigBase(name="sms", quiet_hours=QuietHours(start="22:00", end="07:00"))
    night = int(datetime(2027, 1, 15, 15, 0, tzinfo=timezone.utc).timestamp()) * S  # 23:00 in Beijing
    async with StateDB(tmp_path / "s.db") as db:
        faults = await book(db, routes=[RouteConfigBase(name="duty"), sms])
        major, crit, brief = down("SW1", for_s=0), down("C1", Severity.CRITICAL, for_s=0), down("C2", for_s=0)
        await faults.apply({major.key: major, crit.key: crit, brief.key: brief}, night)
        fired = {(r, fid) for r, e, fid in outbox(tmp_path / "s.db") if e == "firing"}
        ids = {f.device_id: f.id for f in faults.open_faults()}
        assert fired == {("duty", ids["SW1"]), ("duty", ids["C1"]), ("duty", ids["C2"]), ("sms", ids["C1"])}
        await faults.apply({major.key: major, crit.key: crit}, night + 3600 * S)  # C2 resolves at midnight
        await faults.apply({major.key: major, crit.key: crit}, night + (8 * 3600 - 1) * S)  # 06:59:59
        assert ("sms", "firing", ids["SW1"]) not in outbox(tmp_path / "s.db")
        await faults.apply({major.key: major, crit.key: crit}, night + 8 * 3600 * S)  # 07:00
        events = outbox(tmp_path / "s.db")
    assert ("sms", "firing", ids["SW1"]) in events
    assert [e for e in events if e[0] == "sms" and e[2] == ids["C2"]] == []  # never told, so no resolution


def test_quiet_hours_refuse_nonsense():
    from pydantic import ValidationError

    from rules.alerting.notifiers.base import QuietHours

    for bad, says in [({"start": "22:00", "end": "22:00"}, "need a length"),
                      ({"start": "22:00", "end": "07:00", "timezone": "Asia"}, "time zone"),
                      ({"start": "22:00", "end": "07:00", "weekdays": [8]}, "less than or equal to 7"),
                      ({"start": "25:00", "end": "07:00"}, "time")]:
        with pytest.raises(ValidationError, match=says):
            QuietHours.model_validate(bad)
