"""Fault lifecycle: conditions over time → faults (pending → firing → resolved), their
notifications (firing, resolved, reminders, escalation, acknowledgement) and persistence.

Each cycle `apply()` takes the conditions that hold now (rules/engine.py) and:
- opens a *pending* fault for a new condition; it *fires* once the condition has held for the
  rule's `for_s` (from `Condition.since_ns` where known); a pending fault whose condition goes
  away is dropped without a word;
- *resolves* a firing fault once its condition has been gone for the rule's `clear_for_s`;
- notifies through every route whose selector and minimum severity match: a firing notice
  when it fires, a resolution for every fault that was notified (and only those), reminders
  while it stays unacknowledged, an escalation to the route's `escalate_to`;
- inside a maintenance window nothing is notified; a fault still firing when the window ends
  is notified then.

Faults, their event history (fault_events: the evidence for response-time reports) and the
outbox rows of their notifications are written in ONE SQLite transaction per cycle, so a
crash (even kill -9) loses no fault, loses no notification and queues none twice (delivery
itself is at least once: rules/alerting/outbox.py says when a message can repeat).

When that transaction fails (disk full, I/O error) the change is not lost: it waits in memory
behind the other unstored changes, in order, and each later cycle stores the waiting ones
first (`flush`). Listeners hear of an event only once it is stored, and the outbox gets a
fault's firing notice before its resolution, so a group never reads "已恢复" for a fault it
was not told of. The open faults in memory run ahead of the database meanwhile.

Time (monitor/core/clock.py): every stamp stored or shown (first seen, fired, resolved, the
last notice per route, clear since) is wall-clock UTC ns; every duration (for_s, clear_for_s,
reminders, escalation) is measured on the monotonic clock, from the same moments kept on it in
memory (`_Mono`), so a step of the wall clock neither fires a pending fault early nor holds it.
After a restart those moments are placed from the stored wall stamps at the first `apply`:
the time before the restart counts on the wall clock, the time after it on the monotonic one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Sequence

from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB
from monitor.core.clock import place
from rules.base import Condition, Key
from rules.alerting.maintenance import MaintenanceBook
from rules.model import EventKind, Fault, FaultState
from rules.alerting.notifiers.base import RouteConfigBase
from rules.alerting import outbox
from rules.alerting.outbox import enqueue

log = logging.getLogger("fleetmon.faults")

WRITER = "faults"
MAX_UNSTORED = 10_000
"""Changes (about one per cycle) kept in memory while the state DB fails; the oldest beyond are
dropped and counted (monitor.state.writes.WriteHealth.drop)."""

SCHEMA = Schema("faults", (
    """
CREATE TABLE IF NOT EXISTS faults (
    id             INTEGER PRIMARY KEY,   -- Fault.id is "F" + this
    rule           TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    first_seen_ns  INTEGER NOT NULL,
    resolved_ns    INTEGER,
    doc            TEXT    NOT NULL,      -- Fault.to_dict() JSON
    lifecycle      TEXT    NOT NULL       -- _Life JSON: notices per route, escalations, clear_since
);
CREATE INDEX IF NOT EXISTS faults_state ON faults (state, id);
CREATE TABLE IF NOT EXISTS fault_events (
    id        INTEGER PRIMARY KEY,
    fault_id  INTEGER NOT NULL,
    event     TEXT    NOT NULL,          -- EventKind
    ts_ns     INTEGER NOT NULL,
    by        TEXT
);
CREATE INDEX IF NOT EXISTS fault_events_fault ON fault_events (fault_id, ts_ns);
""",
))


class FaultStateError(ValueError):
    """The fault is not in a state that allows this (e.g. acknowledging a resolved fault)."""


@dataclass(slots=True)
class _Life:
    """Lifecycle bookkeeping of an open fault (persisted with it)."""

    notices: dict[str, int] = field(default_factory=dict)  # route → last notice (UTC ns)
    escalated: list[str] = field(default_factory=list)  # routes already escalated from
    notified: bool = False  # a firing notice went out: a resolution will too
    clear_since_ns: int | None = None  # condition gone since (firing faults only)
    for_s: float = 0.0
    clear_for_s: float = 0.0


@dataclass(slots=True)
class _Mono:
    """An open fault's moments on the monotonic clock (ns; memory only, never stored): first
    seen, fired, clear since and the last notice per route, as in Fault and _Life."""

    first: int
    fired: int | None
    clear_since: int | None
    notices: dict[str, int]


@dataclass(slots=True)
class _Open:
    fault: Fault
    life: _Life
    mono: _Mono | None = None  # None until placed (a fault loaded at start: at the first apply)

    def placed(self, now_ns: int, mono_ns: int) -> _Mono:
        """The fault's moments on the monotonic clock; placed from its wall stamps the first
        time (their age now on the wall clock, see monitor.core.clock.place)."""
        if self.mono is None:
            f, life = self.fault, self.life

            def at(wall_ns: int) -> int:
                return place(wall_ns, now_ns, mono_ns)

            self.mono = _Mono(
                at(f.first_seen_ns), None if f.fired_ns is None else at(f.fired_ns),
                None if life.clear_since_ns is None else at(life.clear_since_ns),
                {route: at(ts) for route, ts in life.notices.items()},
            )
        return self.mono


class FaultBook:
    """Open faults in memory (the authority while running) and every fault in SQLite.
    Use `await FaultBook.load(db, inventory, routes, maintenance)`."""

    def __init__(
        self,
        db: StateDB,
        inventory: Inventory,
        routes: Sequence[RouteConfigBase],
        maintenance: MaintenanceBook,
        open_faults: Iterable[_Open],
        next_id: int,
    ) -> None:
        self._db = db
        self._inventory = inventory
        self._routes = {r.name: r for r in routes}
        self._maintenance = maintenance
        self._open: dict[Key, _Open] = {(o.fault.rule, o.fault.scope): o for o in open_faults}
        self._next_id = next_id
        # Changes made in memory and not stored yet (the database failed), oldest first.
        self._unstored: deque[_Write] = deque()
        self.listeners: list[Callable[[Fault, EventKind, int], None]] = []
        """Called with (fault, event, UTC ns) for every firing, resolution and acknowledgement,
        once it is stored (e.g. the daemon writes them to InfluxDB); must not block."""

    @classmethod
    async def load(
        cls, db: StateDB, inventory: Inventory, routes: Sequence[RouteConfigBase], maintenance: MaintenanceBook
    ) -> "FaultBook":
        def op(conn: sqlite3.Connection) -> tuple[list[_Open], int]:
            rows = conn.execute("SELECT doc, lifecycle FROM faults WHERE state != 'resolved' ORDER BY id").fetchall()
            last = conn.execute("SELECT max(id) FROM faults").fetchone()[0] or 0
            return [_Open(Fault.from_dict(json.loads(d)), _Life(**json.loads(lc))) for d, lc in rows], last + 1

        await db.migrate(SCHEMA)
        await db.migrate(outbox.SCHEMA)
        open_faults, next_id = await db.execute(op)
        if open_faults:
            log.info("resumed %d open faults", len(open_faults))
        return cls(db, inventory, routes, maintenance, open_faults, next_id)

    # -- reading ------------------------------------------------------------------------------

    def firing_keys(self) -> set[Key]:
        """Keys of the faults that fired and are not resolved: the rules hold these (clear
        thresholds, no data ≠ resolved); pending ones are judged afresh."""
        return {key for key, o in self._open.items() if o.fault.state is FaultState.FIRING}

    def open_faults(self) -> list[Fault]:
        """Pending and firing faults, most severe first, then newest."""
        return sorted(
            (o.fault for o in self._open.values()), key=lambda f: (f.severity.rank, -f.first_seen_ns)
        )

    async def faults(self, state: FaultState | None = None, limit: int = 500) -> list[Fault]:
        """Faults from the database (resolved ones included), newest first."""
        sql, args = "SELECT doc FROM faults", []
        if state is not None:
            sql += " WHERE state = ?"
            args.append(state.value)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = await self._db.execute(lambda conn: conn.execute(sql, args).fetchall())
        return [Fault.from_dict(json.loads(r[0])) for r in rows]

    async def get(self, fault_id: str) -> Fault | None:
        for o in self._open.values():
            if o.fault.id == fault_id:
                return o.fault
        number = _number(fault_id)
        if number is None:
            return None
        row = await self._db.execute(lambda conn: conn.execute("SELECT doc FROM faults WHERE id=?", (number,)).fetchone())
        return Fault.from_dict(json.loads(row[0])) if row else None

    # -- the cycle ------------------------------------------------------------------------------

    async def apply(self, conditions: Mapping[Key, Condition], now_ns: int, mono_ns: int | None = None) -> int:
        """Advance every fault to `now_ns` (UTC ns, the stamps) given the conditions that hold;
        store the changes and their notifications in one transaction, after the changes of
        earlier cycles that could not be stored yet (see `flush`). Returns the notifications
        stored in the outbox by this call (0 while the database fails: they wait in memory, in
        order).
        `mono_ns`: the same moment on the monotonic clock (durations are measured on it); None:
        `now_ns` serves for both (time driven by hand, with no steps)."""
        mono = now_ns if mono_ns is None else mono_ns
        changed: dict[Key, _Open] = {}
        dropped: list[Fault] = []
        notices: list[tuple[str, EventKind, Fault]] = []
        history: list[tuple[Fault, EventKind, str | None]] = []

        for key, c in conditions.items():
            o = self._open.get(key)
            if o is None:
                o = self._open[key] = self._new(c, now_ns)
            m = o.placed(now_ns, mono)
            if c.held:  # no fresh data: keep what was last measured
                o.fault = replace(o.fault, last_seen_ns=now_ns)
            else:
                o.fault = replace(
                    o.fault, title=c.title, severity=c.severity, value=c.value, threshold=c.threshold,
                    affected=c.affected, last_seen_ns=now_ns, details=dict(c.details),
                )
            o.life.clear_since_ns, o.life.for_s, o.life.clear_for_s = None, c.for_s, c.clear_for_s
            m.clear_since = None
            if o.fault.state is FaultState.PENDING and mono - m.first >= c.for_s * 1e9:
                o.fault = replace(o.fault, state=FaultState.FIRING, fired_ns=now_ns)
                m.fired = mono
                history.append((o.fault, EventKind.FIRING, None))
                log.warning("fault %s firing: %s", o.fault.id, o.fault.title, extra={"rule": o.fault.rule})
            changed[key] = o

        for key, o in list(self._open.items()):
            if key in conditions:
                continue
            if o.fault.state is FaultState.PENDING:
                dropped.append(o.fault)
                del self._open[key]
                continue
            m = o.placed(now_ns, mono)
            if m.clear_since is None:
                o.life.clear_since_ns, m.clear_since = now_ns, mono
            if mono - m.clear_since >= o.life.clear_for_s * 1e9:
                o.fault = replace(o.fault, state=FaultState.RESOLVED, resolved_ns=now_ns)
                history.append((o.fault, EventKind.RESOLVED, None))
                log.info("fault %s resolved: %s", o.fault.id, o.fault.title, extra={"rule": o.fault.rule})
                if o.life.notified:
                    notices += [(r, EventKind.RESOLVED, o.fault) for r in o.life.notices]
                del self._open[key]
            changed[key] = o

        for key, o in self._open.items():
            before = (o.fault.in_maintenance, len(notices))
            notices += self._due_notices(o, now_ns, mono)
            if (o.fault.in_maintenance, len(notices)) != before:
                changed[key] = o

        return await self._store(changed.values(), dropped, history, notices, now_ns)

    def _new(self, c: Condition, now_ns: int) -> _Open:
        fault_id = self._next_id
        self._next_id += 1
        first = min(c.since_ns, now_ns) if c.since_ns else now_ns
        fault = Fault(
            id=f"F{fault_id}", rule=c.rule, kind=c.kind, scope=c.scope, severity=c.severity,
            state=FaultState.PENDING, title=c.title, first_seen_ns=first, last_seen_ns=now_ns,
            device_id=c.device_id, site=c.site, region=c.region, value=c.value, threshold=c.threshold,
            unit=c.unit, affected=c.affected, details=dict(c.details),
        )
        return _Open(fault, _Life(for_s=c.for_s, clear_for_s=c.clear_for_s))

    def _due_notices(self, o: _Open, now_ns: int, mono: int) -> list[tuple[str, EventKind, Fault]]:
        """Firing notices, reminders and escalations due now (`now_ns` on the wall clock, `mono`
        on the monotonic one) for one open fault."""
        m = o.placed(now_ns, mono)
        fault = o.fault
        in_maintenance = self._maintenance.covers(fault, now_ns)
        if in_maintenance != fault.in_maintenance:
            o.fault = fault = replace(fault, in_maintenance=in_maintenance)
        if fault.state is not FaultState.FIRING or in_maintenance:
            return []
        out: list[tuple[str, EventKind, Fault]] = []
        for route in self._matching_routes(fault):
            if route.quiet_hours is not None and route.quiet_hours.holds_back(fault.severity, now_ns):
                continue  # notified once the quiet hours end, if still open
            last = o.life.notices.get(route.name)
            if last is None:
                out.append((route.name, EventKind.FIRING, fault))
            elif fault.acked_ns is None and route.remind_every_s and mono - m.notices[route.name] >= route.remind_every_s * 1e9:
                out.append((route.name, EventKind.REMINDER, fault))
            else:
                continue
            o.life.notices[route.name], m.notices[route.name] = now_ns, mono
        for route in self._matching_routes(fault):
            if (
                fault.acked_ns is None and route.escalate_after_s and route.escalate_to in self._routes
                and route.name not in o.life.escalated and m.fired is not None
                and mono - m.fired >= route.escalate_after_s * 1e9
            ):
                o.life.escalated.append(route.name)
                out.append((route.escalate_to, EventKind.ESCALATED, fault))
                if route.escalate_to not in o.life.notices:  # it gets the resolution too
                    o.life.notices[route.escalate_to], m.notices[route.escalate_to] = now_ns, mono
        if out:
            o.life.notified = True
        return out

    def _matching_routes(self, fault: Fault) -> list[RouteConfigBase]:
        device = self._inventory.devices.get(fault.device_id) if fault.device_id else None
        out = []
        for route in self._routes.values():
            if fault.severity.rank > route.min_severity.rank:
                continue
            m = route.match
            if device is not None:
                ok = m.selector().matches(device)
            else:  # group faults: only region/site criteria can apply
                ok = (not m.region or fault.region in m.region) and (not m.site or fault.site in m.site) and not m.kind and not m.tags
            if ok:
                out.append(route)
        return out

    # -- acknowledgement (API) -------------------------------------------------------------------

    async def ack(self, fault_id: str, by: str) -> Fault:
        """Acknowledge an open fault (认领): stops reminders and escalation; the routes that
        were notified are told. Raises KeyError (unknown id), FaultStateError (resolved)."""
        for key, o in self._open.items():
            if o.fault.id == fault_id:
                break
        else:
            if await self.get(fault_id) is None:
                raise KeyError(fault_id)
            raise FaultStateError(f"fault {fault_id} is already resolved")
        if o.fault.acked_ns is not None:
            return o.fault
        now = time.time_ns()
        o.fault = replace(o.fault, acked_by=by, acked_ns=now)
        notices = [(r, EventKind.ACKNOWLEDGED, o.fault) for r in o.life.notices]
        log.info("fault %s acknowledged by %s", fault_id, by)
        await self._store([o], [], [(o.fault, EventKind.ACKNOWLEDGED, by)], notices, now)
        return o.fault

    # -- persistence ----------------------------------------------------------------------------

    async def _store(
        self,
        changed: Iterable[_Open],
        dropped: Sequence[Fault],
        history: Sequence[tuple[Fault, EventKind, str | None]],
        notices: Sequence[tuple[str, EventKind, Fault]],
        now_ns: int,
    ) -> int:
        """Queue one change behind those not stored yet and flush; returns `flush()`'s count."""
        rows = [
            (
                _number(o.fault.id), o.fault.rule, o.fault.scope, o.fault.state.value, o.fault.severity.value,
                o.fault.first_seen_ns, o.fault.resolved_ns, json.dumps(o.fault.to_dict(), ensure_ascii=False),
                json.dumps(dataclasses.asdict(o.life)),
            )
            for o in changed
        ]
        if not (rows or dropped or history or notices):
            return await self.flush()
        self._unstored.append(_Write(rows, [_number(f.id) for f in dropped], list(history), list(notices), now_ns))
        over = len(self._unstored) - MAX_UNSTORED
        if over > 0:
            for _ in range(over):
                self._unstored.popleft()
            self._db.health.drop(WRITER, over, "fault changes")
        return await self.flush()

    @property
    def unstored(self) -> int:
        """Changes (one per cycle or acknowledgement) made in memory and not stored yet."""
        return len(self._unstored)

    async def flush(self) -> int:
        """Store the changes not stored yet, oldest first, each in its own transaction, and tell
        the listeners of each once it is stored. Returns the notifications stored. A database
        error stops the flush (reported to `db.health`; the rest waits for the next call);
        any other error (a bug, e.g. details that are not JSON) drops that one change and is
        raised."""
        stored = 0
        while self._unstored:
            write = self._unstored[0]
            try:
                await self._db.execute(write.op)
            except sqlite3.Error as exc:
                self._db.health.failed(WRITER, exc)
                return stored
            except Exception:
                self._unstored.popleft()
                raise
            self._unstored.popleft()
            stored += len(write.notices)
            for fault, kind, _ in write.history:
                for listener in self.listeners:
                    listener(fault, kind, write.now_ns)
        self._db.health.ok(WRITER)
        return stored


@dataclass(slots=True)
class _Write:
    """One change of the book (a cycle's or an acknowledgement's) as it goes to SQLite: fault
    rows, dropped pending faults, events for fault_events and notices for the outbox."""

    rows: list[tuple[object, ...]]
    dropped: list[int | None]
    history: list[tuple[Fault, EventKind, str | None]]
    notices: list[tuple[str, EventKind, Fault]]
    now_ns: int

    def op(self, conn: sqlite3.Connection) -> None:
        """(db thread) The change in one transaction: all of it is stored or none."""
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO faults (id, rule, scope, state, severity, first_seen_ns, resolved_ns, doc, lifecycle) "
                "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET state=excluded.state, "
                "severity=excluded.severity, resolved_ns=excluded.resolved_ns, doc=excluded.doc, "
                "lifecycle=excluded.lifecycle",
                self.rows,
            )
            conn.executemany("DELETE FROM faults WHERE id=?", [(n,) for n in self.dropped])
            conn.executemany(
                "INSERT INTO fault_events (fault_id, event, ts_ns, by) VALUES (?,?,?,?)",
                [(_number(f.id), kind.value, self.now_ns, by) for f, kind, by in self.history],
            )
            for route, kind, fault in self.notices:
                enqueue(conn, route, kind, self.now_ns, fault)


def faults_between(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[Fault]:
    """(state DB thread) Every stored fault that was open at some time in [start_ns, end_ns):
    first seen before the end and not resolved before the start, oldest first (by id). Pending
    faults still open are included (their `fired_ns` is None); pending ones that cleared were
    never kept. For reports, read-only; [] when the table does not exist yet."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='faults'").fetchone() is None:
        return []
    rows = conn.execute(
        "SELECT doc FROM faults WHERE first_seen_ns < ? AND (resolved_ns IS NULL OR resolved_ns >= ?) ORDER BY id",
        (end_ns, start_ns),
    ).fetchall()
    return [Fault.from_dict(json.loads(doc)) for (doc,) in rows]


def _number(fault_id: str) -> int | None:
    return int(fault_id[1:]) if fault_id[:1] == "F" and fault_id[1:].isdigit() else None

