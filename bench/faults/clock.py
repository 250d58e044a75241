"""Clock steps: the real daemon (`fleetmon run`, a child process) under libfaketime, its wall
clock stepped +1 h and then, in a second run, −1 h while a device_down rule with for_s 7 s is
pending (a camera whose RTSP port is closed, probed every 2 s). The figure is the hold time
error: the fault's hold (first seen → fired) on the daemon's own stamps less the step (the
libfaketime offset is exact), less for_s; tests/test_fault_clock.py also holds the same hold
timed from outside (lab/faults_clock.py hold_across_step: this process's monotonic clock, from
the pending fault's row to the firing event's row) to neither early nor an hour late. Target:
within one cycle (evaluations come at the ends of cycles, the first may be an early one out of
phase), never early. Before the fix: +1 h fired at the first evaluation after the step (about
−5 s), −1 h did not fire within the wait (an hour late)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.faults import Figure
from lab.faults_clock import hold_across_step

FOR_S = 7.0  # not a multiple of the cycle: the firing evaluation is not on the edge of the hold
CYCLE_S = 2.0


def run() -> list[Figure]:
    figures = []
    for step_s, name in ((3600, "+1 h"), (-3600, "−1 h")):
        with tempfile.TemporaryDirectory(prefix="fleetmon-clock-") as tmp:
            r = hold_across_step(Path(tmp), step_s, for_s=FOR_S, cycle_s=CYCLE_S, step_after_s=3.0)
        if r.hold_s is None or r.wall_hold_s is None:
            value, met = f"did not fire within {r.waited_s:.0f} s", False
        else:
            error = r.wall_hold_s - step_s - FOR_S
            value, met = f"{error:+.2f}", 0.0 <= error <= CYCLE_S
        figures.append(Figure(
            f"daemon's wall clock stepped {name} 3 s into a {FOR_S:g} s for_s (cycle {CYCLE_S:g} s)",
            f"clock {name}: hold time error (s)", value, f"≤ one cycle ({CYCLE_S:g} s), not early", met,
        ))
    return figures
