"""What the daemon knows about the fleet after a cycle: read by the terminal view and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from monitor.state.online_rate import GroupRate
from monitor.app.scheduler import CycleReport
from monitor.state.tracker import State
from probes.base import ProbeResult
from rules.model import Fault


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's view of the fleet after a cycle (of any probe): for the terminal view and
    the API.

    - cycle: the cycle that just finished.
    - rates: online rates of every group and basis (GroupRate.basis).
    - states: network state of every device (the icmp tracker: hysteresis and topology);
      since: UTC ns since when (0 = never decided).
    - bases: basis (monitor.core.model.Basis value) → device id → State.
    - latest: each device's latest ICMP result; results: probe → device id → latest result.
      Both are live: a result that arrives after this cycle replaces its device's (one result
      per device and probe is kept, not a cycle's copy beside the next: monitor/app/latest.py).
    - cycles: each probe's latest finished cycle.
    """

    cycle: CycleReport
    rates: tuple[GroupRate, ...]
    states: Mapping[str, State]
    latest: Mapping[str, ProbeResult] = field(repr=False)
    open_faults: tuple[Fault, ...] = ()  # as of the previous rule evaluation
    since: Mapping[str, int] = field(default_factory=dict, repr=False)
    bases: Mapping[str, Mapping[str, State]] = field(default_factory=dict, repr=False)
    results: Mapping[str, Mapping[str, ProbeResult]] = field(default_factory=dict, repr=False)
    cycles: Mapping[str, CycleReport] = field(default_factory=dict)


STALE_CYCLES = 3
"""A probe is stale once it finished no cycle for this many of its intervals (/healthz: 503;
the systemd watchdog: no ping)."""


def probe_ages(snapshot: Snapshot | None, probe_intervals: Mapping[str, float], now_ns: int,
               uptime_s: float, mono_now_ns: int | None = None) -> tuple[dict[str, float | None], list[str]]:
    """Per probe of `probe_intervals` (name → interval s): seconds since its latest cycle
    finished (None: none yet), and the names of the stale ones. A probe that never finished a
    cycle gets the daemon's uptime as its age: the first cycle's grace time. Ages are measured
    on the monotonic clock (`mono_now_ns` against the report's `mono_ns`) where both are known,
    so a wall-clock step neither hides a stall nor invents one (monitor/core/clock.py)."""
    ages: dict[str, float | None] = {}
    stale: list[str] = []
    for name, interval_s in probe_intervals.items():
        report = snapshot.cycles.get(name) if snapshot is not None else None
        if report is None:
            age = None
        elif mono_now_ns is not None and report.mono_ns is not None:
            age = (mono_now_ns - report.mono_ns) / 1e9 - report.duration_s
        else:
            age = (now_ns - report.ts_ns) / 1e9 - report.duration_s
        ages[name] = age
        if (uptime_s if age is None else age) > STALE_CYCLES * interval_s:
            stale.append(name)
    return ages, stale
