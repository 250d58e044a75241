"""The daemon's data flow, in one direction, as one object:

    result ──► tracker (hysteresis, topology) ──► transitions: rules, log, state DB
           ──► rules (latest values) ──► InfluxDB ──► hints for other probes and listeners
    trap   ──► InfluxDB ──► rules (values patched at once) ──► evaluation within a second
    cycle  ──► reconcile topology ──► bases ──► online rates ──► rules (View)
           ──► InfluxDB (device states, rates, open faults, open work orders, the cycle)
           ──► state DB (the probe's cycle and the heartbeat) ──► Snapshot

Its inputs are event-loop callbacks that never block: the schedulers call `on_result` and
`on_cycle`, the trap receiver `on_trap`; results of remote probe agents enter through
`on_result` too (monitor.app.agent_hub), and `blind` makes a silent agent's devices unknown. The components it feeds (alerting, the state DB's Recorder, the metrics
writer) are started and stopped by the daemon (monitor.app.daemon), which only wires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping, Protocol, Sequence, cast

from monitor.app.latest import LatestResults
from monitor.app.scheduler import CALLER_TIMEOUT, CycleReport
from monitor.app.snapshot import Snapshot
from monitor.core.model import Basis, Device
from monitor.fleet.inventory import Inventory
from monitor.metrics.writer import MetricsWriter, OpenOrder
from monitor.state.availability import PICTURE, PICTURE_PROBE, combine, judged, picture_verdict
from monitor.state.online_rate import rates_of_bases
from monitor.state.recorder import Recorder
from monitor.state.tracker import MONITOR_LATE, State, StateTracker, Transition
from monitor.state.transition_log import TransitionLog
from probes import REGISTRY, Learner, Probe, ProbeResult, probes_of
from probes.traps import TrapEvent
from rules.alerting.service import Alerting
from rules.base import View
from rules.model import Fault, FaultState, Severity

log = logging.getLogger("fleetmon.daemon")

# Delay of a mid-cycle rules evaluation after a device went down or came back, seconds.
EARLY_EVALUATION_S = 1.0
# ... and at least this many times the last evaluation's duration: at 100,000 devices one takes
# ~0.5 s, and a stream of transitions (a start, a region going dark) would otherwise keep the
# event loop busy evaluating half the time. So early evaluations take at most a quarter of it.
EARLY_SPACING = 3.0


@dataclass(frozen=True)
class Running:
    """A started probe type: its instance, its tracker, the devices whose state it keeps
    (parents first) and its cycle interval in seconds. `remote`: the ids among them that probe
    agents probe (monitor.app.agent_hub; their results come through `on_result` too), the
    daemon's own scheduler polls the others (`local`)."""

    probe: Probe
    tracker: StateTracker
    devices: tuple[Device, ...]
    interval_s: float
    remote: frozenset[str] = frozenset()
    polled: frozenset[str] = field(init=False)  # their ids

    def __post_init__(self) -> None:
        object.__setattr__(self, "polled", frozenset(d.id for d in self.devices))

    @property
    def local(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.id not in self.remote) if self.remote else self.devices


class Pipeline:
    """Carries results, traps and finished cycles through state, rules and metrics.

    - running: probe name → Running, every probe type the daemon started;
    - alerting: the rules and the fault lifecycle (rules.alerting.service.Alerting, entered);
    - recorder: the state DB's writer (entered); metrics: None when InfluxDB is disabled;
    - online_requires: availability.online_requires;
    - on_snapshot: called with each new Snapshot (must not block);
    - listeners: components other than probes that learn hints of results (Listener);
    - open_orders: now_ns → the open work orders, most urgent first, for `work_order_open`
      (None: not written). Called on the event loop at the end of each cycle; must not block.
    - picture: the picture basis' tracker (availability.PICTURE: 画面正常), fed by the frame
      check's verdicts, when rtsp_frame runs with vqd; None: no picture basis.
    `snapshot` is the latest cycle's (None before the first one).
    """

    def __init__(
        self,
        inventory: Inventory,
        running: Mapping[str, Running],
        *,
        alerting: Alerting,
        recorder: Recorder,
        metrics: MetricsWriter | None,
        online_requires: Sequence[Basis],
        on_snapshot: Callable[[Snapshot], None] | None = None,
        listeners: Sequence[Listener] = (),
        open_orders: Callable[[int], Sequence[OpenOrder]] | None = None,
        picture: StateTracker | None = None,
    ) -> None:
        self.inventory = inventory
        self._open_orders = open_orders
        self.devices = tuple(inventory.devices.values())
        self.snapshot: Snapshot | None = None
        self._running = dict(running)
        self._trackers = {name: r.tracker for name, r in self._running.items()}
        self._polled = {name: r.polled for name, r in self._running.items()}
        # The picture tracker sits beside the probes' (its transitions are stored and logged
        # alike): settled with the frame check's cycles, over the frame check's devices.
        self._picture = picture if picture is not None and PICTURE_PROBE in self._running else None
        if self._picture is not None:
            self._trackers[PICTURE] = self._picture
            self._polled[PICTURE] = self._running[PICTURE_PROBE].polled
        self._alerting = alerting
        self._recorder = recorder
        self._metrics = metrics
        self._online_requires = tuple(online_requires)
        self._on_snapshot = on_snapshot
        # The network tracker: device_down and the window rules read its states, the snapshot
        # its results, the log tells other probes' losses apart by it.
        self._network = next((p for p in probes_of(Basis.NETWORK) if p in self._running), None)
        self._log = TransitionLog(inventory, self._trackers, self._network)
        self._hints = _hints(self._running, listeners)
        self._latest = {name: LatestResults(name) for name in self._running}  # compact: monitor/app/latest.py
        self._cycles: dict[str, CycleReport] = {}  # each probe's latest finished cycle
        self._early: asyncio.TimerHandle | None = None
        self._evaluation_s = 0.0  # how long the last evaluation took (EARLY_SPACING)
        self._closed = False
        if metrics is not None:
            alerting.faults.listeners.append(metrics.fault_event)

    def close(self) -> None:
        """No early evaluation after this (traps and transitions still arriving while the daemon
        stops): a pending one is cancelled, none is scheduled."""
        self._closed = True
        self._cancel_early()
        if self._metrics is not None:
            self._metrics.flush()

    def _cancel_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    # -- inputs ------------------------------------------------------------------------------------

    def on_result(self, result: ProbeResult) -> None:
        """One probe result: tracker → rules → InfluxDB → hints for other probes."""
        device = self.inventory.devices[result.device_id]
        if result.reason == CALLER_TIMEOUT:
            # fleetmon, not the device, ran late (a stalled event loop, a probe bug): nothing is
            # known of the device this cycle, so it is unknown, not down; no point, no rule input.
            self._transitions(self._trackers[result.probe].blind([result.device_id], result.ts_ns, MONITOR_LATE))
            return
        self._latest[result.probe].put(result)
        transition = self._trackers[result.probe].observe(result)
        if transition is not None:
            self._transitions([transition])
        if self._picture is not None and result.probe == PICTURE_PROBE:
            verdict = picture_verdict(result)
            if verdict is not None and (seen := self._picture.observe(verdict)) is not None:
                self._transitions([seen])
        self._alerting.observe(result)
        if self._metrics is not None:
            self._metrics.result(device, result)
        for hint, learners in self._hints.get(result.probe, ()):
            value = result.fields.get(hint)
            if isinstance(value, str):
                for learner in learners:
                    learner.learn(result.device_id, hint, value)

    def on_trap(self, event: TrapEvent) -> None:
        """A trap from a known device: written, and applied to the rules at once (a linkDown
        raises its port fault now, not at the next poll)."""
        device = self.inventory.devices[event.device_id]
        if self._metrics is not None:
            self._metrics.trap(device, event)
        if event.name != "other":
            log.info("trap %s from %s %s", event.name, device.kind.value, device.name,
                     extra={"device_id": device.id, "site": device.site, "region": device.region})
        self._alerting.observe_trap(event)
        self._evaluate_soon(None)

    def blind(self, probe: str, device_ids: Sequence[str], reason: str) -> None:
        """Nobody watches these devices of `probe` any more (their probe agent went silent):
        unknown (monitor blind), not down; stored as transitions like any other."""
        self._transitions(self._trackers[probe].blind(device_ids, time.time_ns(), reason))
        if self._picture is not None and probe == PICTURE_PROBE:
            self._transitions(self._picture.blind(device_ids, time.time_ns(), reason))

    def resume(self, probe: str, device_ids: Sequence[str]) -> None:
        """Their probe agent is back: their next transitions are dated from now on (the blind
        period ends when the daemon hears again, whatever the replayed results' times)."""
        self._trackers[probe].resume(device_ids, time.time_ns())
        if self._picture is not None and probe == PICTURE_PROBE:
            self._picture.resume(device_ids, time.time_ns())

    def on_cycle(self, report: CycleReport) -> None:
        """A probe's finished cycle: settle and evaluate (reconcile → bases → online rates →
        rules), write what it settled, publish a Snapshot."""
        now_ns = time.time_ns()
        self._cycles[report.probe] = report
        # The previous snapshot's tables of every device (states, since, bases, results) go
        # before this cycle's are built, not after: one generation of them at a time (~16 MB
        # at 100,000 devices). Nobody sees the gap: no await until the new one is set.
        self.snapshot = None
        view = self._evaluate(report.probe, now_ns, time.monotonic_ns())
        open_faults = tuple(self._alerting.faults.open_faults())
        if self._metrics is not None:
            self._write_cycle(report, view, open_faults, now_ns)
        # The cycle and the heartbeat: the next cycle is due one interval later and may be
        # skipped once when this one ran late, so a gap of more than 2 intervals is a stall
        # (its devices then count as not watched on that probe's basis, not as up or down).
        end_ns = report.ts_ns + round(report.duration_s * 1e9)
        grace_ns = round(2 * self._running[report.probe].interval_s * 1e9)
        self._recorder.cycle(report.probe, report.ts_ns, end_ns, grace_ns)
        if self._picture is not None and report.probe == PICTURE_PROBE:
            # The picture basis is watched by the frame check's cycles while vqd is on: the
            # period assessment tells "picture not judged in this session" (vqd off) from it.
            self._recorder.cycle(PICTURE, report.ts_ns, end_ns, grace_ns)
        # The live results, not a copy: a copy kept the previous cycle's results alive while the
        # next cycle's arrived (two of every device's: ~27 MB at 100,000 devices).
        results = dict(self._latest)
        network = results.get(self._network, {}) if self._network is not None else {}
        self.snapshot = Snapshot(
            report, tuple(view.rates), view.states, network, open_faults,
            since=view.since_ns, bases=view.bases, results=results, cycles=dict(self._cycles),
        )
        if self._on_snapshot is not None:
            self._on_snapshot(self.snapshot)

    # -- steps -------------------------------------------------------------------------------------

    def _evaluate(self, probe: str | None, now_ns: int, mono_ns: int) -> View:
        """Settle `probe`'s topology (down vs unreachable), combine every probe's states into
        the bases (network, service, video, online), compute their online rates and hand the
        rules a View of this moment (`now_ns` on the wall clock, `mono_ns` on the monotonic
        one: monitor/core/clock.py), which is returned."""
        started = time.monotonic()
        self._cancel_early()
        if probe is not None:
            self._transitions(self._trackers[probe].reconcile(now_ns))
            if self._picture is not None and probe == PICTURE_PROBE:
                self._transitions(self._picture.reconcile(now_ns))
        self._log.summary()
        trackers = {name: t.states() for name, t in self._trackers.items()}
        bases = combine(self.devices, trackers, self._polled, self._online_requires)
        network = self._trackers.get(self._network) if self._network is not None else None
        view = View(
            now_ns,
            trackers[self._network] if self._network is not None else bases[Basis.ONLINE],
            network.since() if network is not None else {},
            tuple(rates_of_bases(self.devices, bases, judged(trackers, self._polled))),
            {b.value: states for b, states in bases.items()},
            mono_ns,
        )
        self._alerting.cycle(view)
        self._evaluation_s = time.monotonic() - started
        return view

    def _evaluate_soon(self, probe: str | None) -> None:
        """A device went down or came back mid-cycle: evaluate the rules shortly, not at the end
        of the cycle (up to spread × interval later), so that detection takes one probe, not one
        probe plus the rest of the cycle. The short delay lets the devices right behind it
        (probed next, see Daemon.probed) report first, so topology is settled."""
        if self._early is None and not self._closed:
            loop = asyncio.get_running_loop()
            delay = max(EARLY_EVALUATION_S, EARLY_SPACING * self._evaluation_s)
            self._early = loop.call_later(delay, lambda: self._evaluate(probe, time.time_ns(), time.monotonic_ns()))

    def _transitions(self, transitions: list[Transition]) -> None:
        """To the rules (flap damping; a device down or back asks for an early evaluation), to
        the log, and in order to the state DB."""
        if not transitions:
            return
        for t in transitions:
            self._alerting.observe_transition(t)
            if t.new is State.DOWN or (t.new is State.UP and t.old.offline):
                self._evaluate_soon(t.probe)
        self._log.log(transitions)
        self._recorder.store(transitions)

    def _write_cycle(self, report: CycleReport, view: View, open_faults: tuple[Fault, ...], now_ns: int) -> None:
        """What a finished cycle of `report.probe` settled: the device states of its basis and
        of `online` for the devices it polls, every online rate, open faults and work orders, the cycle."""
        metrics = self._metrics
        assert metrics is not None
        running = self._running[report.probe]
        basis = type(running.probe).basis
        book = self._alerting.maintenance
        maintenance: dict[str, str] = {}
        if basis is not None and book.windows(now_ns):  # most cycles: no window in force, nothing to match
            for device in running.devices:
                if (window := book.device_covered(device.id, now_ns)) is not None:
                    maintenance[device.id] = window.reason
        picture = (Basis.PICTURE,) if self._picture is not None and report.probe == PICTURE_PROBE else ()
        for b in (basis, *picture, Basis.ONLINE) if basis is not None else ():
            metrics.device_states(b.value, view.bases[b.value], running.devices, now_ns, maintenance, cycle=report.cycle)
        metrics.online_rates(view.rates, now_ns)
        firing = Counter(f.severity for f in open_faults if f.state is FaultState.FIRING)
        metrics.faults_open({s.value: firing[s] for s in Severity}, now_ns)
        if self._open_orders is not None:
            metrics.work_orders_open(self._open_orders(now_ns), now_ns)
        metrics.cycle(report, now_ns)


class Listener(Protocol):
    """Not a probe, yet it learns hints from probe results (Probe.offers), as a Learner does:
    e.g. the work orders' serial watch (monitor.assess.serials.SerialWatch). `learn` is called
    on the event loop and must not block."""

    learns: ClassVar[tuple[str, ...]]

    def learn(self, device_id: str, hint: str, value: str) -> None: ...


def _hints(
    running: Mapping[str, Running], listeners: Sequence[Listener] = ()
) -> dict[str, tuple[tuple[str, tuple[Learner | Listener, ...]], ...]]:
    """probe name → ((hint, the running probes and listeners that learn it), …) for every
    probe type that offers a hint someone learns (Probe.offers, Probe.learns). Offers are read
    from the registry, by the result's probe name: a result says what it carries whoever ran it."""
    out: dict[str, tuple[tuple[str, tuple[Learner | Listener, ...]], ...]] = {}
    for name, cls in REGISTRY.items():
        pairs = []
        for hint in cls.offers:
            learners: tuple[Learner | Listener, ...] = (
                *(cast(Learner, r.probe) for r in running.values() if hint in type(r.probe).learns),
                *(listener for listener in listeners if hint in type(listener).learns),
            )
            if learners:
                pairs.append((hint, learners))
        if pairs:
            out[name] = tuple(pairs)
    return out

