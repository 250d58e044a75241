"""What the daemon writes to InfluxDB, each measurement's tags and fields in one place.

Measured series as they come: every probe result (the probe's measurement and its Series)
and every SNMP trap. Derived series (fleetmon's own conclusions): at the end of every cycle
`device_state`, `online_rate`, `faults_open`, `work_order_open` and `fleetmon_cycle`; `fault_event` for every
firing, resolution and acknowledgement. Shapes and units: monitor.metrics.schema (the sink
refuses anything undeclared). Times are UTC ns since the epoch.

The writer knows the vocabulary of the layers below it (devices, states, rates, probe results,
traps); what it needs of higher ones (a cycle report, a fault) it names as a Protocol.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence

from monitor.core.model import Device
from monitor.metrics.schema import OPEN_ORDER_SLOTS
from monitor.metrics.sink import InfluxSink, encode_line, escape_key, escape_string
from monitor.state.online_rate import GroupRate
from monitor.state.tracker import State
from probes.base import ProbeResult
from probes.traps import TRAP_MEASUREMENT, TrapEvent, event_fields


class CycleStats(Protocol):
    """A finished probe cycle (monitor.app.scheduler.CycleReport), as `fleetmon_cycle` records it."""

    probe: str
    duration_s: float
    targets: int
    ok: int
    failed: int
    caller_timeouts: int
    cycles_skipped: int


class FaultRecord(Protocol):
    """A fault (rules.model.Fault), as `fault_event` records it; state and severity are
    StrEnums, written as their values."""

    id: str
    rule: str
    title: str
    state: str
    severity: str
    device_id: str | None
    region: str | None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An open work order (monitor.assess.orders.WorkOrder) as `work_order_open` records it:
    its first device (None when the point list no longer has it), who owns it ('' nobody yet)
    and its next running SLA clock (label '', deadline and remaining None when none runs).
    Times UTC ns; remaining_s may be negative (past the deadline)."""

    ref: str
    fault_id: str
    severity: str
    title: str
    device_id: str
    device: Device | None
    owner: str
    sla_clock: str = ""
    sla_deadline_ns: int | None = None
    sla_remaining_s: float | None = None


def device_tags(device: Device) -> dict[str, str]:
    """monitor.core.measurement.DEVICE_TAGS of `device`."""
    return {"device_id": device.id, "kind": device.kind.value, "site": device.site, "region": device.region}


def device_state_lines(basis: str, states: Mapping[str, State], devices: Iterable[Device], ts_ns: int,
                       maintenance: Mapping[str, str]) -> list[bytes]:
    """The `device_state` lines of MetricsWriter.device_states, byte for byte what `encode_line`
    makes of its tags and fields (tests/test_metrics_writer.py compares them), built directly:
    these are two of every three lines the daemon writes (network and online basis per device
    per cycle), and the general encoder's dict, schema check and per-field dispatch cost about
    twice as much (docs/PERFORMANCE.md)."""
    head = "device_state,basis=" + escape_key(basis)
    tail = f" {ts_ns}"
    up = State.UP
    lines = []
    for device in devices:
        state = states.get(device.id)
        if state is None:
            continue
        region, site = device.region, device.site  # tags: sorted by key; an empty value is left out
        text = (
            f"{head},device_id={escape_key(device.id)},kind={escape_key(device.kind.value)}"
            f"{',region=' + escape_key(region) if region else ''}"
            f"{',site=' + escape_key(site) if site else ''}"
            f' state="{state.value}",online={int(state is up)}i,counted={int(device.counted)}i'
            f',name="{escape_string(device.name)}"'
            f',maintenance="{escape_string(maintenance.get(device.id, ""))}"'
        )
        lat, lon = device.lat, device.lon
        if lat is not None and lon is not None:
            if math.isfinite(lat):
                text += f",lat={float(lat)!r}"
            if math.isfinite(lon):
                text += f",lon={float(lon)!r}"
        lines.append((text + tail).encode())
    return lines


class MetricsWriter:
    """Turns the daemon's data into points of `sink` (never blocks, see InfluxSink.write)."""

    def __init__(self, sink: InfluxSink, *, state_refresh_cycles: int = 1) -> None:
        """`state_refresh_cycles`: InfluxDBConfig.state_refresh_cycles."""
        self._sink = sink
        self._refresh = state_refresh_cycles
        # basis → device id → the state last written, and the devices whose last point carries
        # a maintenance reason (so that the point ending it is written too).
        self._written: dict[str, dict[str, State]] = {}
        self._in_maintenance: dict[str, set[str]] = {}
        self._results: list[bytes] = []  # encoded result lines of this turn of the event loop
        self._flush_soon = False
        # Slots of work_order_open holding an order in the last snapshot written; all of them at
        # start, so that the first snapshot also empties what an earlier run left in them.
        self._order_slots = OPEN_ORDER_SLOTS

    def result(self, device: Device, result: ProbeResult) -> None:
        """The result's own point (measurement named like its probe) and its Series, at its time.

        Encoded (and checked against the schema) now; handed to the sink with the other results
        of this turn of the event loop in one spool write, at the end of the turn
        (loop.call_soon) or at `flush()`, whichever comes first: at 10,000 devices a cycle's
        results are 10,000 write(2) calls otherwise, and the ICMP engine ends hundreds of
        devices per turn. Until then a result exists only in this process, as it did in the
        probe a moment before: a kill -9 in between loses what it would have lost a
        microsecond earlier, and nothing already handed to the sink."""
        tags = device_tags(device)
        pending = self._results
        pending.append(encode_line(result.probe, tags, result.fields, result.ts_ns))
        for series in result.series:
            pending.append(encode_line(series.measurement, {**tags, **series.tags}, series.fields, result.ts_ns))
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand the results queued by `result` to the sink now (the cycle's points and a stop
        call it first, so a cycle's results are in the spool before its own points)."""
        self._flush_soon = False
        if self._results:
            lines, self._results = self._results, []
            self._sink.write_encoded([line for line in lines if line])  # b"": every field NaN

    def trap(self, device: Device, event: TrapEvent) -> None:
        """One `snmp_trap` point, at reception."""
        self._sink.write(TRAP_MEASUREMENT.name, {**device_tags(device), "trap": event.name}, event_fields(event), event.ts_ns)

    def device_states(self, basis: str, states: Mapping[str, State], devices: Sequence[Device], ts_ns: int,
                      maintenance: Mapping[str, str] | None = None, *, cycle: int = 0) -> None:
        """`device_state` of the `devices` that `states` (device id → State of `basis`) has and
        that are due: the state differs from the one last written (or none was), the device is
        or was just in maintenance, or it is the device's turn to be refreshed (device i in
        its probe's `cycle` when (i + cycle) % state_refresh_cycles == 0). `maintenance`: device
        id → the reason of the maintenance window it is in now. One spool write for all
        (InfluxSink.write_encoded)."""
        self.flush()
        maintenance = maintenance or {}
        written = self._written.setdefault(basis, {})
        was = self._in_maintenance.get(basis, set())
        refresh, due = self._refresh, []
        for i, device in enumerate(devices):
            state = states.get(device.id)
            if state is None:
                continue
            if written.get(device.id) is not state or (i + cycle) % refresh == 0 or device.id in maintenance \
                    or device.id in was:
                written[device.id] = state
                due.append(device)
        self._in_maintenance[basis] = {d for d in maintenance if d in states} if maintenance else set()
        self._sink.write_encoded(device_state_lines(basis, states, due, ts_ns, maintenance))

    def online_rates(self, rates: Iterable[GroupRate], ts_ns: int) -> None:
        """One `online_rate` point per group and basis; the percentage only once any device is
        decided. One spool write for all."""
        lines = []
        for r in rates:
            fields: dict[str, float | int] = {
                "online": r.online, "offline": r.offline, "unknown": r.unknown, "total": r.total, "excluded": r.excluded,
            }
            if r.rate_pct is not None:
                fields["online_rate_pct"] = r.rate_pct
            lines.append(encode_line(
                "online_rate", {"scope": r.scope, "group": r.group, "kind": r.kind, "basis": r.basis}, fields, ts_ns
            ))
        self._sink.write_encoded(lines)

    def faults_open(self, firing: Mapping[str, int], ts_ns: int) -> None:
        """`firing`: severity → faults firing now, every severity listed (0 included)."""
        for severity, count in firing.items():
            self._sink.write("faults_open", {"severity": severity}, {"count": count}, ts_ns)

    def work_orders_open(self, orders: Sequence[OpenOrder], ts_ns: int) -> None:
        """The `work_order_open` snapshot: `orders` (most urgent first) in slots 0, 1, …, at
        most OPEN_ORDER_SLOTS of them; the slots that held an order in the previous snapshot
        and hold none now get `open` 0."""
        shown = orders[:OPEN_ORDER_SLOTS]
        for slot, order in enumerate(shown):
            device = order.device
            fields: dict[str, str | int | float] = {
                "open": 1, "ref": order.ref, "fault_id": order.fault_id, "severity": order.severity,
                "title": order.title, "device_id": order.device_id,
                "device_name": device.name if device is not None else order.device_id,
                "site": device.site if device is not None else "", "region": device.region if device is not None else "",
                "owner": order.owner, "sla_clock": order.sla_clock,
            }
            if order.sla_deadline_ns is not None and order.sla_remaining_s is not None:
                fields |= {"sla_deadline_ms": order.sla_deadline_ns // 1_000_000, "sla_remaining_s": order.sla_remaining_s}
            self._sink.write("work_order_open", {"slot": str(slot)}, fields, ts_ns)
        for slot in range(len(shown), self._order_slots):
            self._sink.write("work_order_open", {"slot": str(slot)}, {"open": 0}, ts_ns)
        self._order_slots = len(shown)

    def cycle(self, report: CycleStats, ts_ns: int) -> None:
        """Self-monitoring: one `fleetmon_cycle` point per finished cycle (after the results)."""
        self.flush()
        self._sink.write(
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
            ts_ns,
        )

    def fault_event(self, fault: FaultRecord, event: str, ts_ns: int) -> None:
        """A firing, resolution or acknowledgement (`event`, a rules.model.EventKind), for the
        command hall's fault table; fits rules.alerting.faults.FaultBook.listeners."""
        fields: dict[str, str | int] = {"fault_id": fault.id, "title": fault.title, "state": str(fault.state), "event": str(event)}
        if fault.device_id is not None:
            fields["device_id"] = fault.device_id
        tags = {"rule": fault.rule, "severity": str(fault.severity)}
        if fault.region is not None:
            tags["region"] = fault.region
        self._sink.write("fault_event", tags, fields, ts_ns)
