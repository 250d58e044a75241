"""What the daemon knows about the fleet after a cycle: read by the terminal view and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from monitor.online_rate import GroupRate
from monitor.scheduler import CycleReport
from monitor.state import State
from probes.base import ProbeResult
from rules.model import Fault


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's view of the fleet after a cycle: for the terminal view and the API."""

    cycle: CycleReport
    rates: tuple[GroupRate, ...]
    states: Mapping[str, State]
    latest: Mapping[str, ProbeResult] = field(repr=False)
    open_faults: tuple[Fault, ...] = ()  # as of the previous cycle's rule evaluation
