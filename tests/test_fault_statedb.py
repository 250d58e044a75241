"""Fault injection: the disk under the state database fills up (a small tmpfs filled with a
file, lab/faults_statedb.py) and is cleared again.

End to end (a real daemon child, real ICMP lab fleet, the WeCom simulator): disk full for a
compressed minute while faults fire and clear. Nothing lost, nothing false: every transition and
every firing notice is there after the space returns, no resolution arrives without its firing,
/healthz says 503 with the cause meanwhile and 200 after, the failure and its recovery reach the
group once each, and SIGTERM while writes fail exits 0 without a traceback.

Component by component on the same tmpfs: the Recorder, the FaultBook and the direct notices."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

import pytest

from lab.faults_statedb import fill, run_scenario, small_tmpfs
from lab.wecom import WeComSimulator
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook, WorkOrderService
from monitor.core.model import Kind
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
import monitor.state.recorder as recorder_module
from monitor.state.recorder import Recorder
from monitor.state.tracker import State, Transition
from monitor.state.writes import Backoff, WriteFailure
from rules.alerting.direct import DirectNotices
from rules.alerting.duty import DutyRoster
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.alerting import outbox
from rules.alerting.notifiers.base import RouteConfigBase
from rules.alerting.outbox import OutboxWorker
from rules.alerting.notifiers.wecom import WeComConfig, WeComRoute
from rules.base import Condition
from rules.model import EventKind, Severity
from tests.plugins.daemon import until
from tests.plugins.factories import device, fault

pytestmark = pytest.mark.root
S = 1_000_000_000
T0 = 1_800_000_000 * S


async def test_disk_full_loses_nothing_and_says_so(tmp_path, _lab_stale_cleaned):
    out = await run_scenario(tmp_path, hold_s=3.0)
    assert out.transitions_lost == 0, (out.missing, out.log[-4000:])
    assert out.firing_lost == 0 and out.resolved_without_firing == 0, out.notices
    assert 503 in out.health_during and any("SQLITE_FULL" in c for c in out.causes), (out.health_during, out.causes)
    assert out.health_after == 200 and out.recover_s is not None
    # The failure and its recovery reach the group once each (straight through the route).
    failing = [n for n in out.notices if "状态库写入失败" in n]
    assert len(failing) == 2 and "已恢复" not in failing[0] and "已恢复" in failing[1], out.notices
    assert "database or disk is full" in failing[0]
    # The log says what failed, never "a bug"; no traceback anywhere.
    assert "状态库写入失败: database or disk is full" in out.log
    assert "(a bug)" not in out.log and "Traceback" not in out.log, out.log[-4000:]
    assert out.exit_code == 0, out.log[-4000:]


def transition(n: int) -> Transition:
    old, new = (State.UP, State.DOWN) if n % 2 else (State.DOWN, State.UP)
    return Transition("CAM-1", "icmp", T0 + n * S, old, new, f"reason {n}")


def stored_count(path) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM transitions").fetchone()[0]
    finally:
        conn.close()


async def test_recorder_keeps_transitions_in_order_while_full_and_stores_them_after(tmp_path):
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with StateDB(disk / "state.db") as db:
            seen: list[WriteFailure | None] = []
            db.health.listeners.append(seen.append)
            await db.start_session(1)
            async with Recorder(db, Backoff(0.02, 0.1)) as recorder:
                recorder.store([transition(1)])
                await until(lambda: stored_count(disk / "state.db") == 1, 5, "the first store")
                filler = fill(disk)
                for n in range(2, 40):
                    recorder.store([transition(n)])
                    recorder.cycle("icmp", T0 + n * S, T0 + n * S + 1, 2 * S)
                await until(lambda: db.health.failure, 5, "the failure")
                assert "SQLITE_FULL" in db.health.failure.cause and recorder.backlog > 0
                await asyncio.sleep(0.3)  # retries while full change nothing
                filler.unlink()
                await until(lambda: db.health.failure is None and recorder.backlog == 0, 5, "the recovery")
            stored = await db.transitions()
            assert stored == [transition(n) for n in range(1, 40)]
            assert [type(x) for x in seen] == [WriteFailure, type(None)]  # told once each


async def test_recorder_stopping_while_full_does_not_raise_and_says_what_was_lost(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="fleetmon")
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with StateDB(disk / "state.db") as db:
            await db.start_session(1)
            filler = fill(disk)
            async with Recorder(db, Backoff(10.0, 10.0)) as recorder:  # the stop cuts a long backoff short
                recorder.store([transition(1), transition(2)])
                await until(lambda: db.health.failure, 5, "the failure")
                started = time.monotonic()
            assert time.monotonic() - started < 5
            filler.unlink()
    assert "stopping with 2 transitions" in caplog.text and "database or disk is full" in caplog.text


INV = Inventory([device("SW1", Kind.SWITCH, name="一号交换机", site="S1", region="城关镇")])


def down() -> Condition:
    return Condition("down", "device_down", "device:SW1", Severity.MAJOR, "SW1离线", 0.0, 0.0,
                     device_id="SW1", site="S1", region="城关镇")


async def test_fault_book_stores_firing_before_resolved_once_the_disk_has_room(tmp_path):
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with StateDB(disk / "state.db") as db:
            book = await FaultBook.load(db, INV, [RouteConfigBase(name="duty")], await MaintenanceBook.load(db, INV, []))
            events: list[tuple[str, EventKind]] = []
            book.listeners.append(lambda f, kind, ts: events.append((f.id, kind)))
            filler = fill(disk)
            c = down()
            assert await book.apply({c.key: c}, T0) == 0  # fires in memory, not stored
            assert await book.apply({}, T0 + S) == 0  # resolves in memory, not stored
            assert book.unstored == 2 and events == [] and db.health.failure is not None
            filler.unlink()
            assert await book.apply({}, T0 + 2 * S) == 2  # both stored now, in order
            assert book.unstored == 0 and db.health.failure is None
            assert events == [("F1", EventKind.FIRING), ("F1", EventKind.RESOLVED)]
            rows = await db.execute(lambda conn: conn.execute("SELECT event FROM outbox ORDER BY id").fetchall())
            assert [json.loads(r[0])["event"] for r in rows] == ["firing", "resolved"]
            stored = await db.execute(lambda conn: conn.execute("SELECT event, ts_ns FROM fault_events").fetchall())
            assert stored == [("firing", T0), ("resolved", T0 + S)]  # the times they happened


@pytest.mark.parametrize("language,words", [("zh", ("状态库写入失败", "已恢复")), ("en", ("state database writes failing", "RESOLVED"))])
async def test_direct_notices_reach_the_group_once_each_in_its_language(monkeypatch, language, words):
    monkeypatch.setenv("FLEETMON_TEST_STATEDB_KEY", "k")
    async with WeComSimulator() as sim:
        key = sim.add_robot("k")
        cfg = WeComConfig(name="duty", type="wecom", url=sim.url, key_env="FLEETMON_TEST_STATEDB_KEY",
                          language=language, msgtype="text")
        async with WeComRoute(cfg, DutyRoster([])) as route:
            notices = DirectNotices({"duty": route}, {"duty": language})
            failure = WriteFailure("database or disk is full (SQLITE_FULL, ENOSPC)", time.time_ns(), ("recorder",))
            notices.statedb(failure)
            notices.statedb(None)
            notices.statedb(None)  # no second recovery without a failure
            await notices.close()
        texts = [m.content for m in sim.messages(key)]
    assert len(texts) == 2 and all(words[0] in t and "SQLITE_FULL" in t for t in texts), texts
    assert words[1] not in texts[0] and words[1] in texts[1]


async def test_work_orders_wait_for_room_without_a_traceback_and_open_after(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon")
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with StateDB(disk / "state.db") as db:
            faults = await FaultBook.load(db, INV, [], await MaintenanceBook.load(db, INV, []))
            c = down()
            await faults.apply({c.key: c}, T0)  # fires (for_s 0), stored
            book = await WorkOrderBook.load(
                db, INV, WorkOrderConfig.model_validate({"open_on": [{"rules": ["down"]}]}),
                Sla.from_config(SlaConfig(preset="qionglai"), "Asia/Shanghai"), faults=faults, clock=lambda: T0 + S,
            )
            filler = fill(disk)
            async with WorkOrderService(book):
                await until(lambda: db.health.failure, 5, "the failure")
                assert book.open_orders() == []
                filler.unlink()
                await until(lambda: book.open_orders(), 5, "the order after the space returned")
                assert db.health.failure is None
    assert "work-order tick failed" not in caplog.text and "Traceback" not in caplog.text


async def test_outbox_sends_nothing_twice_when_the_full_disk_refuses_its_delivery_records(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETMON_TEST_STATEDB_KEY", "k")
    async with WeComSimulator() as sim:
        key = sim.add_robot("k")
        cfg = WeComConfig(name="duty", type="wecom", url=sim.url, key_env="FLEETMON_TEST_STATEDB_KEY", msgtype="text")
        with small_tmpfs(tmp_path / "disk", "1m") as disk:
            async with StateDB(disk / "state.db") as db, WeComRoute(cfg, DutyRoster([])) as route:
                await db.migrate(outbox.SCHEMA)
                async with OutboxWorker(db, {"duty": route}, backoff_initial_s=0.05, backoff_max_s=0.2,
                                        poll_s=0.1) as worker:
                    for n in (1, 2, 3):
                        await db.execute(lambda conn, n=n: outbox.enqueue(conn, "duty", EventKind.FIRING, T0, fault(n)))
                    filler = fill(disk)
                    worker.wake()
                    await until(lambda: db.health.failure, 5, "the refused delivery record")
                    sent = [m.content for m in sim.messages(key)]
                    await asyncio.sleep(1.0)  # retries while full: nothing sent again
                    assert [m.content for m in sim.messages(key)] == sent
                    filler.unlink()
                    await until(lambda: db.health.failure is None, 5, "the recovery")
                    # The writes recovering is not the queue emptied: the worker may still be in its
                    # backoff before the last message (seen under a loaded machine).
                    for _ in range(50):
                        if await worker.pending() == 0:
                            break
                        await asyncio.sleep(0.1)
                    assert await worker.pending() == 0
                    await asyncio.sleep(0.5)
        text = "\n".join(m.content for m in sim.messages(key))
    assert [text.count(f"F{n}") for n in (1, 2, 3)] == [1, 1, 1], text


async def test_recorder_past_its_bound_drops_the_oldest_and_counts_them(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(recorder_module, "MAX_BACKLOG", 5)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with StateDB(disk / "state.db") as db:
            await db.start_session(1)
            filler = fill(disk)
            async with Recorder(db, Backoff(0.02, 0.05)) as recorder:
                recorder.store([transition(1)])
                await until(lambda: db.health.failure, 5, "the failure")
                recorder.store([transition(n) for n in range(2, 11)])
                await until(lambda: db.health.dropped == 5, 5, "the drop")
                filler.unlink()
                await until(lambda: db.health.failure is None and recorder.backlog == 0, 5, "the recovery")
            assert await db.transitions() == [transition(n) for n in range(6, 11)]  # the newest 5, in order
    assert "recorder dropped 5 transitions" in caplog.text
