"""Work orders (工单) in the state database: an append-only store of events, the orders folded
from them, and what fleetmon does with them by itself.

- Opening: a manual fault report (故障申告, `report`); a fault that fires and matches
  `assessment.workorders.open_on` (its device and the points it affects; reported when it
  fired, or when fleetmon started keeping orders, whichever is later; not while the fault is in
  a maintenance window, but when the window is over); a point offline too long; a camera whose
  ONVIF serial changed with no order open (`propose_replacement`).
- People's actions: assign, acknowledge (响应/认领), arrive (到场), restore (修复), replace
  (更换), confirm a proposed replacement, classify (cause, resolution, no spare part), note,
  close. Rules: monitor.assess.orders. Bad input raises WorkOrderError (UnknownOrderError,
  OrderStateError) and writes nothing.
- `tick(now)` (every `tick_s` and right after a fault fires or resolves, see WorkOrderService):
  opens orders for matching firing faults; restores and closes (or proposes closing) orders
  whose fault resolved on its own (`auto_close`), and long-offline orders whose point is back;
  escalates points offline too long; sends SLA warnings and breaches.
- Notices go through the alerting outbox in the transaction that records them as order events
  (`sla_notice`, `escalated`), once per order and clock and level: kill -9 neither loses nor
  repeats one.
- Reading: open orders (memory), any order or period (folded from the database), countdowns,
  breach counts, long-offline points, `excluded(start, end)` for the availability report and
  `facts(start, end)` for the score's count ratios (monitor.assess.order_ratios).
- Time (monitor/core/clock.py): every stamp is wall-clock UTC ns. The countdowns of open orders
  (`tick`'s warnings and breaches, `countdown` without a time) run on the monotonic clock from
  the report's moment on it: taken when the order is opened here, placed from the stored
  report stamp by its wall-clock age for an order loaded at start. So a wall-clock step does
  not move a deadline nearer or further, and across a restart the time before it counts on the
  wall clock, the time after it on the monotonic one. Given an explicit time (`tick(now_ns)`,
  `countdown(order, now_ns)`, reports of a period), everything stands at that wall instant;
  breach counts, order facts and long-offline days read the stored stamps at the wall clock's
  now (periods of days and months, shared with the CLI and reports beside the daemon).

Tables (component "workorders"; UPDATE and DELETE refused by triggers: nothing is edited in
place):

    workorders(ref PK, opened_ns, source, source_ref)   one row per order, written at opening
    workorder_devices(device_id, ref)                    the devices of each order
    workorder_events(id PK, ref, action, ts_ns, recorded_ns, by, payload JSON)
    workorder_meta(key PK, value)                        enabled_ns: when orders were first kept

One writer: the daemon's book (the CLI and the phone page write through its API), so
reference numbers are allocated in memory; the primary key refuses a duplicate all the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Callable, Collection, Iterable, Mapping, Self, Sequence
from zoneinfo import ZoneInfo

from monitor.assess.config_workorders import Clock, WorkOrderConfig
from monitor.assess.model import Cause, Exclusion
from monitor.assess.offline import LongOffline, back_online_ns, offline_since, probes_for
from monitor.assess.order_ratios import OrderFacts
from monitor.assess.orders import (
    FLEETMON, Action, OrderEvent, OrderStateError, Resolution, Source, UnknownOrderError, WorkOrder,
    WorkOrderError, check, check_by, check_time, fold, MAX_TEXT,
)
from monitor.assess.sla import BreachReport, ClockState, ClockStatus, Sla, count_breaches
from monitor.assess.texts import Texts
from monitor.core.clock import place
from monitor.core.periodic import PeriodicTask
from monitor.core.model import Device
from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB
from monitor.state.writes import Backoff
from rules.alerting import outbox
from rules.alerting.faults import FaultBook
from rules.model import EventKind, Fault, FaultState, Severity

log = logging.getLogger("fleetmon.workorders")

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS

_APPEND_ONLY = "".join(
    f"""
CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table}
BEGIN SELECT RAISE(ABORT, 'work orders are append-only: {table} rows are never changed or deleted'); END;"""
    for table in ("workorders", "workorder_devices", "workorder_events", "workorder_meta")
    for verb in ("update", "delete")
)

SCHEMA = Schema("workorders", (
    """
CREATE TABLE workorders (
    ref         TEXT    PRIMARY KEY,        -- WO-20261204-0007
    opened_ns   INTEGER NOT NULL,           -- the report, UTC ns
    source      TEXT    NOT NULL,           -- Source
    source_ref  TEXT                        -- fault id (fault), device id (long_offline)
);
CREATE INDEX workorders_opened ON workorders (opened_ns);
CREATE INDEX workorders_source ON workorders (source, source_ref);
CREATE TABLE workorder_devices (
    device_id   TEXT    NOT NULL,
    ref         TEXT    NOT NULL REFERENCES workorders (ref),
    PRIMARY KEY (device_id, ref)
);
CREATE TABLE workorder_events (
    id          INTEGER PRIMARY KEY,
    ref         TEXT    NOT NULL REFERENCES workorders (ref),
    action      TEXT    NOT NULL,           -- Action
    ts_ns       INTEGER NOT NULL,           -- when it happened (the stamp), UTC ns
    recorded_ns INTEGER NOT NULL,           -- when it was written, UTC ns
    by          TEXT    NOT NULL,           -- who (a person, or fleetmon)
    payload     TEXT    NOT NULL            -- JSON object
);
CREATE INDEX workorder_events_ref ON workorder_events (ref, id);
CREATE INDEX workorder_events_closed ON workorder_events (ref, ts_ns) WHERE action = 'closed';
CREATE INDEX workorder_events_serials ON workorder_events (action) WHERE action IN ('replaced', 'replacement_proposed');
CREATE TABLE workorder_meta (
    key         TEXT    PRIMARY KEY,
    value       INTEGER NOT NULL
);
""" + _APPEND_ONLY,
))

_EVENT_COLUMNS = "e.id, e.ref, e.action, e.ts_ns, e.recorded_ns, e.by, e.payload"


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one `tick` did: refs of the orders opened, restored by fleetmon, closed, proposed
    for closing and escalated; notices: outbox rows queued (one per notice and route)."""

    opened: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()
    close_proposed: tuple[str, ...] = ()
    escalated: tuple[str, ...] = ()
    notices: int = 0


class _Batch:
    """Events to write in one transaction, each checked against its order as the batch leaves it.
    `now`: UTC ns; `mono`: the same moment on the monotonic clock (None: a time given by hand)."""

    def __init__(self, open_histories: Mapping[str, list[OrderEvent]], now_ns: int, mono_ns: int | None) -> None:
        self.now = now_ns
        self.mono = mono_ns
        self._open = open_histories
        self.histories: dict[str, list[OrderEvent]] = {}
        self.orders: dict[str, WorkOrder] = {}
        self.new: list[OrderEvent] = []
        self.registry: list[tuple[str, int, str, str | None, tuple[str, ...]]] = []
        self.notices: list[tuple[str, EventKind, Fault]] = []

    def order(self, ref: str) -> WorkOrder:
        if ref not in self.orders:
            self.histories[ref] = list(self._open[ref])
            self.orders[ref] = fold(self.histories[ref])
        return self.orders[ref]

    def open(self, ref: str, ts_ns: int, by: str, payload: dict[str, Any]) -> WorkOrder:
        event = OrderEvent(0, ref, Action.OPENED, ts_ns, self.now, by, payload)
        self.registry.append((ref, ts_ns, payload["source"], payload.get("source_ref"), tuple(payload["devices"])))
        self.histories[ref] = [event]
        self.new.append(event)
        order = self.orders[ref] = fold([event])
        return order

    def add(
        self, ref: str, steps: Sequence[tuple[Action, int, str, dict[str, Any]]], now_ns: int | None = None
    ) -> WorkOrder:
        """Append `steps` (action, ts_ns, by, payload) to order `ref`, all or none: each is
        checked against the order the previous ones made, and against `now_ns` (default the
        batch's now) for stamps in the future. Raises WorkOrderError."""
        history = list(self.histories.get(ref) or self._open[ref])
        order = self.order(ref)
        added = []
        for action, ts_ns, by, payload in steps:
            check(order, action, ts_ns, self.now if now_ns is None else now_ns, payload)
            event = OrderEvent(0, ref, action, ts_ns, self.now, by, payload)
            history.append(event)
            added.append(event)
            order = fold(history)
        self.histories[ref], self.orders[ref] = history, order
        self.new += added
        return order


class WorkOrderBook:
    """Work orders of one state database. `await WorkOrderBook.load(db, inventory, cfg, sla, …)`.

    - faults: the FaultBook whose faults open orders (None: no automatic orders or closes).
    - routes: notify routes for warnings, breaches and escalations (cfg.routes, checked against
      `known_routes` when given).
    - language / timezone: of texts and of reference dates.
    - clock: UTC ns now (tests drive it); mono: the monotonic clock in ns, for the countdowns
      (the daemon passes time.monotonic_ns; None: `clock` serves for both, a clock driven by
      hand with no steps); wake: called after notices were queued (the outbox worker's `wake`).
    """

    def __init__(
        self,
        db: StateDB,
        inventory: Inventory,
        cfg: WorkOrderConfig,
        sla: Sla,
        *,
        faults: FaultBook | None,
        language: str,
        timezone: str,
        clock: Callable[[], int],
        mono: Callable[[], int] | None = None,
        wake: Callable[[], None] | None,
        open_histories: dict[str, list[OrderEvent]],
        enabled_ns: int,
        fault_ids: set[str],
        serials: set[tuple[str, str]],
        sequences: dict[str, int],
    ) -> None:
        self._db = db
        self.inventory = inventory
        self.cfg = cfg
        self.sla = sla
        self._faults = faults
        self._texts = Texts(language, timezone)
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._mono = mono or clock
        self._reported_mono: dict[str, int] = {}  # open order → its report on the monotonic clock
        self._wake = wake
        self._histories = open_histories
        self._open = {ref: fold(events) for ref, events in open_histories.items()}
        self.enabled_ns = enabled_ns
        self._fault_ids = fault_ids
        self._serials = serials
        self._sequences = sequences
        self._held: set[str] = set()  # faults seen inside a maintenance window
        self._lock = asyncio.Lock()
        days = cfg.long_offline.days or sla.long_offline_days or 7.0
        self.long_offline_days = days
        self._probes = probes_for(cfg.long_offline.bases)

    @classmethod
    async def load(
        cls,
        db: StateDB,
        inventory: Inventory,
        cfg: WorkOrderConfig,
        sla: Sla,
        *,
        faults: FaultBook | None = None,
        known_routes: Collection[str] | None = None,
        language: str = "zh",
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], int] = time.time_ns,
        mono: Callable[[], int] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> "WorkOrderBook":
        """Create or migrate the tables and load the open orders. Raises ValueError when
        cfg.routes names a route not in `known_routes`, StateDBError for the database.

        On a read-only StateDB (the CLI beside the running daemon) nothing is written: the
        tables must be there already (StateDBError otherwise), and the book only reads
        (orders, facts, excluded time, breaches, long-offline points); its actions and `tick`
        would fail on the database."""
        if known_routes is not None:
            unknown = [r for r in cfg.routes if r not in known_routes]
            if unknown:
                raise ValueError(f"assessment.workorders.routes: no such notify route: {', '.join(unknown)}")
        await db.migrate(SCHEMA)
        await db.migrate(outbox.SCHEMA)
        now = clock()
        prefix = cfg.prefix

        read_only = db.read_only

        def op(conn: sqlite3.Connection) -> tuple[Any, ...]:
            if not read_only:
                conn.execute("INSERT OR IGNORE INTO workorder_meta (key, value) VALUES ('enabled_ns', ?)", (now,))
            row = conn.execute("SELECT value FROM workorder_meta WHERE key = 'enabled_ns'").fetchone()
            enabled = now if row is None else row[0]
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM workorder_events e WHERE e.ref IN (SELECT ref FROM workorders w "
                "WHERE NOT EXISTS (SELECT 1 FROM workorder_events c WHERE c.ref = w.ref AND c.action = 'closed')) "
                "ORDER BY e.ref, e.id"
            ).fetchall()
            fault_ids = {r[0] for r in conn.execute("SELECT source_ref FROM workorders WHERE source = 'fault'")}
            serials = {
                (p["device"], p["new_serial"])
                for (doc,) in conn.execute(
                    "SELECT payload FROM workorder_events WHERE action IN ('replaced', 'replacement_proposed')")
                for p in (json.loads(doc),)
            }
            sequences: dict[str, int] = {}
            for (ref,) in conn.execute("SELECT ref FROM workorders WHERE ref LIKE ?", (prefix + "-%",)):
                _, day, seq = ref.rsplit("-", 2)
                sequences[day] = max(sequences.get(day, 0), int(seq))
            return enabled, _histories(rows), fault_ids, serials, sequences

        enabled, histories, fault_ids, serials, sequences = await db.execute(op)
        if histories:
            log.info("resumed %d open work orders", len(histories))
        return cls(
            db, inventory, cfg, sla, faults=faults, language=language, timezone=timezone, clock=clock, mono=mono, wake=wake,
            open_histories=histories, enabled_ns=enabled, fault_ids=fault_ids, serials=serials, sequences=sequences,
        )

    # -- reading --------------------------------------------------------------------------------

    def open_orders(self) -> list[WorkOrder]:
        """Open orders, oldest report first."""
        return sorted(self._open.values(), key=lambda o: (o.reported_ns, o.ref))

    async def get(self, ref: str) -> WorkOrder:
        """The order `ref`, open or closed. Raises UnknownOrderError."""
        if ref in self._open:
            return self._open[ref]
        events = await self.events(ref)
        return fold(events)

    async def events(self, ref: str) -> list[OrderEvent]:
        """The order's events, oldest first. Raises UnknownOrderError."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM workorder_events e WHERE e.ref = ? ORDER BY e.id"
        rows = await self._db.execute(lambda conn: conn.execute(sql, (ref,)).fetchall())
        if not rows:
            raise UnknownOrderError(f"no work order {ref!r}")
        return _histories(rows)[ref]

    async def orders(
        self, start_ns: int | None = None, end_ns: int | None = None, *, device_id: str | None = None
    ) -> list[WorkOrder]:
        """Orders open at some time in [start_ns, end_ns) (reported before the end, not closed
        before the start; None = unbounded), optionally only those listing `device_id`; oldest
        report first."""
        refs = "SELECT w.ref FROM workorders w WHERE 1=1"
        args: list[Any] = []
        if end_ns is not None:
            refs += " AND w.opened_ns < ?"
            args.append(end_ns)
        if start_ns is not None:
            refs += (" AND NOT EXISTS (SELECT 1 FROM workorder_events c WHERE c.ref = w.ref AND c.action = 'closed'"
                     " AND c.ts_ns < ?)")
            args.append(start_ns)
        if device_id is not None:
            refs += " AND w.ref IN (SELECT ref FROM workorder_devices WHERE device_id = ?)"
            args.append(device_id)
        sql = f"SELECT {_EVENT_COLUMNS} FROM workorder_events e WHERE e.ref IN ({refs}) ORDER BY e.ref, e.id"
        rows = await self._db.execute(lambda conn: conn.execute(sql, args).fetchall())
        orders = [fold(events) for events in _histories(rows).values()]
        return sorted(orders, key=lambda o: (o.reported_ns, o.ref))

    def countdown(self, order: WorkOrder, now_ns: int | None = None) -> list[ClockStatus]:
        """The order's SLA clocks at `now_ns` (default: now, an open order's running clocks on
        the monotonic clock since its report)."""
        if now_ns is not None:
            return self.sla.evaluate(order, now_ns)
        now, mono = self._clock(), self._mono()
        return self.sla.evaluate(order, now, elapsed_ns=self._elapsed(order, now, mono))

    async def breaches(self, start_ns: int, end_ns: int, now_ns: int | None = None) -> BreachReport:
        """Breaches (clocks breached or missed) whose deadline fell in [start_ns, end_ns),
        counted per order, per engineer and per clock."""
        now = self._clock() if now_ns is None else now_ns
        return count_breaches(self.sla, await self.orders(start_ns, end_ns), start_ns, end_ns, now)

    async def facts(
        self, start_ns: int, end_ns: int, now_ns: int | None = None, *,
        system_of: Callable[[Device], str | None] | None = None, orders: Sequence[WorkOrder] | None = None,
    ) -> list[OrderFacts]:
        """The orders reported in [start_ns, end_ns) as the score's count ratios read them
        (monitor.assess.order_ratios.OrderFacts), cancelled orders (误报/重复) left out:
        the first device and its kind; the arrival deadline of the SLA arrival clock (None
        when the policy has none, or the fix was remote); the resolution as restored or
        classified; a pending replacement proposal or a no-spare mark as "replacement needed";
        `major` for critical orders (重大故障); `system` from `system_of(device)` (Zhangjiagang
        counts faults per system; None without it). `orders`: `orders(start_ns, end_ns)` when
        the caller has read them already."""
        now = self._clock() if now_ns is None else now_ns
        out = []
        for order in await self.orders(start_ns, end_ns) if orders is None else orders:
            if order.cancelled or not start_ns <= order.reported_ns < end_ns:
                continue
            arrival = next((c for c in self.sla.evaluate(order, now) if c.clock is Clock.ARRIVAL), None)
            device = self.inventory.devices.get(order.devices[0])
            out.append(OrderFacts(
                order.ref, order.devices[0], order.kind, order.reported_ns, cause=order.cause,
                arrived_ns=order.arrived_ns, arrival_due_ns=arrival.deadline_ns if arrival else None,
                resolution=order.resolution.value if order.resolution else None, replaced_ns=order.replaced_ns,
                replacement_needed=bool(order.pending_proposals) or order.no_spare,
                system=system_of(device) if system_of is not None and device is not None else None,
                major=order.severity is Severity.CRITICAL,
            ))
        return out

    async def excluded(
        self, start_ns: int, end_ns: int, *, orders: Sequence[WorkOrder] | None = None
    ) -> list[Exclusion]:
        """Downtime taken out of the assessment by orders whose cause is excluded (市政, 电力,
        人为破坏, 不可抗力, 运营商, 采购方原因): for each device of such an order, from the
        fault's start (or the report) to the restore (or the close; still open: now), clipped to
        [start_ns, end_ns). Per device the intervals are merged (disjoint, sorted), `kind`
        "cause", `reason` the orders and causes ("WO-20261204-0007 电力"). `orders`:
        `orders(start_ns, end_ns)` when the caller has read them already."""
        now = self._clock()
        spans: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for order in await self.orders(start_ns, end_ns) if orders is None else orders:
            if order.cause is None or not order.cause.excluded:
                continue
            s = max(start_ns, order.downtime_start_ns)
            e = min(end_ns, order.downtime_end_ns if order.downtime_end_ns is not None else now)
            if e > s:
                for device_id in order.devices:
                    spans[device_id].append((s, e, f"{order.ref} {order.cause.label()}"))
        out = []
        for device_id, items in sorted(spans.items()):
            items.sort()
            cur_s, cur_e, reasons = items[0][0], items[0][1], [items[0][2]]
            for s, e, reason in items[1:]:
                if s <= cur_e:
                    cur_e = max(cur_e, e)
                    reasons.append(reason)
                else:
                    out.append(Exclusion(device_id, cur_s, cur_e, "cause", "; ".join(reasons)))
                    cur_s, cur_e, reasons = s, e, [reason]
            out.append(Exclusion(device_id, cur_s, cur_e, "cause", "; ".join(reasons)))
        return out

    async def long_offline(self, now_ns: int | None = None) -> list[LongOffline]:
        """Counted points offline at least `long_offline_days` now, longest first."""
        now = self._clock() if now_ns is None else now_ns
        since = await self._db.execute(lambda conn: offline_since(conn, self._probes))
        return self._long_offline(since, now)

    def _long_offline(self, since: Mapping[str, int], now: int) -> list[LongOffline]:
        threshold = self.long_offline_days * _DAY_NS
        by_device: dict[str, WorkOrder] = {}
        for order in self.open_orders():  # oldest first: the newest order listing a device wins
            for device_id in order.devices:
                by_device[device_id] = order
        out = []
        for device_id, start in since.items():
            device = self.inventory.devices.get(device_id)
            if device is None or not device.counted or now - start < threshold:
                continue
            order = by_device.get(device_id)
            cause = order.cause if order else None
            escalated = order is not None and (order.escalated_ns is not None or order.source is Source.LONG_OFFLINE)
            out.append(LongOffline(
                device_id, device.name, device.kind, device.site, device.region, start, (now - start) / _DAY_NS,
                order.ref if order else None, cause, bool(cause and cause.excluded), escalated,
            ))
        return sorted(out, key=lambda x: (x.since_ns, x.device_id))

    # -- people's actions -----------------------------------------------------------------------

    async def report(
        self,
        devices: Sequence[str],
        *,
        by: str,
        title: str,
        severity: Severity = Severity.MAJOR,
        ts_ns: int | None = None,
        assignee: str | None = None,
    ) -> WorkOrder:
        """A manual fault report (故障申告): the buyer phoned; `by` entered it; `ts_ns` when it was
        reported (default now). Raises WorkOrderError (unknown device, no device, no title, a
        time in the future, no `by`)."""
        by = check_by(by)
        ids = self._devices(devices)
        title = _text(title, "title")
        try:
            severity = Severity(severity)
        except ValueError:
            raise WorkOrderError(f"report: severity {severity!r} is not critical, major or minor") from None
        async with self._lock:
            batch = self._batch()
            now = batch.now
            ts = now if ts_ns is None else ts_ns
            check_time(ts, now, "report")
            ref = self._open_order(batch, ts, by, ids, severity, Source.MANUAL, None, title, None, assignee)
            await self._commit(batch)
        log.info("work order %s reported by %s: %s", ref, by, title)
        return batch.orders[ref]

    async def assign(self, ref: str, assignee: str, *, by: str) -> WorkOrder:
        """Give the order to `assignee` (breaches count against them)."""
        return await self._act(ref, Action.ASSIGNED, by, None, {"assignee": check_by(assignee, "assignee")})

    async def acknowledge(self, ref: str, *, by: str, ts_ns: int | None = None) -> WorkOrder:
        """响应 / 认领: `by` takes the order; an order without assignee becomes theirs."""
        by = check_by(by)
        async with self._lock:
            batch = self._batch()
            order = await self._require_open(ref)
            ts = batch.now if ts_ns is None else ts_ns
            steps = [(Action.ACKNOWLEDGED, ts, by, {})]
            if order.assignee is None:
                steps.append((Action.ASSIGNED, ts, by, {"assignee": by}))
            order = batch.add(ref, steps)
            await self._commit(batch)
        return order

    async def arrive(self, ref: str, *, by: str, ts_ns: int | None = None) -> WorkOrder:
        """到场: the engineer is on site (or, where a preset says so, has begun remote work)."""
        return await self._act(ref, Action.ARRIVED, by, ts_ns, {})

    async def restore(
        self, ref: str, *, by: str, ts_ns: int | None = None, resolution: Resolution | None = None
    ) -> WorkOrder:
        """修复: the device works again. resolution default: as classified, else on_site when
        somebody arrived or replaced something, else remote."""
        order = await self._require_open(ref)
        if resolution is None:
            resolution = order.resolution or (Resolution.ON_SITE if order.on_site else Resolution.REMOTE)
        return await self._act(ref, Action.RESTORED, by, ts_ns, {"resolution": Resolution(resolution).value})

    async def replace(
        self,
        ref: str,
        *,
        by: str,
        device_id: str,
        old_serial: str,
        new_serial: str,
        old_model: str | None = None,
        new_model: str | None = None,
        ts_ns: int | None = None,
    ) -> WorkOrder:
        """更换: `device_id` (one of the order's) exchanged; old model default: the point list's."""
        device = self.inventory.devices.get(device_id)
        payload = {
            "device": device_id, "old_serial": (old_serial or "").strip(), "new_serial": (new_serial or "").strip(),
            "old_model": old_model if old_model is not None else (device.model if device else None),
            "new_model": new_model,
        }
        return await self._act(ref, Action.REPLACED, by, ts_ns, payload)

    async def confirm_replacement(
        self, ref: str, *, by: str, device_id: str | None = None, ts_ns: int | None = None,
        new_model: str | None = None,
    ) -> WorkOrder:
        """Confirm fleetmon's replacement proposal (of `device_id`, default the latest pending):
        records the replacement with the proposal's serials, at the proposal's time unless
        given. Raises OrderStateError when nothing is pending."""
        order = await self._require_open(ref)
        pending = [p for p in order.pending_proposals if device_id is None or p.device_id == device_id]
        if not pending:
            raise OrderStateError(f"{ref}: no replacement proposal to confirm")
        p = pending[-1]
        ts = ts_ns if ts_ns is not None else max(p.ts_ns, order.arrived_ns or order.reported_ns)
        return await self.replace(
            ref, by=by, device_id=p.device_id, old_serial=p.old_serial, new_serial=p.new_serial,
            new_model=new_model or p.new_model, ts_ns=ts,
        )

    async def classify(
        self, ref: str, *, by: str, cause: Cause | None = None, resolution: Resolution | None = None,
        no_spare: bool | None = None,
    ) -> WorkOrder:
        """Set the cause class (an excluded one takes the downtime out of the assessment), the
        resolution class (on_site: 需现场处理) or the no-spare-part mark; at least one."""
        if cause is None and resolution is None and no_spare is None:
            raise WorkOrderError(f"{ref} classify: give a cause, a resolution or no_spare")
        try:
            payload = {"cause": Cause(cause).value if cause is not None else None,
                       "resolution": Resolution(resolution).value if resolution is not None else None,
                       "no_spare": no_spare}
        except ValueError as exc:
            raise WorkOrderError(f"{ref} classify: {exc}") from None
        return await self._act(ref, Action.CLASSIFIED, by, None, payload)

    async def note(self, ref: str, text: str, *, by: str) -> WorkOrder:
        return await self._act(ref, Action.NOTED, by, None, {"text": _text(text, "note")})

    async def close(
        self, ref: str, *, by: str, ts_ns: int | None = None, cancelled: bool = False, note: str | None = None
    ) -> WorkOrder:
        """Close the order (after its restore; or cancelled: 误报/重复, which stops its clocks
        from counting)."""
        payload: dict[str, Any] = {"cancelled": bool(cancelled)}
        if note is not None:
            payload["note"] = _text(note, "note")
        order = await self._act(ref, Action.CLOSED, by, ts_ns, payload)
        log.info("work order %s closed by %s%s", ref, by, " (cancelled)" if cancelled else "")
        return order

    # -- fleetmon's own actions -----------------------------------------------------------------

    async def propose_replacement(
        self, order_or_device: str, old_serial: str, new_serial: str, *, device_id: str | None = None,
        new_model: str | None = None, ts_ns: int | None = None,
    ) -> WorkOrder | None:
        """A device's serial changed (the ONVIF probe's `serial` field differs from what was
        known): record a replacement proposal for the duty engineer to confirm
        (`confirm_replacement`). `order_or_device`: an open order's reference (the device:
        `device_id`, default its first), or a device id (its newest open order; with none, an
        order of source serial_change is opened). Returns the order, or None when this (device,
        new serial) was already proposed or recorded (the probe reports it every cycle).
        Raises WorkOrderError (unknown device, order closed or unknown, serials missing)."""
        old_serial, new_serial = (old_serial or "").strip(), (new_serial or "").strip()
        if not old_serial or not new_serial or old_serial == new_serial:
            raise WorkOrderError("propose_replacement: two different, non-empty serial numbers are needed")
        async with self._lock:
            batch = self._batch()
            now = batch.now
            ts = now if ts_ns is None else ts_ns
            ref: str | None
            if order_or_device in self.inventory.devices:
                device_id = order_or_device
                ref = self._newest_open_for(device_id)
            elif order_or_device.startswith(self.cfg.prefix + "-"):
                ref = order_or_device
                device_id = device_id or (await self._require_open(ref)).devices[0]
            else:
                raise WorkOrderError(f"unknown device: {order_or_device} (not in the point list)")
            if (device_id, new_serial) in self._serials:
                return None
            if ref is None:
                check_time(ts, now, "propose_replacement")
                device = self.inventory.devices[device_id]
                title = (f"{device.name}序列号变化 {old_serial} → {new_serial}，疑似更换，请确认" if self._texts.language == "zh"
                         else f"{device.name}: serial changed {old_serial} → {new_serial}, replaced? Please confirm")
                ref = self._open_order(batch, ts, FLEETMON, (device_id,), Severity.MINOR, Source.SERIAL_CHANGE,
                                       device_id, title, None, None)
            ts = max(ts, batch.order(ref).reported_ns)
            payload = {"device": device_id, "old_serial": old_serial, "new_serial": new_serial, "new_model": new_model}
            order = batch.add(ref, [(Action.REPLACEMENT_PROPOSED, ts, FLEETMON, payload)])
            await self._commit(batch)
        log.info("work order %s: %s serial %s → %s, replacement proposed", ref, device_id, old_serial, new_serial)
        return order

    async def tick(self, now_ns: int | None = None) -> TickReport:
        """Advance everything automatic to `now_ns` (default now) in one transaction: orders for
        firing faults, automatic restores and closes, long-offline escalation, SLA notices."""
        async with self._lock:
            batch = self._batch(now_ns)
            now = batch.now
            resolved = await self._resolved_sources()
            offline = await self._db.execute(lambda conn: offline_since(conn, self._probes))
            back = await self._back_online(offline, now)
            report: dict[str, list[str]] = defaultdict(list)
            self._open_for_faults(batch, report)
            self._auto_close(batch, {**resolved, **back}, report)
            if self.cfg.long_offline.escalate == "order":
                self._escalate(batch, offline, report)
            self._clock_notices(batch)
            await self._commit(batch)
        for key in ("opened", "restored", "closed", "close_proposed", "escalated"):
            for ref in report[key]:
                log.info("work order %s %s by fleetmon", ref, key.replace("_", " "))
        return TickReport(*(tuple(report[k]) for k in ("opened", "restored", "closed", "close_proposed",
                                                        "escalated")), notices=len(batch.notices))

    # -- tick steps -----------------------------------------------------------------------------

    def _wants(self, fault: Fault) -> bool:
        device = self.inventory.devices.get(fault.device_id) if fault.device_id else None
        if device is None:
            return False
        return any(
            (not r.rules or fault.rule in r.rules) and fault.severity.rank <= r.min_severity.rank
            and (not r.kinds or device.kind in r.kinds)
            for r in self.cfg.open_on
        )

    def _open_for_faults(self, batch: _Batch, report: dict[str, list[str]]) -> None:
        if self._faults is None or not self.cfg.open_on:
            return
        for fault in self._faults.open_faults():
            if fault.state is not FaultState.FIRING or fault.id in self._fault_ids or not self._wants(fault):
                continue
            if fault.in_maintenance:
                self._held.add(fault.id)
                continue
            reported = batch.now if fault.id in self._held else max(fault.fired_ns or batch.now, self.enabled_ns)
            devices = tuple(dict.fromkeys((fault.device_id, *fault.affected)))
            devices = tuple(d for d in devices if d in self.inventory.devices)
            ref = self._open_order(batch, min(reported, batch.now), FLEETMON, devices, fault.severity, Source.FAULT,
                                   fault.id, fault.title, fault.first_seen_ns, None)
            self._held.discard(fault.id)
            report["opened"].append(ref)

    async def _resolved_sources(self) -> dict[str, int]:
        """{ref: when its fault resolved} for open fault orders awaiting an automatic restore or
        close."""
        if self._faults is None or self.cfg.auto_close == "off":
            return {}
        live = {f.id for f in self._faults.open_faults()}
        out = {}
        for order in self._open.values():
            if order.source is not Source.FAULT or order.source_ref in live or order.close_proposed_ns is not None:
                continue
            fault = await self._faults.get(order.source_ref or "")
            if fault is not None and fault.resolved_ns is not None:
                out[order.ref] = fault.resolved_ns
        return out

    async def _back_online(self, offline: Mapping[str, int], now: int) -> dict[str, int]:
        """{ref: when its point came back} for open long-offline orders whose point is online."""
        if self.cfg.auto_close == "off":
            return {}
        out = {}
        for order in self._open.values():
            if order.source is Source.LONG_OFFLINE and order.close_proposed_ns is None and order.devices[0] not in offline:
                device_id = order.devices[0]
                ts = await self._db.execute(lambda conn: back_online_ns(conn, device_id, self._probes))
                out[order.ref] = ts if ts is not None else now
        return out

    def _auto_close(self, batch: _Batch, cleared: Mapping[str, int], report: dict[str, list[str]]) -> None:
        """Restore (if nobody did) and close or propose closing the orders in `cleared`."""
        for ref, ts in cleared.items():
            order = batch.order(ref)
            stamps = [order.reported_ns, order.acknowledged_ns, order.arrived_ns, order.restored_ns,
                      *(r.ts_ns for r in order.replacements)]
            # When it cleared, but not after now, nor before the order's stamps: after the wall
            # clock stepped back those may lie after now, and they win.
            ts = max(min(ts, batch.now), *(s for s in stamps if s is not None))
            steps: list[tuple[Action, int, str, dict[str, Any]]] = []
            if order.restored_ns is None:
                resolution = Resolution.ON_SITE if order.arrived_ns is not None or order.replacements else Resolution.REMOTE
                steps.append((Action.RESTORED, ts, FLEETMON,
                              {"resolution": resolution.value, "auto": True, "source_ref": order.source_ref}))
            reason = "point back online" if order.source is Source.LONG_OFFLINE else "fault resolved"
            if self.cfg.auto_close == "close":
                steps.append((Action.CLOSED, ts, FLEETMON, {"cancelled": False, "note": reason}))
            else:
                steps.append((Action.CLOSE_PROPOSED, ts, FLEETMON, {"reason": reason}))
            try:
                batch.add(ref, steps, now_ns=max(ts, batch.now))
            except WorkOrderError:  # a bug: the steps were built to be valid
                log.exception("work order %s: automatic close refused", ref)
                continue
            if order.restored_ns is None:
                report["restored"].append(ref)
            report["closed" if self.cfg.auto_close == "close" else "close_proposed"].append(ref)

    def _escalate(self, batch: _Batch, offline: Mapping[str, int], report: dict[str, list[str]]) -> None:
        groups: dict[str, list[LongOffline]] = defaultdict(list)
        for item in self._long_offline(offline, batch.now):
            if item.excluded or item.escalated:
                continue
            if item.order_ref is not None:
                groups[item.order_ref].append(item)
                continue
            w = self._texts.w
            title = w["offline"].format(days=f"{self.long_offline_days:g}", what=self._texts.devices(
                [item.device_id], self.inventory.devices))
            ref = self._open_order(batch, batch.now, FLEETMON, (item.device_id,), self.cfg.long_offline.severity,
                                   Source.LONG_OFFLINE, item.device_id, title, item.since_ns, None)
            report["opened"].append(ref)
            groups[ref].append(item)
        for ref, items in groups.items():
            payload = {"devices": [i.device_id for i in items], "since_ns": min(i.since_ns for i in items),
                       "days": round(max(i.days for i in items), 3)}
            order = batch.add(ref, [(Action.ESCALATED, batch.now, FLEETMON, payload)])
            fault = self._texts.offline_notice(order, items, self.long_offline_days, self.inventory.devices, batch.now)
            batch.notices += [(route, EventKind.SLA_BREACHED, fault) for route in self.cfg.routes]
            report["escalated"].append(ref)

    def _clock_notices(self, batch: _Batch) -> None:
        """A warning when a clock enters its warning share, a breach when it passes its deadline:
        once each per order and clock (a clock found already breached gets only the breach); none
        for an order whose cause is excluded (not assessed)."""
        for ref in list(self._open) + [r for r in batch.orders if r not in self._open]:
            order = batch.orders.get(ref) or self._open[ref]
            if not order.is_open or (order.cause is not None and order.cause.excluded):
                continue
            elapsed = None if batch.mono is None else self._elapsed(order, batch.now, batch.mono)
            for s in self.sla.evaluate(order, batch.now, elapsed_ns=elapsed):
                level = {ClockState.BREACHED: "breached", ClockState.WARNING: "warning"}.get(s.state)
                if level is None or (s.clock.value, "breached") in order.notices or (s.clock.value, level) in order.notices:
                    continue
                payload = {"clock": s.clock.value, "level": level, "deadline_ns": s.deadline_ns,
                           "percent_used": round(s.percent_used, 1)}
                # Stamped now, but not before the report: the wall clock may have stepped back
                # since (the countdown itself runs on the monotonic clock).
                ts = max(batch.now, order.reported_ns)
                order = batch.add(ref, [(Action.SLA_NOTICE, ts, FLEETMON, payload)], now_ns=ts)
                fault = self._texts.clock_notice(order, s, self.inventory.devices, batch.now)
                kind = EventKind.SLA_BREACHED if level == "breached" else EventKind.SLA_WARNING
                batch.notices += [(route, kind, fault) for route in self.cfg.routes]

    # -- plumbing -------------------------------------------------------------------------------

    def _batch(self, now_ns: int | None = None) -> _Batch:
        """A batch at now (both clocks), or at the wall instant `now_ns` given by hand."""
        if now_ns is not None:
            return _Batch(self._histories, now_ns, None)
        return _Batch(self._histories, self._clock(), self._mono())

    def _elapsed(self, order: WorkOrder, now_ns: int, mono_ns: int) -> int | None:
        """Time since the order's report on the monotonic clock (ns), for an open order; None
        for a closed one (its clocks have stopped, or it has none). The report's moment on that
        clock is kept from the first time it is asked (monitor.core.clock.place)."""
        if order.ref not in self._open and order.ref not in self._reported_mono:
            return None
        start = self._reported_mono.get(order.ref)
        if start is None:
            start = self._reported_mono[order.ref] = place(order.reported_ns, now_ns, mono_ns)
        return mono_ns - start

    def _devices(self, devices: Iterable[str]) -> tuple[str, ...]:
        ids = tuple(dict.fromkeys(str(d).strip() for d in devices))
        if not ids:
            raise WorkOrderError("a work order needs at least one device")
        unknown = [d for d in ids if d not in self.inventory.devices]
        if unknown:
            raise WorkOrderError(f"unknown device: {', '.join(unknown)} (not in the point list)")
        return ids

    def _newest_open_for(self, device_id: str) -> str | None:
        refs = [o for o in self.open_orders() if device_id in o.devices]
        return refs[-1].ref if refs else None

    async def _require_open(self, ref: str) -> WorkOrder:
        """The open order `ref`. Raises UnknownOrderError, OrderStateError (closed)."""
        if ref in self._open:
            return self._open[ref]
        order = await self.get(ref)  # raises UnknownOrderError
        raise OrderStateError(f"{ref} is closed ({order.closed_by}): nothing more is recorded on it")

    async def _act(self, ref: str, action: Action, by: str, ts_ns: int | None, payload: dict[str, Any]) -> WorkOrder:
        by = check_by(by)
        async with self._lock:
            await self._require_open(ref)
            batch = self._batch()
            order = batch.add(ref, [(action, batch.now if ts_ns is None else ts_ns, by, payload)])
            await self._commit(batch)
        return order

    def _open_order(
        self, batch: _Batch, ts_ns: int, by: str, devices: Sequence[str], severity: Severity, source: Source,
        source_ref: str | None, title: str, fault_start_ns: int | None, assignee: str | None,
    ) -> str:
        if not devices:
            raise WorkOrderError("a work order needs at least one device")
        day = datetime.fromtimestamp(ts_ns // _NS, UTC).astimezone(self._tz).strftime("%Y%m%d")
        seq = self._sequences.get(day, 0) + 1
        ref = f"{self.cfg.prefix}-{day}-{seq:04d}"
        kind = self.inventory.devices[devices[0]].kind
        payload = {
            "devices": list(devices), "kind": kind.value, "severity": Severity(severity).value, "source": source.value,
            "source_ref": source_ref, "title": title, "fault_start_ns": fault_start_ns,
            "assignee": check_by(assignee, "assignee") if assignee is not None else None,
        }
        batch.open(ref, ts_ns, by, payload)
        self._sequences[day] = seq
        return ref

    async def _commit(self, batch: _Batch) -> None:
        """Write the batch in one transaction with its notices' outbox rows, then adopt it."""
        if not batch.new:
            return
        new, registry, notices, now = batch.new, batch.registry, batch.notices, batch.now

        def op(conn: sqlite3.Connection) -> list[int]:
            with conn:
                conn.execute("BEGIN")
                for ref, opened_ns, source, source_ref, devices in registry:
                    conn.execute("INSERT INTO workorders (ref, opened_ns, source, source_ref) VALUES (?,?,?,?)",
                                 (ref, opened_ns, source, source_ref))
                    conn.executemany("INSERT INTO workorder_devices (device_id, ref) VALUES (?,?)",
                                     [(d, ref) for d in devices])
                ids = [
                    int(conn.execute(
                        "INSERT INTO workorder_events (ref, action, ts_ns, recorded_ns, by, payload) VALUES (?,?,?,?,?,?)",
                        (e.ref, e.action.value, e.ts_ns, e.recorded_ns, e.by,
                         json.dumps(dict(e.payload), ensure_ascii=False, separators=(",", ":"))),
                    ).lastrowid)
                    for e in new
                ]
                for route, kind, fault in notices:
                    outbox.enqueue(conn, route, kind, now, fault)
            return ids

        try:
            ids = await self._db.execute(op)
        except sqlite3.Error:
            # Memory still holds the orders as they were: the batch is dropped with the transaction.
            for ref, *_ in registry:
                day, seq = ref.rsplit("-", 2)[1:]
                if self._sequences.get(day) == int(seq):
                    self._sequences[day] = int(seq) - 1
            raise
        stored = {id(e): i for e, i in zip(new, ids)}
        for ref, history in batch.histories.items():
            history = [e._replace(id=stored[id(e)]) if id(e) in stored else e for e in history]
            order = batch.orders[ref]
            if order.is_open:
                self._histories[ref], self._open[ref] = history, order
            else:
                self._histories.pop(ref, None)
                self._open.pop(ref, None)
                self._reported_mono.pop(ref, None)
        for e in new:
            if e.action is Action.OPENED and batch.mono is not None and e.ref in self._open:
                self._reported_mono[e.ref] = place(e.ts_ns, now, batch.mono)
            if e.action is Action.OPENED and e.payload["source"] == Source.FAULT:
                self._fault_ids.add(e.payload["source_ref"])
            elif e.action in (Action.REPLACED, Action.REPLACEMENT_PROPOSED):
                self._serials.add((e.payload["device"], e.payload["new_serial"]))
        if notices and self._wake is not None:
            self._wake()


_ACTIONS = {a.value: a for a in Action}
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _histories(rows: Iterable[tuple[Any, ...]]) -> dict[str, list[OrderEvent]]:
    """Stored rows (ordered by ref, id) → {ref: events}. Payloads written alike (empty ones of
    acknowledged and arrived, {"assignee":"张工"}, {"resolution":"remote"} …) are decoded once
    and share one read-only mapping: a quarter has thousands of each."""
    out: dict[str, list[OrderEvent]] = {}
    decoded: dict[str, Mapping[str, Any]] = {"{}": _EMPTY}
    loads, actions = json.loads, _ACTIONS
    for row_id, ref, action, ts_ns, recorded_ns, by, payload in rows:
        history = out.get(ref)
        if history is None:
            history = out[ref] = []
        mapping = decoded.get(payload)
        if mapping is None:
            mapping = decoded[payload] = MappingProxyType(loads(payload))
        history.append(OrderEvent(row_id, ref, actions[action], ts_ns, recorded_ns, by, mapping))
    return out


def _text(text: str | None, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise WorkOrderError(f"{what}: missing")
    if len(text) > MAX_TEXT:
        raise WorkOrderError(f"{what}: at most {MAX_TEXT} characters")
    return text


WRITER = "workorders"  # its name in the state DB's WriteHealth


class WorkOrderService:
    """Runs `book.tick()` every `cfg.tick_s` seconds and at once after a fault fires or
    resolves. `async with WorkOrderService(book) as service:` then
    `fault_book.listeners.append(service.on_fault_event)`."""

    def __init__(self, book: WorkOrderBook) -> None:
        self.book = book
        # A failed tick (a bug or the database) is logged and tried again next tick.
        self._loop = PeriodicTask(self._tick, lambda: book.cfg.tick_s, name="workorders", log=log,
                                  what="work-order tick")
        self._backoff = Backoff()

    async def _tick(self) -> None:
        """One tick; a state DB that takes no writes is reported to its WriteHealth (the book's
        memory is unchanged by a batch that was not stored: the next tick makes it again, after
        a backoff rather than a whole tick_s), not logged as a bug."""
        health = self.book._db.health
        try:
            await self.book.tick()
        except sqlite3.Error as exc:
            health.failed(WRITER, exc)
            asyncio.get_running_loop().call_later(self._backoff.next_s(), self._loop.wake)
            return
        self._backoff.reset()
        health.ok(WRITER)

    def on_fault_event(self, fault: Fault, kind: EventKind, ts_ns: int) -> None:
        if kind in (EventKind.FIRING, EventKind.RESOLVED):
            self._loop.wake()

    async def __aenter__(self) -> Self:
        await self._loop.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._loop.__aexit__(*exc_info)
