"""SLA clocks as data: which deadlines a work order has (policies per severity and device kind,
from a tender preset plus the config's own), and where each clock stands.

Every clock starts at the report (`WorkOrder.reported_ns`) and is stopped by a stamp:

| clock       | stopped by                                                   | not applicable        |
|-------------|--------------------------------------------------------------|-----------------------|
| response    | the acknowledgement, or the first later stamp (it implies it) |                       |
| arrival     | the arrival (到场)                                            | resolution remote     |
| restore     | the restore (修复)                                             |                       |
| replacement | the first replacement, or the restore (device works again)    |                       |

A cancelled order has no clocks. The deadline is `within` (or the variant that applies:
no_spare, on_site, off_hours; see ClockSpec) after the report, in calendar time or in working
time (basis business, monitor.assess.calendar). A clock's state:

- running: ok; warning once `warn_at_pct` of its time is used; breached once past the deadline;
- stopped: met when stopped at or before the deadline, else missed.

Time: the report, the stops and the deadline are wall-clock stamps (people read them, type
them in, and they are stored). A running clock's "now" is the report plus the time since it on
the monotonic clock when the caller knows it (`elapsed_ns`: the work-order book's countdowns,
monitor/core/clock.py), so a step of the wall clock neither breaches a clock early nor holds a
breach back; a stopped clock compares its stamps.

Breaches (breached or missed) are counted per order, per engineer (the assignee) and per
period (by the deadline's instant). An order whose cause is excluded (市政, 电力 … "均不在考核
范围内") is not assessed: its breaches are not counted (and monitor.assess.workorders sends no
notices for it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from monitor.assess.calendar import WorkCalendar
from monitor.assess.config_workorders import Clock, ClockSpec, Policy, SlaConfig, load_preset
from monitor.assess.orders import Resolution, WorkOrder
from monitor.core.model import Kind
from rules.model import Severity

_NS = 1_000_000_000

LABELS = {
    "zh": {Clock.RESPONSE: "响应", Clock.ARRIVAL: "到场", Clock.RESTORE: "修复", Clock.REPLACEMENT: "更换"},
    "en": {Clock.RESPONSE: "response", Clock.ARRIVAL: "arrival", Clock.RESTORE: "restore",
           Clock.REPLACEMENT: "replacement"},
}
UNASSIGNED = "-"
"""The engineer breaches are counted against when an order has no assignee."""


class ClockState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    MISSED = "missed"

    @property
    def late(self) -> bool:
        """A breach: past the deadline, running (breached) or stopped (missed)."""
        return self in (ClockState.BREACHED, ClockState.MISSED)


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Where one clock of one order stands at `now`.

    - label: the contract's word for it (preset `label`, else 响应/到场/修复/更换).
    - basis: "calendar" | "business"; variant: the deadline used (within, off_hours, on_site,
      no_spare).
    - start_ns / deadline_ns / stopped_ns: UTC ns (stopped_ns None while running).
    - allowed_s / used_s: seconds of the basis (working seconds for business clocks);
      percent_used = used_s / allowed_s × 100 (over 100 when late).
    - remaining_s: wall-clock seconds from now (or from the stop) to the deadline; negative when
      past it.
    """

    clock: Clock
    label: str
    basis: str
    variant: str
    start_ns: int
    deadline_ns: int
    stopped_ns: int | None
    allowed_s: float
    used_s: float
    percent_used: float
    remaining_s: float
    state: ClockState

    def to_dict(self) -> dict[str, object]:
        return {
            "clock": self.clock.value, "label": self.label, "basis": self.basis, "variant": self.variant,
            "start_ns": self.start_ns, "deadline_ns": self.deadline_ns, "stopped_ns": self.stopped_ns,
            "allowed_s": self.allowed_s, "used_s": round(self.used_s, 3), "percent_used": round(self.percent_used, 2),
            "remaining_s": round(self.remaining_s, 3), "state": self.state.value,
        }


class Sla:
    """The clocks of a contract. `Sla.from_config(cfg, timezone, base_dir)` or, in code,
    `Sla(policies, calendar, warn_at_pct)`."""

    def __init__(
        self,
        policies: Sequence[Policy],
        calendar: WorkCalendar,
        warn_at_pct: float | None = 80.0,
        long_offline_days: float | None = None,
    ) -> None:
        self.policies = tuple(policies)
        self.calendar = calendar
        self.warn_at_pct = warn_at_pct
        self.long_offline_days = long_offline_days
        self._resolved: dict[tuple[Severity, Kind], dict[Clock, ClockSpec]] = {}

    @classmethod
    def from_config(cls, cfg: SlaConfig, timezone: str, base_dir: Path = Path(".")) -> "Sla":
        """The preset named in `cfg` (if any) then `cfg.policies`; the calendar's file relative
        to `base_dir`. Raises CalendarError (a ConfigError) for a bad holiday file."""
        preset = load_preset(cfg.preset) if cfg.preset else None
        policies = (list(preset.policies) if preset else []) + list(cfg.policies)
        calendar = WorkCalendar.from_config(cfg.calendar, timezone, base_dir)
        return cls(policies, calendar, cfg.warn_at_pct, preset.long_offline_days if preset else None)

    def clocks_for(self, severity: Severity, kind: Kind) -> Mapping[Clock, ClockSpec]:
        """The clocks of an order of this severity about a device of this kind: every matching
        policy in order, a later one replacing the clocks it names (None removes one)."""
        key = (severity, kind)
        clocks = self._resolved.get(key)
        if clocks is None:
            merged: dict[Clock, ClockSpec | None] = {}
            for p in self.policies:
                if (not p.match.severity or severity in p.match.severity) and (not p.match.kinds or kind in p.match.kinds):
                    merged.update(p.clocks)
            clocks = self._resolved[key] = {c: merged[c] for c in Clock if merged.get(c) is not None}
        return clocks

    def evaluate(self, order: WorkOrder, now_ns: int, *, elapsed_ns: int | None = None) -> list[ClockStatus]:
        """The order's clocks at `now_ns` (UTC ns), in the order response, arrival, restore,
        replacement. `elapsed_ns`: the time since the report on the monotonic clock; running
        clocks then stand at reported_ns + elapsed_ns instead of now_ns (a wall-clock step
        since the report does not count)."""
        if order.cancelled:
            return []
        now = now_ns if elapsed_ns is None else order.reported_ns + elapsed_ns
        out = []
        for clock, spec in self.clocks_for(order.severity, order.kind).items():
            if clock is Clock.ARRIVAL and order.resolution is Resolution.REMOTE:
                continue
            out.append(self._status(order, clock, spec, now))
        return out

    def _status(self, order: WorkOrder, clock: Clock, spec: ClockSpec, now_ns: int) -> ClockStatus:
        start = order.reported_ns
        variant, allowed = self._allowed(order, spec, start)
        if spec.basis == "business":
            deadline = self.calendar.add(start, allowed)
        else:
            deadline = start + round(allowed * _NS)
        stop = _stop(order, clock)
        until = now_ns if stop is None else stop
        if spec.basis == "business":
            used = self.calendar.between(start, until)
        else:
            used = max(0, until - start) / _NS
        percent = 100.0 * used / allowed
        if stop is not None:
            state = ClockState.MET if stop <= deadline else ClockState.MISSED
        elif now_ns > deadline:
            state = ClockState.BREACHED
        elif self.warn_at_pct is not None and percent >= self.warn_at_pct:
            state = ClockState.WARNING
        else:
            state = ClockState.OK
        return ClockStatus(
            clock, spec.label or LABELS["zh"][clock], spec.basis, variant, start, deadline, stop, allowed, used,
            percent, (deadline - until) / _NS, state,
        )

    def _allowed(self, order: WorkOrder, spec: ClockSpec, start_ns: int) -> tuple[str, float]:
        if order.no_spare and spec.no_spare is not None:
            return "no_spare", spec.no_spare
        if order.on_site and spec.on_site is not None:
            return "on_site", spec.on_site
        if spec.off_hours is not None and not self.calendar.in_hours(start_ns):
            return "off_hours", spec.off_hours
        return "within", spec.within


def _stop(order: WorkOrder, clock: Clock) -> int | None:
    if clock is Clock.RESPONSE:
        return order.responded_ns
    if clock is Clock.ARRIVAL:
        return order.arrived_ns
    if clock is Clock.RESTORE:
        return order.restored_ns
    stops = [s for s in (order.replaced_ns, order.restored_ns) if s is not None]
    return min(stops, default=None)


# -- breaches -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breach:
    """One clock past its deadline: the order, the clock, the deadline (UTC ns), when it stopped
    (None: still running), and who it is counted against (UNASSIGNED when nobody)."""

    ref: str
    clock: Clock
    label: str
    deadline_ns: int
    stopped_ns: int | None
    engineer: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class BreachReport:
    """Breaches whose deadline fell in [start_ns, end_ns), counted three ways."""

    start_ns: int
    end_ns: int
    breaches: tuple[Breach, ...]
    by_order: Mapping[str, tuple[Clock, ...]]
    by_engineer: Mapping[str, int]
    by_clock: Mapping[Clock, int]

    @property
    def total(self) -> int:
        return len(self.breaches)

    def to_dict(self) -> dict[str, object]:
        return {
            "start_ns": self.start_ns, "end_ns": self.end_ns, "total": self.total,
            "by_order": {ref: [c.value for c in clocks] for ref, clocks in self.by_order.items()},
            "by_engineer": dict(self.by_engineer), "by_clock": {c.value: n for c, n in self.by_clock.items()},
            "breaches": [
                {"ref": b.ref, "clock": b.clock.value, "label": b.label, "deadline_ns": b.deadline_ns,
                 "stopped_ns": b.stopped_ns, "engineer": b.engineer, "severity": b.severity.value}
                for b in self.breaches
            ],
        }


def count_breaches(sla: Sla, orders: Iterable[WorkOrder], start_ns: int, end_ns: int, now_ns: int) -> BreachReport:
    """Breaches of `orders` at `now_ns` whose deadline lies in [start_ns, end_ns); orders with
    an excluded cause are left out."""
    found = []
    for order in orders:
        if order.cause is not None and order.cause.excluded:
            continue
        for s in sla.evaluate(order, now_ns):
            if s.state.late and start_ns <= s.deadline_ns < end_ns:
                found.append(Breach(order.ref, s.clock, s.label, s.deadline_ns, s.stopped_ns,
                                    order.assignee or UNASSIGNED, order.severity))
    found.sort(key=lambda b: (b.deadline_ns, b.ref))
    by_order: dict[str, tuple[Clock, ...]] = {}
    for b in found:
        by_order[b.ref] = by_order.get(b.ref, ()) + (b.clock,)
    return BreachReport(
        start_ns, end_ns, tuple(found), by_order,
        dict(Counter(b.engineer for b in found)), dict(Counter(b.clock for b in found)),
    )
