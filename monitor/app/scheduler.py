"""Runs one probe type over its devices, cycle after cycle.

- Cycle k starts at t0 + k × interval (monotonic clock, so cycles do not drift).
- Within a cycle the starts of the targets are spread evenly over `spread × interval`, so a
  10,000-device fleet is not probed in one burst.
- At most `max_concurrency` probes are in flight.
- The scheduler owns timeouts: a probe that outlives its budget (Probe.budget_s plus a
  margin) is cancelled and reported as a failed result with reason "caller timeout".
- Cycles never overlap: when a cycle is still running at the next tick, that tick is skipped
  and counted.

Results and cycle reports go to callbacks, in that order, on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from monitor.core.model import Device
from probes.base import Probe, ProbeResult

log = logging.getLogger("fleetmon.scheduler")

# How often the spreading loop wakes up to start the targets whose slot has come. Coarser
# ticks cost less CPU; 10 ms keeps the spread even for any realistic interval.
_TICK_S = 0.01
# Extra time granted beyond a probe's own worst case before the scheduler cancels it.
_TIMEOUT_MARGIN_S = 1.0
CALLER_TIMEOUT = "caller timeout"


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one finished cycle did. Times: `ts_ns` UTC ns at the start, `duration_s` seconds;
    `mono_ns`: the start on the monotonic clock, for its age (/healthz; monitor/core/clock.py),
    None when not known (then `ts_ns` serves)."""

    probe: str
    cycle: int
    ts_ns: int
    duration_s: float
    targets: int
    ok: int
    failed: int
    caller_timeouts: int
    cycles_skipped: int
    mono_ns: int | None = None


class Scheduler:
    def __init__(
        self,
        probe: Probe,
        devices: Sequence[Device],
        *,
        interval_s: float,
        spread: float,
        max_concurrency: int,
        on_result: Callable[[ProbeResult], None],
        on_cycle: Callable[[CycleReport], None],
    ) -> None:
        self.probe = probe
        self.devices = tuple(devices)
        self.interval_s = interval_s
        self.spread = spread
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._on_result = on_result
        self._on_cycle = on_cycle
        self.cycles_run = 0
        self.cycles_skipped = 0

    async def run(self) -> None:
        """Run cycles until cancelled; a running cycle is cancelled and awaited with it."""
        t0 = time.monotonic()
        cycle_task: asyncio.Task[None] | None = None
        k = 0
        try:
            while True:
                if cycle_task is not None and not cycle_task.done():
                    self.cycles_skipped += 1
                    log.warning(
                        "%s cycle %d skipped: the previous cycle is still running (interval %.1f s)",
                        self.probe.name, k, self.interval_s,
                    )
                else:
                    cycle_task = asyncio.create_task(self._cycle(k), name=f"{self.probe.name}-cycle-{k}")
                    cycle_task.add_done_callback(self._log_crash)
                k += 1
                await asyncio.sleep(max(0.0, t0 + k * self.interval_s - time.monotonic()))
        finally:
            if cycle_task is not None and not cycle_task.done():
                cycle_task.cancel()
                await asyncio.gather(cycle_task, return_exceptions=True)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        # A crashed cycle is a bug (in a callback, say); say so loudly, the next cycle still runs.
        if not task.cancelled() and task.exception() is not None:
            log.error("%s crashed (a bug)", task.get_name(), exc_info=task.exception())

    async def _cycle(self, k: int) -> None:
        started = time.monotonic()
        ts_ns, mono_ns = time.time_ns(), time.monotonic_ns()
        n = len(self.devices)
        step = self.spread * self.interval_s / n if n else 0.0
        # Only the probes still running are kept: holding every finished task (and its result)
        # until the cycle ends would cost megabytes at 10,000 devices.
        running: set[asyncio.Task[ProbeResult]] = set()
        tally = [0, 0]  # ok, caller timeouts

        def done(task: asyncio.Task[ProbeResult]) -> None:
            running.discard(task)
            if not task.cancelled() and task.exception() is None:
                result = task.result()
                tally[0] += result.ok
                tally[1] += result.reason == CALLER_TIMEOUT

        try:
            i = 0
            while i < n:
                due = int((time.monotonic() - started) / step) + 1 if step else n
                while i < min(due, n):
                    task = asyncio.create_task(self._probe_one(self.devices[i]))
                    running.add(task)
                    task.add_done_callback(done)
                    i += 1
                if i < n:
                    await asyncio.sleep(_TICK_S)
            while running:
                # A callback bug (in _on_result) surfaces here and crashes the cycle, loudly.
                await asyncio.gather(*running)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        self.cycles_run += 1
        ok, timeouts = tally
        self._on_cycle(
            CycleReport(
                self.probe.name, k, ts_ns, time.monotonic() - started, n, ok, n - ok, timeouts, self.cycles_skipped,
                mono_ns,
            )
        )

    async def _probe_one(self, device: Device) -> ProbeResult:
        ts_ns = time.time_ns()
        async with self._semaphore:
            try:
                # asyncio.timeout, not wait_for: no extra task per probe (10,000 per cycle).
                async with asyncio.timeout(self.probe.budget_s(device) + _TIMEOUT_MARGIN_S):
                    result = await self.probe.probe(device)
            except TimeoutError:
                result = ProbeResult(device.id, self.probe.name, ts_ns, False, CALLER_TIMEOUT, {"up": False})
            except Exception as exc:  # a probe bug must not stop the fleet's monitoring
                log.exception("%s probe of %s raised (a bug)", self.probe.name, device.id)
                result = ProbeResult(
                    device.id, self.probe.name, ts_ns, False, f"probe error: {type(exc).__name__}", {"up": False}
                )
        self._on_result(result)
        return result
