"""The durable outbox: order, retries, per-route independence, crash safety, disabled routes,
route bugs, pruning. Real SQLite (the state database); the routes are scripted collaborators
that record what they get and answer what the test says."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

import pytest

from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.model import EventKind, Fault, FaultEvent
from rules.alerting.notifiers.base import Delivery
from rules.alerting.outbox import OutboxWorker
from tests.plugins.factories import fault as make_fault

FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.05, poll_s=0.05)


def fault(n: int, region: str | None = "城关镇") -> Fault:
    return make_fault(n, title=f"交换机SW-{n:03d}离线，影响3路摄像机", first_seen_ns=1_000 + n, last_seen_ns=2_000 + n,
                      region=region, affected=("CAM-1", "CAM-2", "CAM-3"), details={"parent": "CORE-1"})


Answer = Callable[[Sequence[FaultEvent]], Delivery]


def deliver_all(events: Sequence[FaultEvent]) -> Delivery:
    return Delivery(tuple(e.id for e in events))


class ScriptedRoute:
    """Answers the i-th deliver() call with script[i](events) (the last entry repeats);
    records every call's events."""

    type = "scripted"

    def __init__(self, name: str, *script: Answer) -> None:
        self.name = name
        self.script = list(script) or [deliver_all]
        self.calls: list[list[FaultEvent]] = []
        self.delivered: list[int] = []

    async def __aenter__(self) -> ScriptedRoute:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass

    async def deliver(self, events: Sequence[FaultEvent], progress=None) -> Delivery:
        self.calls.append(list(events))
        answer = self.script[min(len(self.calls) - 1, len(self.script) - 1)](events)
        self.delivered += answer.delivered
        return answer


@pytest.fixture
async def db(tmp_path):
    async with StateDB(tmp_path / "state.db") as db:
        await db.migrate(outbox.SCHEMA)
        yield db


@pytest.fixture
def outbox_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog for the outbox's records. monitor.app.logs.setup() stops "fleetmon" records from
    propagating to the root logger, where caplog listens: undo that for the test."""
    monkeypatch.setattr(logging.getLogger("fleetmon"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="fleetmon.outbox")
    return caplog


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fleetmon.outbox" and r.levelno == level]


async def put(db: StateDB, route: str, *numbers: int, kind: EventKind = EventKind.FIRING) -> list[int]:
    """Enqueue one event per fault number for `route`, in one transaction; their ids."""

    def op(conn: sqlite3.Connection) -> list[int]:
        with conn:
            conn.execute("BEGIN")
            return [outbox.enqueue(conn, route, kind, 5_000 + n, fault(n)) for n in numbers]

    return await db.execute(op)


async def eventually(check: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Wait until check() (sync or async) is true; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def drained(worker: OutboxWorker, route: str | None = None) -> None:
    async def check() -> bool:
        return await worker.pending(route) == 0

    await eventually(check)


async def test_a_routes_events_are_delivered_once_in_order_as_they_were_enqueued(db):
    route = ScriptedRoute("wecom-a")
    ids = await put(db, "wecom-a", 1, 2, 3, 4, 5)
    async with OutboxWorker(db, {"wecom-a": route}, **FAST) as worker:
        await drained(worker)
        later = await put(db, "wecom-a", 6, 7)
        worker.wake()
        await drained(worker)
    assert route.delivered == ids + later and ids == sorted(ids) and later[0] > ids[-1]
    first = route.calls[0][0]
    assert first == FaultEvent(ids[0], EventKind.FIRING, 5_001, fault(1))
    rows = await db.execute(lambda c: c.execute("SELECT attempts, delivered_ns, last_error FROM outbox").fetchall())
    assert len(rows) == 7 and all(a == 1 and d is not None and e is None for a, d, e in rows)


async def test_enqueue_belongs_to_the_callers_transaction(db):
    def op(conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("BEGIN")
            outbox.enqueue(conn, "wecom-a", EventKind.FIRING, 1, fault(1))
            raise RuntimeError("the fault change failed")

    with pytest.raises(RuntimeError):
        await db.execute(op)
    count = await db.execute(lambda c: c.execute("SELECT count(*) FROM outbox").fetchone()[0])
    assert count == 0


async def test_a_route_rate_limited_for_a_while_then_ok_gets_everything_in_order_once(db, outbox_log):
    limited = lambda events: Delivery((), retry_after_s=0.02, error="45009 api freq out of limit")
    two_at_a_time = lambda events: Delivery(tuple(e.id for e in events[:2]))
    route = ScriptedRoute("wecom-a", limited, limited, limited, two_at_a_time)
    ids = await put(db, "wecom-a", 1, 2, 3)
    async with OutboxWorker(db, {"wecom-a": route}, **FAST) as worker:
        await eventually(lambda: len(route.calls) >= 2)
        ids += await put(db, "wecom-a", 4, 5, 6, 7)  # more arrive while the route is failing
        worker.wake()
        await drained(worker)
    assert route.delivered == ids
    assert [c[0].id for c in route.calls[:3]] == [ids[0]] * 3  # the head is retried, nothing skips it
    failing = records(outbox_log, logging.WARNING)
    recovered = records(outbox_log, logging.INFO)
    assert len(failing) == 1 and "route wecom-a failing: 45009" in failing[0].getMessage()
    assert len(recovered) == 1 and "delivered 7 queued notifications after" in recovered[0].getMessage()


async def test_retry_after_is_honoured_and_recorded_on_the_waiting_rows(db):
    route = ScriptedRoute("hook", lambda events: Delivery((events[0].id,), retry_after_s=3600, error="HTTP 429"))
    ids = await put(db, "hook", 1, 2, 3)
    before = time.time_ns()
    async with OutboxWorker(db, {"hook": route}, **FAST) as worker:
        await eventually(lambda: route.calls)
        await asyncio.sleep(0.2)  # several poll periods: a wait of an hour means no second call
        assert len(route.calls) == 1 and await worker.pending("hook") == 2
    rows = await db.execute(
        lambda c: c.execute("SELECT id, next_attempt_ns, last_error FROM outbox WHERE delivered_ns IS NULL").fetchall()
    )
    assert [r[0] for r in rows] == ids[1:]
    assert all(n >= before + 3599 * 10**9 and e == "HTTP 429" for _, n, e in rows)


async def test_one_stuck_route_does_not_delay_another(db):
    stuck = ScriptedRoute("stuck", lambda events: Delivery((), retry_after_s=3600, error="down"))
    fine = ScriptedRoute("fine")
    await put(db, "stuck", 1, 2)
    await put(db, "fine", 3)
    async with OutboxWorker(db, {"stuck": stuck, "fine": fine}, **FAST) as worker:
        await drained(worker, "fine")
        more = await put(db, "fine", 4, 5)
        worker.wake()
        await drained(worker, "fine")
        assert await worker.pending("stuck") == 2 and await worker.pending() == 2
    assert fine.delivered[-2:] == more and len(fine.delivered) == 3
    assert len(stuck.calls) == 1


async def test_rows_left_by_a_crash_are_delivered_exactly_once_by_the_next_run(tmp_path):
    path = tmp_path / "state.db"
    async with StateDB(path) as db:  # a run that enqueued, then died before any delivery
        await db.migrate(outbox.SCHEMA)
        ids = await put(db, "wecom-a", 1, 2, 3)
    async with StateDB(path) as db:  # a run whose route was down until it was killed
        down = ScriptedRoute("wecom-a", lambda events: Delivery((), error="connection refused"))
        async with OutboxWorker(db, {"wecom-a": down}, **FAST) as worker:
            await eventually(lambda: len(down.calls) >= 2)
            assert await worker.pending() == 3
    route = ScriptedRoute("wecom-a")
    for _ in range(2):  # the second run after the recovery finds nothing left to send
        async with StateDB(path) as db:
            async with OutboxWorker(db, {"wecom-a": route}, **FAST) as worker:
                await drained(worker)
    assert route.delivered == ids


async def test_a_disabled_route_is_recorded_alarmed_once_and_keeps_its_rows(tmp_path, outbox_log):
    path = tmp_path / "state.db"
    alarms: list[tuple[str, str]] = []
    reason = "errcode 93000: invalid webhook url"
    broken = ScriptedRoute("wecom-a", lambda events: Delivery((events[0].id,), disabled=reason, error=reason))
    async with StateDB(path) as db:
        await db.migrate(outbox.SCHEMA)
        ids = await put(db, "wecom-a", 1, 2, 3)
        async with OutboxWorker(db, {"wecom-a": broken}, on_disabled=lambda r, why: alarms.append((r, why)), **FAST) as w:
            await eventually(lambda: alarms)
            ids += await put(db, "wecom-a", 4)
            w.wake()
            await asyncio.sleep(0.2)  # several poll periods: a disabled route is not called again
            assert w.disabled() == {"wecom-a": reason} and await w.pending("wecom-a") == 3
        rows = await db.execute(lambda c: c.execute("SELECT route, reason FROM disabled_routes").fetchall())
    assert alarms == [("wecom-a", reason)] and rows == [("wecom-a", reason)]
    assert len(broken.calls) == 1 and broken.delivered == ids[:1]
    errors = records(outbox_log, logging.ERROR)
    assert len(errors) == 1 and "route wecom-a disabled" in errors[0].getMessage() and "2 queued" in errors[0].getMessage()

    fixed = ScriptedRoute("wecom-a")  # the operator fixed the key and restarted
    async with StateDB(path) as db:
        async with OutboxWorker(db, {"wecom-a": fixed}, **FAST) as w:
            await drained(w)
            assert w.disabled() == {}
        rows = await db.execute(lambda c: c.execute("SELECT * FROM disabled_routes").fetchall())
    assert fixed.delivered == ids[1:] and rows == []


async def test_a_route_that_raises_is_retried_and_the_others_go_on(db, outbox_log):
    def bug(events: Sequence[FaultEvent]) -> Delivery:
        raise KeyError("mobile")

    buggy = ScriptedRoute("buggy", bug, bug, bug, deliver_all)
    other = ScriptedRoute("other")
    ids = await put(db, "buggy", 1, 2)
    await put(db, "other", 3)
    async with OutboxWorker(db, {"buggy": buggy, "other": other}, **FAST) as worker:
        await drained(worker)
    assert buggy.delivered == ids and len(buggy.calls) == 4 and len(other.delivered) == 1
    errors = records(outbox_log, logging.ERROR)
    assert len(errors) == 1 and errors[0].exc_info is not None and "route raised KeyError('mobile')" in errors[0].getMessage()


async def test_a_route_cannot_mark_rows_of_another_route(db):
    liar = ScriptedRoute("a", lambda events: Delivery(tuple(e.id for e in events) + (other_ids[0],)))
    other_ids = await put(db, "b", 1)
    await put(db, "a", 2)
    async with OutboxWorker(db, {"a": liar}, **FAST) as worker:
        await drained(worker, "a")
        assert await worker.pending("b") == 1


async def test_rows_of_a_route_no_longer_configured_are_kept_and_reported(db, outbox_log):
    await put(db, "retired", 1, 2)
    async with OutboxWorker(db, {}, **FAST) as worker:
        assert await worker.pending("retired") == 2
    warnings = [r.getMessage() for r in records(outbox_log, logging.WARNING)]
    assert warnings == ["2 queued notifications for route 'retired', which is not configured: kept until it is configured again"]


async def test_prune_deletes_only_rows_delivered_long_ago(db):
    old, recent, pending = await put(db, "a", 1, 2, 3)
    day_ns = 86_400 * 10**9
    now = time.time_ns()

    def age(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE outbox SET delivered_ns = ? WHERE id = ?", (now - 31 * day_ns, old))
        conn.execute("UPDATE outbox SET delivered_ns = ? WHERE id = ?", (now - 29 * day_ns, recent))

    await db.execute(age)
    worker = OutboxWorker(db, {}, prune_after_days=30)
    assert await worker.prune() == 1
    left = await db.execute(lambda c: [r[0] for r in c.execute("SELECT id FROM outbox ORDER BY id")])
    assert left == [recent, pending]


async def test_a_stop_in_the_middle_of_a_batch_repeats_only_the_message_in_flight(tmp_path):
    """Routes report each accepted message (`progress`), recorded at once: a run that stops (or
    dies) while the third of five is in flight sends only that one again, not the batch."""
    path = tmp_path / "state.db"

    class Stalls:
        name, type = "wecom-a", "scripted"
        sent: list[int] = []

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc_info):
            pass

        async def deliver(self, events, progress=None):
            for event in events:
                self.sent.append(event.id)
                if len(self.sent) == 3:
                    await asyncio.sleep(3600)  # in flight when the run ends
                await progress([event.id, 10**6])  # an id of no row of this batch is ignored
            return Delivery(tuple(e.id for e in events))

    stalls = Stalls()
    async with StateDB(path) as db:
        await db.migrate(outbox.SCHEMA)
        ids = await put(db, "wecom-a", 1, 2, 3, 4, 5)
        async with OutboxWorker(db, {"wecom-a": stalls}, **FAST):
            await eventually(lambda: len(stalls.sent) == 3)
    route = ScriptedRoute("wecom-a")
    async with StateDB(path) as db:
        async with OutboxWorker(db, {"wecom-a": route}, **FAST) as worker:
            await drained(worker)
    assert stalls.sent == ids[:3] and route.delivered == ids[2:]
