"""The fleetmon daemon: wires inventory → scheduler → probes → state tracker / metrics writer.

Lifecycle (DESIGN.md): start in dependency order — state DB, InfluxDB sink, probes,
trackers, schedulers — and stop in reverse: schedulers are cancelled and awaited, the last
transitions are stored, the sink flushes what is pending (bounded), the session is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import AsyncExitStack
from typing import Callable

from monitor.app.api import ApiContext, ApiServer
from monitor.state.availability import PROBES as BASIS_PROBES, Basis, combine
from monitor.app.config import FleetmonConfig
from monitor.fleet.inventory import Inventory
from monitor.core.model import Device, Status
from monitor.state.online_rate import GroupRate, online_rates
from monitor.app.scheduler import CycleReport, Scheduler
from monitor.app.snapshot import Snapshot
from monitor.state.tracker import State, StateTracker, Transition
from monitor.state.db import StateDB, StateDBError
from monitor.metrics.sink import InfluxSink
from probes import REGISTRY
from probes.base import Probe, ProbeResult
from probes.traps import TRAP_MEASUREMENT, TrapEvent, TrapReceiver, event_fields
from rules.engine import View
from rules.model import EventKind, Fault, FaultState, Severity
from rules.alerting.service import Alerting

log = logging.getLogger("fleetmon.daemon")

class StartupError(RuntimeError):
    """A component could not start; the message says which and why."""


# Delay of a mid-cycle rules evaluation after a device went down or came back, seconds.
EARLY_EVALUATION_S = 1.0


def _depth_first(inventory: Inventory) -> list[Device]:
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


# The basis (monitor.state.availability) each probe's cycle settles; probes of none (snmp) write no
# device_state of their own.
BASIS_OF_PROBE = {probe: basis for basis, probes in BASIS_PROBES.items() for probe in probes}


STREAM_URI_USERS = ("rtsp", "rtsp_frame")  # probes with learn_stream_uri (probes/rtsp.py)


def _tags(device: Device) -> dict[str, str]:
    return {"device_id": device.id, "kind": device.kind.value, "site": device.site, "region": device.region}


class Daemon:
    """Monitors `inventory` as configured until `stop` is set.

    `on_snapshot` is called after each cycle with a Snapshot (from the event loop; it must not
    block).
    """

    def __init__(
        self,
        cfg: FleetmonConfig,
        inventory: Inventory,
        *,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.inventory = inventory
        self._on_snapshot = on_snapshot
        self._sink: InfluxSink | None = None
        self._alerting: Alerting | None = None
        self.snapshot: Snapshot | None = None  # the latest cycle's
        self.api: ApiServer | None = None
        self.traps: TrapReceiver | None = None
        self._trackers: dict[str, StateTracker] = {}
        self._latest: dict[str, dict[str, ProbeResult]] = {}
        self._polled: dict[str, frozenset[str]] = {}  # probe → ids of the devices it polls
        self._probes: dict[str, Probe] = {}
        self._cycles: dict[str, CycleReport] = {}  # each probe's latest finished cycle
        # Work for the state-DB writer task; None asks it to finish.
        self._pending: asyncio.Queue[list[Transition] | None] = asyncio.Queue()
        self._heartbeat_due = False
        # (what, root cause id) → devices, logged once per cycle by _log_summary.
        self._summary: Counter[tuple[str, str]] = Counter()
        self.devices: tuple[Device, ...] = tuple(inventory.devices.values())
        # Devices that are probed at all (removed points keep their history but are not polled),
        # each parent right before the devices behind it: a switch that dies is then seen dead
        # before its cameras are, not seconds after them.
        self.probed: tuple[Device, ...] = tuple(
            d for d in _depth_first(inventory) if d.status is not Status.REMOVED and d.address is not None
        )
        self._early: asyncio.TimerHandle | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Monitor until `stop` is set, then shut down in order.

        Raises StartupError when a component cannot start (state DB unusable, no permission for
        ICMP sockets …); whatever had started is stopped again first."""
        async with AsyncExitStack() as stack:
            try:
                schedulers = await self._start(stack)
            except (StateDBError, PermissionError, OSError) as exc:
                raise StartupError(str(exc)) from exc
            log.info(
                "fleetmon started: %d devices (%d probed), probes %s",
                len(self.devices), len(self.probed), ", ".join(s.probe.name for s in schedulers) or "none",
            )
            tasks = [asyncio.create_task(s.run(), name=f"scheduler-{s.probe.name}") for s in schedulers]
            try:
                await stop.wait()
            finally:
                log.info("fleetmon stopping")
                if self._early is not None:
                    self._early.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        log.info("fleetmon stopped")

    async def _start(self, stack: AsyncExitStack) -> list[Scheduler]:
        db = await stack.enter_async_context(StateDB(self.cfg.state.database))
        await db.start_session(len(self.probed))
        stack.push_async_callback(db.end_session)
        if self.cfg.influxdb.enabled:
            self._sink = await stack.enter_async_context(InfluxSink(self.cfg.influxdb))
        writer = asyncio.create_task(self._store_transitions(db), name="statedb-writer")
        stack.push_async_callback(self._stop_writer, writer)
        self._alerting = alerting = await stack.enter_async_context(Alerting(
            self.inventory, db, rules=self.cfg.rules, flapping=self.cfg.flapping, maintenance=self.cfg.maintenance,
            notify=self.cfg.notify, language=self.cfg.language, timezone=self.cfg.timezone,
        ))
        if self._sink is not None:
            alerting.faults.listeners.append(self._write_fault_event)

        if self.cfg.traps.enabled:
            addresses = {d.address: d.id for d in self.devices if d.address is not None}
            self.traps = await stack.enter_async_context(TrapReceiver(self.cfg.traps, addresses, self._on_trap))

        schedulers = []
        for name, probe_cls in REGISTRY.items():
            probe_cfg = getattr(self.cfg.probes, name)
            if not probe_cfg.enabled:
                continue
            probe = probe_cls(probe_cfg)
            polled = [d for d in self.probed if probe.wants(d)]
            if not polled:
                # Not entered: a probe without devices (no credentials configured, say) costs
                # neither its library's memory nor a thread.
                log.info("probe %s enabled but polls no device: not started", name)
                continue
            self._probes[name] = await stack.enter_async_context(probe)
            self._trackers[name] = StateTracker(
                self.inventory,
                name,
                down_after=self.cfg.state.down_after,
                up_after=self.cfg.state.up_after,
                initial=await db.load_states(name),
            )
            self._latest[name] = {}
            self._polled[name] = frozenset(d.id for d in polled)
            schedulers.append(
                Scheduler(
                    probe,
                    polled,
                    interval_s=probe_cfg.interval_s,
                    spread=self.cfg.scheduler.spread,
                    max_concurrency=self.cfg.scheduler.max_concurrency,
                    on_result=self._on_result,
                    on_cycle=self._on_cycle,
                )
            )
        if self.cfg.api.enabled:
            ctx = ApiContext(
                inventory=self.inventory, snapshot=lambda: self.snapshot, faults=alerting.faults,
                maintenance=alerting.maintenance, token=self.cfg.api.token, language=self.cfg.language,
                timezone=self.cfg.timezone, started_ns=time.time_ns(),
                cycle_interval_s=min((s.interval_s for s in schedulers), default=60.0),
                status_token=self.cfg.api.status_token,
                probe_intervals={s.probe.name: s.interval_s for s in schedulers},
            )
            self.api = await stack.enter_async_context(ApiServer(self.cfg.api, ctx))
        return schedulers

    # -- callbacks from the schedulers (event loop, must not block) ----------------------------

    def _on_result(self, result: ProbeResult) -> None:
        device = self.inventory.devices[result.device_id]
        self._latest[result.probe][result.device_id] = result
        assert self._alerting is not None
        self._alerting.observe(result)
        if self._sink is not None:
            tags = _tags(device)
            self._sink.write(result.probe, tags, result.fields, result.ts_ns)
            for series in result.series:
                self._sink.write(series.measurement, {**tags, **series.tags}, series.fields, result.ts_ns)
        uri = result.fields.get("stream_uri") if result.probe == "onvif" else None
        if isinstance(uri, str):
            # The RTSP checks use the camera's own GetStreamUri answer when the point list has none.
            for name in STREAM_URI_USERS:
                if name in self._probes:
                    self._probes[name].learn_stream_uri(result.device_id, uri)  # type: ignore[attr-defined]
        transition = self._trackers[result.probe].observe(result)
        if transition is not None:
            self._transitions([transition])

    def _on_trap(self, event: TrapEvent) -> None:
        """A trap from a known device: written, and applied to the rules at once (a linkDown
        raises its port fault now, not at the next poll)."""
        device = self.inventory.devices[event.device_id]
        if self._sink is not None:
            self._sink.write(TRAP_MEASUREMENT.name, {**_tags(device), "trap": event.name}, event_fields(event), event.ts_ns)
        if event.name != "other":
            log.info("trap %s from %s %s", event.name, device.kind.value, device.name,
                     extra={"device_id": device.id, "site": device.site, "region": device.region})
        assert self._alerting is not None
        self._alerting.observe_trap(event)
        self._evaluate_soon(None)

    def _on_cycle(self, report: CycleReport) -> None:
        now_ns = time.time_ns()
        self._cycles[report.probe] = report
        view = self._evaluate(report.probe, now_ns)
        assert self._alerting is not None
        open_faults = tuple(self._alerting.faults.open_faults())
        if self._sink is not None:
            self._write_cycle(report, view, open_faults, now_ns)
        self._heartbeat_due = True
        self._pending.put_nowait([])
        results = {p: dict(r) for p, r in self._latest.items()}
        self.snapshot = Snapshot(
            report, tuple(view.rates), view.states, results.get("icmp", {}), open_faults,
            since=view.since_ns, bases=view.bases, results=results, cycles=dict(self._cycles),
        )
        if self._on_snapshot is not None:
            self._on_snapshot(self.snapshot)

    def _evaluate(self, probe: str | None, now_ns: int) -> View:
        """Settle `probe`'s topology (down vs unreachable), combine every probe's states into
        the bases (network, service, video, online), compute their online rates and hand the
        rules a View of this moment, which is returned."""
        if self._early is not None:
            self._early.cancel()
            self._early = None
        if probe is not None:
            self._transitions(self._trackers[probe].reconcile(now_ns))
        self._log_summary()
        trackers = {name: t.states() for name, t in self._trackers.items()}
        bases = combine(self.devices, trackers, self._polled, self.cfg.availability.online_requires)
        rates: list[GroupRate] = []
        for basis, states in bases.items():
            if basis in (Basis.ONLINE, Basis.NETWORK):
                rates += online_rates(self.devices, states, basis.value) if states or basis is Basis.ONLINE else []
            elif states:  # service and video: only the devices they apply to
                rates += online_rates((d for d in self.devices if d.id in states), states, basis.value)
        network = self._trackers.get("icmp")
        view = View(
            now_ns,
            trackers["icmp"] if network is not None else bases[Basis.ONLINE],
            network.since() if network is not None else {},
            tuple(rates),
            {b.value: states for b, states in bases.items()},
        )
        assert self._alerting is not None
        self._alerting.cycle(view)
        return view

    def _evaluate_soon(self, probe: str | None) -> None:
        """A device went down or came back mid-cycle: evaluate the rules shortly, not at the end
        of the cycle (up to spread × interval later), so that detection takes one probe, not one
        probe plus the rest of the cycle. The short delay lets the devices right behind it
        (probed next, see `probed`) report first, so topology is settled."""
        if self._early is None:
            loop = asyncio.get_running_loop()
            self._early = loop.call_later(EARLY_EVALUATION_S, lambda: self._evaluate(probe, time.time_ns()))

    def _write_cycle(self, report: CycleReport, view: View, open_faults: tuple[Fault, ...], now_ns: int) -> None:
        """What a finished cycle of `report.probe` settled: the device states of its basis and
        of `online` for the devices it polls, every online rate, open faults, the cycle."""
        sink = self._sink
        assert sink is not None
        basis = BASIS_OF_PROBE.get(report.probe)
        polled = self._polled[report.probe]
        for b in (basis, Basis.ONLINE) if basis is not None else ():
            states = view.bases[b.value]
            for device in self.probed:
                state = states.get(device.id)
                if state is None or device.id not in polled:
                    continue
                sink.write(
                    "device_state",
                    {**_tags(device), "basis": b.value},
                    {"state": state.value, "online": int(state is State.UP), "counted": int(device.counted)},
                    now_ns,
                )
        for r in view.rates:
            fields: dict[str, float | int] = {
                "online": r.online, "offline": r.offline, "unknown": r.unknown, "total": r.total, "excluded": r.excluded,
            }
            if r.rate_pct is not None:
                fields["online_rate_pct"] = r.rate_pct
            sink.write(
                "online_rate", {"scope": r.scope, "group": r.group, "kind": r.kind, "basis": r.basis}, fields, now_ns
            )
        firing = Counter(f.severity.value for f in open_faults if f.state is FaultState.FIRING)
        for severity in Severity:
            sink.write("faults_open", {"severity": severity.value}, {"count": firing[severity.value]}, now_ns)
        sink.write(
            "fleetmon_cycle",
            {"probe": report.probe},
            {
                "duration_s": report.duration_s,
                "targets": report.targets,
                "ok": report.ok,
                "failed": report.failed,
                "caller_timeouts": report.caller_timeouts,
                "cycles_skipped": report.cycles_skipped,
            },
            now_ns,
        )

    def _write_fault_event(self, fault: Fault, kind: EventKind, ts_ns: int) -> None:
        """Every firing, resolution and acknowledgement, for the command hall's fault table."""
        assert self._sink is not None
        fields: dict[str, str | int] = {"fault_id": fault.id, "title": fault.title, "state": fault.state.value, "event": kind.value}
        if fault.device_id is not None:
            fields["device_id"] = fault.device_id
        tags = {"rule": fault.rule, "severity": fault.severity.value}
        if fault.region is not None:
            tags["region"] = fault.region
        self._sink.write("fault_event", tags, fields, ts_ns)

    # -- transitions: log one line each, store them in order ------------------------------------

    def _transitions(self, transitions: list[Transition]) -> None:
        """Queue transitions for the state DB and log them: a line per device that goes down or
        recovers (naming the probe unless it is icmp); devices that merely follow their parent
        (unreachable and back) or get their first verdict are logged at debug and summed up once
        per cycle (_log_summary), and so is a camera's video or service lost while its network
        is down (the network says it all)."""
        if not transitions:
            return
        assert self._alerting is not None
        network = self._trackers.get("icmp")
        for t in transitions:
            self._alerting.observe_transition(t)
            if t.new is State.DOWN or (t.new is State.UP and t.old.offline):
                self._evaluate_soon(t.probe)
            device = self.inventory.devices[t.device_id]
            extra = {"device_id": t.device_id, "site": device.site, "region": device.region, "probe": t.probe}
            what = "" if t.probe == "icmp" else f"{t.probe} "
            explained = t.probe != "icmp" and network is not None and network.state(t.device_id).offline
            if t.new is State.DOWN:
                # A point under construction or removed is expected to be silent: no warning.
                log.log(
                    logging.DEBUG if explained else logging.WARNING if device.counted else logging.INFO,
                    "%s %s %s%s → down: %s", device.kind.value, device.name, what, t.old.value, t.reason, extra=extra,
                )
            elif t.new is State.UP and t.old is State.DOWN:
                log.info("%s %s %srecovered (down → up)", device.kind.value, device.name, what, extra=extra)
            else:
                log.debug("%s %s %s → %s", device.kind.value, device.name, t.old.value, t.new.value, extra=extra)
                if t.new is State.UNREACHABLE:
                    self._summary[("unreachable", self._root_cause(t))] += 1
                elif t.old is State.UNREACHABLE:
                    self._summary[("reachable again", self._root_cause(t))] += 1
                else:
                    self._summary[(f"first verdict {t.new.value}", "")] += 1
        self._pending.put_nowait(transitions)

    def _root_cause(self, t: Transition) -> str:
        """The nearest ancestor that is down now (unreachable) or was (reachable again)."""
        states = self._trackers[t.probe].states()
        ancestors = self.inventory.ancestors(t.device_id)
        down = [a.id for a in ancestors if states[a.id] is State.DOWN]
        return down[0] if down else ancestors[0].id if ancestors else ""

    def _log_summary(self) -> None:
        for (what, cause), count in sorted(self._summary.items()):
            if cause:
                parent = self.inventory.devices[cause]
                log.info("%d devices %s behind %s %s (%s)", count, what, parent.kind.value, parent.name, cause)
            else:
                log.info("%d devices: %s", count, what)
        self._summary.clear()

    async def _store_transitions(self, db: StateDB) -> None:
        """Single writer of the state DB: transitions in arrival order, then the heartbeat.
        Returns after the `None` that _stop_writer queues, with everything before it stored."""
        while True:
            items = [await self._pending.get()]
            while not self._pending.empty():  # coalesce into one SQLite transaction
                items.append(self._pending.get_nowait())
            await db.record(t for batch in items if batch is not None for t in batch)
            if self._heartbeat_due:
                self._heartbeat_due = False
                await db.heartbeat()
            if None in items:
                return

    async def _stop_writer(self, writer: asyncio.Task[None]) -> None:
        self._pending.put_nowait(None)
        await writer
