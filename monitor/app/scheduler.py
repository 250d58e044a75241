"""Runs one probe type over its devices, cycle after cycle.

- Cycle k starts at t0 + k × interval (monotonic clock, so cycles do not drift).
- Within a cycle the starts of the targets are spread evenly over `spread × interval`, so a
  10,000-device fleet is not probed in one burst.
- At most `max_concurrency` probes are in flight.
- The scheduler owns timeouts: a probe that outlives its budget (Probe.budget_s plus a
  margin) is cancelled and reported as a failed result with reason "caller timeout".
- Cycles never overlap: when a cycle is still running at the next tick, that tick is skipped
  and counted.
- Confirmation (probes.base.ConfirmConfig, when given with count > 0): a probe that missed is
  repeated at once, then `spacing_s` apart, up to `count` times or until one answers, and the
  device's one result of the cycle carries the verdict (ProbeResult.confirmations). Re-probes
  take no concurrency slot; at most `max_concurrent` devices are confirmed at once, a miss
  beyond that is passed on unconfirmed. Devices for which `confirm_skip(device_id)` is true
  (already failing: StateTracker.failing) are not re-probed.

Results and cycle reports go to callbacks, in that order, on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from monitor.core.model import Device
from probes.base import ConfirmConfig, Probe, ProbeResult

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
        confirm: ConfirmConfig | None = None,
        confirm_skip: Callable[[str], bool] | None = None,
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
        self.last_report: CycleReport | None = None  # the latest finished cycle's
        # The queue, for /metrics: probes started and waiting for a slot, probes running.
        self.waiting = 0
        self.in_flight = 0
        self._confirm = confirm if confirm is not None and confirm.count > 0 else None
        self._confirm_skip = confirm_skip
        # Confirmation, for /metrics: devices being confirmed now, and outcomes since start:
        # "failed" (every re-probe missed), "answered" (a re-probe answered), "capped" (no
        # room under max_concurrent: passed on unconfirmed).
        self.confirming = 0
        self.confirmations: collections.Counter[str] = collections.Counter()

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

    async def run_once(self) -> None:
        """One cycle (number 0) now, reported to on_cycle as `run` reports each: for
        `fleetmon run --once`."""
        await self._cycle(0)

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
        self.last_report = CycleReport(
            self.probe.name, k, ts_ns, time.monotonic() - started, n, ok, n - ok, timeouts, self.cycles_skipped,
            mono_ns,
        )
        self._on_cycle(self.last_report)

    async def _probe_one(self, device: Device) -> ProbeResult:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            result = await self._attempt(device)
        finally:
            self.in_flight -= 1
            self._semaphore.release()
        if not result.ok and self._confirm is not None and (
            self._confirm_skip is None or not self._confirm_skip(device.id)
        ):
            result = await self._confirmed(device, result, self._confirm)
        self._on_result(result)
        return result

    async def _attempt(self, device: Device) -> ProbeResult:
        """One probe of `device` under the caller's timeout; a bug becomes a failed result."""
        ts_ns = time.time_ns()
        try:
            # asyncio.timeout, not wait_for: no extra task per probe (10,000 per cycle).
            async with asyncio.timeout(self.probe.budget_s(device) + _TIMEOUT_MARGIN_S):
                return await self.probe.probe(device)
        except TimeoutError:
            return ProbeResult(device.id, self.probe.name, ts_ns, False, CALLER_TIMEOUT, {"up": False})
        except Exception as exc:  # a probe bug must not stop the fleet's monitoring
            log.exception("%s probe of %s raised (a bug)", self.probe.name, device.id)
            return ProbeResult(
                device.id, self.probe.name, ts_ns, False, f"probe error: {type(exc).__name__}", {"up": False}
            )

    async def _confirmed(self, device: Device, missed: ProbeResult, cfg: ConfirmConfig) -> ProbeResult:
        """`missed` after re-probing: the scheduled probe's measurement (its fields are the
        unbiased sample of the cycle: a re-probe's echoes are neither written nor counted in
        loss or RTT), with ok/up the verdict and the number of re-probes made."""
        if self.confirming >= cfg.max_concurrent:
            self.confirmations["capped"] += 1
            return missed
        self.confirming += 1
        try:
            for n in range(1, cfg.count + 1):
                if n > 1:
                    await asyncio.sleep(cfg.spacing_s)
                if (await self._attempt(device)).ok:
                    self.confirmations["answered"] += 1
                    return dataclasses.replace(
                        missed, ok=True, reason=None, fields={**missed.fields, "up": True}, confirmations=n
                    )
        finally:
            self.confirming -= 1
        self.confirmations["failed"] += 1
        return dataclasses.replace(missed, confirmations=cfg.count)
