"""Runs one probe type over its devices, cycle after cycle.

- Cycle k starts at t0 + k × interval (monotonic clock, so cycles do not drift).
- Within a cycle the starts of the targets are spread evenly over `spread × interval`, so a
  10,000-device fleet is not probed in one burst.
- At most `max_concurrency` probes are in flight.
- The scheduler owns timeouts: a probe that outlives its budget (Probe.budget_s plus a
  margin) is cancelled and reported as a failed result with reason "caller timeout". That says
  nothing of the device (the probe or the event loop ran late): the pipeline makes the device
  unknown, never down (monitor.app.pipeline, MONITOR_LATE).
- Batch path: a probe with `start` (probes.base.Starter: ICMP) is handed each device at its
  slot and calls back when done: no task, timeout or semaphore per device. Such a probe ends
  every device by itself (the ICMP engine's expiry), so the only deadline is the cycle's, for
  bugs: once every device was started, devices still out `interval_s / 2` (at least the
  margin) after their budget ran out are cancelled as caller timeouts. An event loop held up
  for seconds therefore makes no caller timeout on this path.
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
import functools
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from monitor.core.model import Device
from monitor.core.ticks import GRID_NS, sleep_to_tick
from probes.base import ConfirmConfig, Probe, ProbeResult, Starter

log = logging.getLogger("fleetmon.scheduler")

# How often the spreading loop wakes up to start the targets whose slot has come. Coarser
# ticks cost less CPU (a wake-up is the dearest thing on a VM: monitor/core/ticks.py); 40 ms
# keeps the spread even for any realistic interval (at 10,000 devices over 15 s, 27 starts a
# tick). The ICMP engine's tick (probes/icmp.py TICK_NS), so their wake-ups are one.
_TICK_NS = 8 * GRID_NS
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
        self._max_concurrency = max_concurrency
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
        if callable(getattr(self.probe, "start", None)):
            ok, timeouts = await self._batch(started, step)
        else:
            ok, timeouts = await self._tasks(started, step)
        self.cycles_run += 1
        self.last_report = CycleReport(
            self.probe.name, k, ts_ns, time.monotonic() - started, n, ok, n - ok, timeouts, self.cycles_skipped,
            mono_ns,
        )
        self._on_cycle(self.last_report)

    async def _tasks(self, started: float, step: float) -> tuple[int, int]:
        """A cycle with a task per device; returns (ok, caller timeouts)."""
        n = len(self.devices)
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
                    await sleep_to_tick(_TICK_NS)
            while running:
                # A callback bug (in _on_result) surfaces here and crashes the cycle, loudly.
                await asyncio.gather(*running)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return tally[0], tally[1]

    async def _batch(self, started: float, step: float) -> tuple[int, int]:
        """A cycle through `probe.start` (probes.base.Starter); returns (ok, caller timeouts).

        Per device out: one entry in `live` (device, start time, cancel function); a result
        counts only while its entry is live, so a device cancelled by the cycle's deadline
        counts once. Misses go through `_confirmed` in a task each, as on the task path."""
        probe: Starter = self.probe  # type: ignore[assignment]  # start() checked by _cycle
        devices, n, cap = self.devices, len(self.devices), self._max_concurrency
        live: dict[int, tuple[Device, int, Callable[[], None] | None]] = {}
        confirming: set[asyncio.Task[None]] = set()
        tally = [0, 0]  # ok, caller timeouts
        crashed: list[BaseException] = []
        margin = max(_TIMEOUT_MARGIN_S, self.interval_s / 2)
        deadline = 0.0  # the latest (budget + margin) of a device started: the cycle's deadline

        def report(result: ProbeResult) -> None:
            try:
                self._on_result(result)
            except Exception as exc:  # a callback bug crashes the cycle, loudly, as on the task path
                crashed.append(exc)
                return
            tally[0] += result.ok
            tally[1] += result.reason == CALLER_TIMEOUT

        def finish(device: Device, result: ProbeResult) -> None:
            if not result.ok and self._confirm is not None and (
                self._confirm_skip is None or not self._confirm_skip(device.id)
            ):
                task = asyncio.create_task(self._confirm_and_report(device, result, report))
                confirming.add(task)
                task.add_done_callback(confirming.discard)
            else:
                report(result)

        def done(token: int, result: ProbeResult) -> None:
            entry = live.pop(token, None)
            if entry is not None:  # else cancelled by the deadline: counted then
                self.in_flight -= 1
                finish(entry[0], result)

        try:
            i = 0
            while True:
                if crashed:
                    raise crashed[0]
                due = min(int((time.monotonic() - started) / step) + 1, n) if step else n
                while i < due and self.in_flight < cap:
                    device = devices[i]
                    i += 1
                    ts_ns = time.time_ns()
                    live[i] = (device, ts_ns, None)
                    self.in_flight += 1
                    deadline = max(deadline, time.monotonic() + probe.budget_s(device) + margin)
                    try:
                        cancel = probe.start(device, functools.partial(done, i))
                    except Exception as exc:  # a probe bug must not stop the fleet's monitoring
                        log.exception("%s probe of %s raised (a bug)", probe.name, device.id)
                        done(i, ProbeResult(device.id, probe.name, ts_ns, False, f"probe error: {type(exc).__name__}",
                                            {"up": False}))
                        continue
                    if i in live:
                        live[i] = (device, ts_ns, cancel)
                self.waiting = due - i
                if i >= n and not live and not confirming:
                    break
                if i >= n and live and time.monotonic() > deadline:
                    self._overdue(live, finish)
                await sleep_to_tick(_TICK_NS)
            if crashed:
                raise crashed[0]
        finally:
            self.waiting = 0
            for _device, _ts, cancel in live.values():
                if cancel is not None:
                    cancel()
            self.in_flight -= len(live)
            live.clear()
            for task in confirming:
                task.cancel()
            await asyncio.gather(*confirming, return_exceptions=True)
        return tally[0], tally[1]

    def _overdue(self, live: dict[int, tuple[Device, int, Callable[[], None] | None]],
                 finish: Callable[[Device, ProbeResult], None]) -> None:
        """The cycle's deadline passed with devices still out on the batch path: a bug in the
        probe (it promised to end each device itself). Each becomes a caller timeout."""
        log.error("%s: %d probes still out long after their budget (a bug in the probe): ended as caller timeouts",
                  self.probe.name, len(live))
        for _device, _ts, cancel in live.values():
            if cancel is not None:
                cancel()
        overdue = list(live.values())
        self.in_flight -= len(live)
        live.clear()
        for device, ts_ns, _cancel in overdue:
            finish(device, ProbeResult(device.id, self.probe.name, ts_ns, False, CALLER_TIMEOUT, {"up": False}))

    async def _confirm_and_report(self, device: Device, missed: ProbeResult,
                                  report: Callable[[ProbeResult], None]) -> None:
        report(await self._confirmed(device, missed, self._confirm))  # type: ignore[arg-type]

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
