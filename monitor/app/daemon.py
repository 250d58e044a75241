"""The fleetmon daemon: wiring and lifecycle. The data flow itself is monitor.app.pipeline.

Every component goes on one AsyncExitStack, started in dependency order — state DB (the point
list's statuses recorded, the session), InfluxDB sink, the state DB's recorder, alerting
(rules, faults, routes, outbox), work orders (their book and service, the serial watch),
probes and their trackers, the pipeline, the probe agents' hub, trap receiver, reports (a read-only connection, the
schedule), HTTP API, schedulers — and stopped in reverse: schedulers are cancelled and awaited
first (nothing new flows in), the API closes, a scheduled report being made is cancelled (its
rendering children killed), the trap receiver closes, the pipeline evaluates no more, probes close, work orders stop (a last
proposal written), alerting stops, the last transitions are stored, the sink flushes what is
pending (bounded), the session is closed.

A reload (SIGHUP, monitor.app.supervisor) stops this daemon and starts a new one on the new
config and point list, so everything done at start, the statuses recorded included, is done
after every successful reload too; a new one that cannot start is stopped again and the old
config started anew.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Callable, Mapping

from monitor.app import malloc, version
from monitor.app.agent_config import agent_devices, ownership, points_digest, probes_digest
from monitor.app.agent_hub import AgentHub, Expected
from monitor.app.api import ApiContext, ApiServer
from monitor.app.config import FleetmonConfig
from monitor.app.pipeline import Pipeline, Running
from monitor.app.reloads import ReloadOutcome
from monitor.app.reports import ReportMaker
from monitor.app.scheduler import Scheduler
from monitor.app.selfmetrics import SelfMetrics
from monitor.app.snapshot import Snapshot
from monitor.assess.assessment import Assessment
from monitor.assess.records import record_inventory_statuses
from monitor.assess.serials import SerialWatch
from monitor.assess.orders import Source
from monitor.assess.workorders import WorkOrderBook, WorkOrderService
from monitor.core.config_base import ConfigError
from monitor.core.model import Device, Status
from monitor.fleet.inventory import Inventory
from monitor.metrics.results import InfluxResults
from monitor.metrics.sink import InfluxSink
from monitor.metrics.writer import MetricsWriter, OpenOrder
from monitor.reports.config import wecom_routes
from monitor.reports.service import ReportService
from monitor.state.availability import PICTURE, PICTURE_PROBE
from monitor.state.db import StateDB, StateDBError
from monitor.state.recorder import Recorder
from monitor.state.writes import cause_of
from monitor.state.tracker import StateTracker
from probes import REGISTRY
from probes.traps import TrapReceiver
from rules.alerting.service import Alerting

log = logging.getLogger("fleetmon.daemon")


class StartupError(RuntimeError):
    """A component could not start; the message says which and why."""


def depth_first(inventory: Inventory) -> list[Device]:
    """Every device, each parent immediately followed by everything behind it (load order
    among siblings)."""
    children: dict[str | None, list[Device]] = {}
    for device in inventory.devices.values():
        parent = device.parent if device.parent in inventory.devices else None
        children.setdefault(parent, []).append(device)
    out: list[Device] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        device = stack.pop()
        out.append(device)
        stack.extend(reversed(children.get(device.id, [])))
    return out


GC_YOUNG = 50_000
"""Allocations between two collections of the youngest generation while the daemon runs (default 700)."""
TRIM_DELAY_S = 3.0
"""Seconds from a cycle's snapshot to malloc.trim(): by then the previous snapshot's tables are
freed, the rules have evaluated the cycle and the InfluxDB sink has sent its lines
(influxdb.flush_interval_s, 1 s by default), their buffers freed as well."""


class Daemon:
    """Monitors `inventory` as configured until `stop` is set.

    `on_snapshot` is called after each cycle with a Snapshot (from the event loop; it must not
    block). `reload` gives the latest reload's outcome for /healthz. Each component gets its
    own config section only. `started` is set once every component runs; `probe_intervals`
    then holds each running probe's interval (s).
    """

    def __init__(
        self,
        cfg: FleetmonConfig,
        inventory: Inventory,
        *,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        reload: Callable[[], ReloadOutcome | None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.inventory = inventory
        self._on_snapshot = on_snapshot
        self._trim: asyncio.TimerHandle | None = None  # malloc.trim() due after a cycle
        self._reload = reload
        self.started = asyncio.Event()
        self.started_ns = 0
        self.probe_intervals: dict[str, float] = {}
        self.pipeline: Pipeline | None = None
        self.api: ApiServer | None = None
        self.traps: TrapReceiver | None = None
        self.agents: AgentHub | None = None
        self._alerting: Alerting | None = None
        self.workorders: WorkOrderBook | None = None
        self.reports: ReportService | None = None
        self.assessment: Assessment | None = None
        self.devices: tuple[Device, ...] = tuple(inventory.devices.values())
        # Devices that are probed at all (removed points keep their history but are not polled),
        # each parent right before the devices behind it: a switch that dies is then seen dead
        # before its cameras are, not seconds after them.
        self.probed: tuple[Device, ...] = tuple(
            d for d in depth_first(inventory) if d.status is not Status.REMOVED and d.address is not None
        )

    def _cycle_done(self, snapshot: Snapshot) -> None:
        """After each cycle's snapshot: the caller's `on_snapshot`, and TRIM_DELAY_S later
        malloc's free pages given back (monitor.app.malloc), once however many cycles end meanwhile."""
        if self._on_snapshot is not None:
            self._on_snapshot(snapshot)
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        malloc.trim()

    def _cancel_trim(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest cycle's Snapshot; None before the first one."""
        return self.pipeline.snapshot if self.pipeline is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        """Monitor until `stop` is set, then shut down in order.

        Raises StartupError when a component cannot start (state DB unusable, no permission for
        ICMP sockets …); whatever had started is stopped again first."""
        async with AsyncExitStack() as stack:
            try:
                schedulers = await self._start(stack)
            except (StateDBError, PermissionError, OSError) as exc:
                raise StartupError(str(exc)) from exc
            except ConfigError as exc:  # agents' devices: checked at load, unless handed a config by hand
                raise StartupError("; ".join(exc.messages)) from exc
            self.started.set()
            log.info(
                "fleetmon started: %d devices (%d probed), probes %s",
                len(self.devices), len(self.probed), ", ".join(s.probe.name for s in schedulers) or "none",
            )
            # What exists now (inventory, config, modules: millions of objects at 100,000 points)
            # lives as long as this daemon: out of the cyclic collector's sight, a full
            # collection walks only what the cycles make. And the youngest generation is
            # collected every GC_YOUNG allocations, not 700: a cycle of 100,000 probes
            # allocates millions of short-lived objects (tasks, futures, timers, results), and
            # with the default each cycle set off several full collections over every live
            # result (py-spy: ~12 % of the daemon's CPU at 100,000 devices, inside allocations).
            # Both undone when stopping, so that a reload's old daemon is collected as usual.
            thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(GC_YOUNG, *thresholds[1:])
            try:
                await stop.wait()
            finally:
                gc.set_threshold(*thresholds)
                gc.unfreeze()
                log.info("fleetmon stopping")
        log.info("fleetmon stopped")

    async def _start(self, stack: AsyncExitStack) -> list[Scheduler]:
        cfg = self.cfg
        self.started_ns = time.time_ns()
        db = await stack.enter_async_context(StateDB(cfg.state.database))
        await self._record_statuses(db)
        await db.start_session(len(self.probed))
        stack.push_async_callback(_end_session, db)
        sink = None
        if cfg.influxdb.enabled:
            spool_dir = cfg.influxdb.spool_dir or cfg.state.database.parent / "influx-spool"
            sink = await stack.enter_async_context(InfluxSink(cfg.influxdb, spool_dir))
        recorder = await stack.enter_async_context(Recorder(db))
        self._alerting = alerting = await stack.enter_async_context(Alerting(
            self.inventory, db, rules=cfg.rules, flapping=cfg.flapping, maintenance=cfg.maintenance,
            notify=cfg.notify, language=cfg.language, timezone=cfg.timezone,
        ))
        serials = await self._start_workorders(stack, db, alerting)
        owner = ownership(cfg.mqtt_agents, self.inventory, cfg.inventory.source) if cfg.mqtt_agents.enabled else {}
        running = await self._start_probes(stack, db, owner)
        self.pipeline = pipeline = Pipeline(
            self.inventory, running, alerting=alerting, recorder=recorder,
            metrics=MetricsWriter(sink, state_refresh_cycles=cfg.influxdb.state_refresh_cycles) if sink is not None else None,
            online_requires=cfg.availability.online_requires, on_snapshot=self._cycle_done,
            listeners=[serials], open_orders=self._open_orders, picture=await self._picture(db, running),
        )
        stack.callback(pipeline.close)
        stack.callback(self._cancel_trim)
        if cfg.mqtt_agents.enabled:
            self.agents = await stack.enter_async_context(AgentHub(
                cfg.mqtt_agents, self._expected_agents(running), pipeline.on_result, pipeline.blind,
                pipeline.resume, language=cfg.language,
            ))
            alerting.sources.append(self.agents.conditions)
        if cfg.traps.enabled:
            addresses = {d.address: d.id for d in self.devices if d.address is not None}
            self.traps = await stack.enter_async_context(TrapReceiver(cfg.traps, addresses, pipeline.on_trap))
        schedulers = [
            Scheduler(
                r.probe,
                r.local,
                interval_s=getattr(cfg.probes, name).interval_s,
                spread=cfg.scheduler.spread,
                max_concurrency=cfg.scheduler.max_concurrency,
                on_result=pipeline.on_result,
                on_cycle=pipeline.on_cycle,
                confirm=getattr(getattr(cfg.probes, name), "confirm", None),
                confirm_skip=r.tracker.failing,
            )
            for name, r in running.items()
        ]
        reports = await self._start_reports(stack)
        self.probe_intervals = {s.probe.name: s.interval_s for s in schedulers}
        if cfg.api.enabled:
            ctx = ApiContext(
                inventory=self.inventory, snapshot=lambda: pipeline.snapshot, faults=alerting.faults,
                maintenance=alerting.maintenance, token=cfg.api.token, language=cfg.language,
                timezone=cfg.timezone, started_ns=time.time_ns(), started_mono_ns=time.monotonic_ns(),
                cycle_interval_s=min((s.interval_s for s in schedulers), default=60.0),
                status_token=cfg.api.status_token, people=tuple(cfg.api.people),
                probe_intervals={s.probe.name: s.interval_s for s in schedulers},
                workorders=self.workorders, assessment=self.assessment, reports=reports, statedb=db.health,
                metrics=SelfMetrics(version=version(), schedulers=schedulers, sink=sink, outbox=alerting.outbox,
                                    routes=[r.name for r in cfg.notify.routes], faults=alerting.faults,
                                    statedb=db.health, agents=self.agents).exposition,
                agents=self.agents.views if self.agents is not None else None,
                reload=self._reload, thumbnails=_thumbnails(cfg),
            )
            self.api = await stack.enter_async_context(ApiServer(cfg.api, ctx))
        for scheduler in schedulers:
            task = asyncio.create_task(scheduler.run(), name=f"scheduler-{scheduler.probe.name}")
            stack.push_async_callback(_cancel, task)
        return schedulers

    def _open_orders(self, now_ns: int) -> list[OpenOrder]:
        """The open work orders for the command hall's wall (`work_order_open`), the most urgent
        first: by the deadline of the next running SLA clock, orders without one last."""
        book = self.workorders
        if book is None:
            return []
        rows = []
        for order in book.open_orders():
            running = [c for c in book.countdown(order, now_ns) if c.stopped_ns is None]
            clock = min(running, key=lambda c: c.deadline_ns, default=None)
            device_id = order.devices[0] if order.devices else ""
            rows.append(OpenOrder(
                ref=order.ref, fault_id=order.source_ref if order.source is Source.FAULT and order.source_ref else "",
                severity=order.severity.value, title=order.title, device_id=device_id,
                device=self.inventory.devices.get(device_id), owner=order.assignee or "",
                sla_clock=clock.label if clock is not None else "",
                sla_deadline_ns=clock.deadline_ns if clock is not None else None,
                sla_remaining_s=clock.remaining_s if clock is not None else None,
            ))
        return sorted(rows, key=lambda r: (r.sla_deadline_ns is None, r.sla_deadline_ns or 0))

    async def _record_statuses(self, db: StateDB) -> None:
        """Store the point list's statuses (延建/拆除) that changed since the last start: the
        assessment leaves a point out for exactly the time it had such a status. A clock set
        back is logged, not fatal: monitoring goes on, the statuses wait for a later start."""
        try:
            changes = await record_inventory_statuses(db, self.inventory, time.time_ns())
        except ValueError as exc:
            log.error("point statuses not recorded: %s", exc)
            return
        if changes:
            log.info("point statuses recorded: %d point(s) new or changed", len(changes))

    async def _start_workorders(self, stack: AsyncExitStack, db: StateDB, alerting: Alerting) -> SerialWatch:
        """The work-order book (orders for firing faults, SLA notices through the alerting
        outbox), its service (ticks, woken by fault events) and the serial watch (replacement
        proposals from the ONVIF serials), and the assessment that reads them."""
        cfg = self.cfg
        book = await WorkOrderBook.load(
            db, self.inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone),
            faults=alerting.faults, known_routes=[r.name for r in cfg.notify.routes], language=cfg.language,
            timezone=cfg.timezone, mono=time.monotonic_ns, wake=alerting.outbox.wake,
        )
        service = await stack.enter_async_context(WorkOrderService(book))
        alerting.faults.listeners.append(service.on_fault_event)
        self.workorders = book
        self.assessment = Assessment(
            db, self.inventory, cfg.assessment, book, timezone=cfg.timezone,
            online_requires=cfg.availability.online_requires,
            results=InfluxResults(cfg.influxdb) if cfg.influxdb.enabled else None,
        )
        return await stack.enter_async_context(SerialWatch(book, self.inventory))

    async def _start_reports(self, stack: AsyncExitStack) -> ReportMaker:
        """Reports (monitor.app.reports): their own read-only connection to the state database,
        so that the seconds a quarterly report reads never hold up the daemon's writer; the
        maker the API uses; and the schedule (ReportService) when reports.schedule lists any."""
        cfg = self.cfg
        db = await stack.enter_async_context(StateDB(cfg.state.database, read_only=True))
        book = await WorkOrderBook.load(db, self.inventory, cfg.assessment.workorders,
                                        cfg.assessment.clocks(cfg.timezone), language=cfg.language,
                                        timezone=cfg.timezone)
        assessment = Assessment(db, self.inventory, cfg.assessment, book, timezone=cfg.timezone,
                                online_requires=cfg.availability.online_requires)
        maker = ReportMaker(cfg, assessment)
        if cfg.reports.schedule:
            self.reports = await stack.enter_async_context(ReportService(
                cfg.reports, cfg.timezone, maker.make, wecom=wecom_routes(cfg.reports, cfg.notify.routes)))
        return maker

    async def _picture(self, db: StateDB, running: Mapping[str, Running]) -> StateTracker | None:
        """The picture basis' tracker (画面正常, monitor.state.availability.PICTURE) when the frame
        check runs with vqd, resuming its saved states like the probes' trackers; else None."""
        if PICTURE_PROBE not in running or not self.cfg.probes.rtsp_frame.vqd.enabled:  # type: ignore[attr-defined]
            return None
        return StateTracker(self.inventory, PICTURE, down_after=self.cfg.state.down_after,
                            up_after=self.cfg.state.up_after, initial=await db.load_states(PICTURE))

    async def _start_probes(self, stack: AsyncExitStack, db: StateDB, owner: dict[str, str]) -> dict[str, Running]:
        """Every enabled probe type that polls a device, entered, with its tracker resuming the
        states saved in `db`. `owner`: device id → the probe agent that probes it with the
        probes of its entry (mqtt_agents): kept in the tracker, never probed here; a probe all
        of whose devices are agents' is not entered (its scheduler runs empty cycles, which
        settle the tracker and evaluate the rules)."""
        running: dict[str, Running] = {}
        agent_probes = {a.name: frozenset(a.probes) for a in self.cfg.mqtt_agents.agents}
        for name, probe_cls in REGISTRY.items():
            probe_cfg = getattr(self.cfg.probes, name)
            if not probe_cfg.enabled:
                continue
            probe = probe_cls(probe_cfg)
            polled = tuple(d for d in self.probed if probe.wants(d))
            remote = frozenset(d.id for d in polled if d.id in owner and name in agent_probes[owner[d.id]])
            if not polled:
                # Not entered: a probe without devices (no credentials configured, say) costs
                # neither its library's memory nor a thread.
                log.info("probe %s enabled but polls no device: not started", name)
                continue
            if len(remote) < len(polled):
                probe = await stack.enter_async_context(probe)
            tracker = StateTracker(
                self.inventory,
                name,
                down_after=self.cfg.state.down_after,
                up_after=self.cfg.state.up_after,
                initial=await db.load_states(name),
            )
            running[name] = Running(probe, tracker, polled, probe_cfg.interval_s, remote)
        return running

    def _expected_agents(self, running: dict[str, Running]) -> dict[str, Expected]:
        """Each agent's devices per probe (those of its probes the central polls them with) and
        the digests its hello must carry."""
        out = {}
        for spec in self.cfg.mqtt_agents.agents:
            mine = agent_devices(spec.select, self.inventory)
            ids = {d.id for d in mine}
            devices = {
                p: tuple(d.id for d in running[p].devices if d.id in ids and d.id in running[p].remote)
                for p in spec.probes if p in running
            }
            out[spec.name] = Expected(
                {p: v for p, v in devices.items() if v}, points_digest(mine),
                probes_digest(self.cfg.probes, spec.probes), tuple(spec.probes),
            )
        return out


async def _end_session(db: StateDB) -> None:
    """Close the session; a state DB that takes no writes leaves it open (seen as a crash at the
    last heartbeat), which is logged, not raised: the daemon still stops cleanly."""
    try:
        await db.end_session()
    except sqlite3.Error as exc:
        log.error("session end not stored: %s", cause_of(exc))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _thumbnails(cfg: FleetmonConfig) -> Path | None:
    """The frame check's thumbnail folder the API serves; None unless vqd runs (a folder left
    from an earlier run is not served: its pictures are no longer refreshed)."""
    frame = cfg.probes.rtsp_frame  # type: ignore[attr-defined]
    return frame.thumbnail_dir if frame.enabled and frame.vqd.enabled else None
