"""Two clocks, one for each question (issue 13: hold times followed the wall clock, so a 1 h
backward step held every pending alarm an hour and a forward step fired 120 s rules at once).

- The wall clock, `wall_ns()`: UTC ns since the Unix epoch (`time.time_ns`, CLOCK_REALTIME).
  For stamps people read (first seen, fired, reported, acknowledged …) and for what must
  survive a restart. NTP, an operator or a bad RTC may step it, backwards too.
- The monotonic clock, `mono_ns()`: ns since an arbitrary origin (`time.monotonic_ns`,
  CLOCK_MONOTONIC). For durations: rule hold times (`for_s`, `clear_for_s`), flapping windows,
  reminders, escalation, SLA countdowns. It never steps; its origin is the boot, so it is
  never stored.

A wall stamp made earlier (a probe's start, a row read back after a restart) is put on the
monotonic line by its age on the wall clock, `place()`. That is exact unless the wall clock
stepped between the stamp and its placement: a moment for a fresh stamp (a probe's duration),
the daemon's downtime for a stored one. So across a restart the time before it is counted on
the wall clock (the persisted stamps) and the time after it on the monotonic clock; a step
while fleetmon was not running cannot be told from time passing.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What components read the time from; `SYSTEM_CLOCK` in the daemon, a clock driven by hand
    in tests (lab/faults_clock.py SteppedClock)."""

    def wall_ns(self) -> int:
        """UTC ns since the epoch: for stamps."""
        ...

    def mono_ns(self) -> int:
        """Monotonic ns (arbitrary origin): for durations."""
        ...


class SystemClock:
    """The machine's clocks: CLOCK_REALTIME and CLOCK_MONOTONIC."""

    def wall_ns(self) -> int:
        return time.time_ns()

    def mono_ns(self) -> int:
        return time.monotonic_ns()


SYSTEM_CLOCK = SystemClock()


def place(stamp_wall_ns: int, now_wall_ns: int, now_mono_ns: int) -> int:
    """The monotonic reading at the wall stamp `stamp_wall_ns`, reckoned from a moment read on
    both clocks (now_wall_ns, now_mono_ns): its age on the wall clock back from now_mono_ns.
    A stamp from the future (the wall clock stepped back since) counts as now."""
    return now_mono_ns - max(0, now_wall_ns - stamp_wall_ns)
