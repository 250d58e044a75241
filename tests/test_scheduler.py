"""Scheduler semantics: spreading, concurrency bound, caller-owned timeouts, no overlap.

The probe here is an in-process stand-in with scripted durations: what is under test is the
scheduler's timing logic, not a protocol.
"""

import asyncio
import time

import pytest

from monitor.core.model import Device
from monitor.app.scheduler import CycleReport, Scheduler
from probes.base import ConfirmConfig, ProbeResult
from tests.plugins.factories import device


def devices(n: int) -> list[Device]:
    return [device(f"D{i}") for i in range(n)]


class ScriptedProbe:
    """Answers each device after `durations[device_id]` seconds (default `default_s`)."""

    name = "scripted"

    def __init__(self, default_s: float = 0.0, budget_s: float = 1.0, durations=None, raise_for=()) -> None:
        self.default_s = default_s
        self._budget = budget_s
        self.durations = durations or {}
        self.raise_for = set(raise_for)
        self.starts: list[tuple[float, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0

    def budget_s(self, device: Device) -> float:
        return self._budget

    async def probe(self, device: Device) -> ProbeResult:
        self.starts.append((time.monotonic(), device.id))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if device.id in self.raise_for:
                raise ValueError("scripted bug")
            await asyncio.sleep(self.durations.get(device.id, self.default_s))
            return ProbeResult(device.id, self.name, time.time_ns(), True)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


async def run_for(scheduler: Scheduler, seconds: float) -> None:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_starts_are_spread_over_the_configured_part_of_the_interval():
    probe = ScriptedProbe()
    cycles: list[CycleReport] = []
    s = Scheduler(probe, devices(50), interval_s=2.0, spread=0.5, max_concurrency=100,
                  on_result=lambda r: None, on_cycle=cycles.append)
    await run_for(s, 1.5)
    assert len(cycles) == 1 and cycles[0].targets == 50 and cycles[0].ok == 50
    times = [t for t, _ in probe.starts]
    span = times[-1] - times[0]
    # 50 targets over 0.5 × 2 s = 1 s: the last starts ~0.98 s after the first, not in one burst.
    assert 0.8 < span < 1.2
    # Evenly: no quarter of the window holds more than about a quarter of the starts.
    quarters = [sum(1 for t in times if times[0] + q * 0.25 <= t < times[0] + (q + 1) * 0.25) for q in range(4)]
    assert max(quarters) <= 16, quarters
    assert [d for _, d in probe.starts] == [f"D{i}" for i in range(50)]


async def test_concurrency_bound_is_respected():
    probe = ScriptedProbe(default_s=0.2)
    s = Scheduler(probe, devices(30), interval_s=5.0, spread=0.0, max_concurrency=4,
                  on_result=lambda r: None, on_cycle=lambda c: None)
    await run_for(s, 1.0)
    assert probe.max_in_flight == 4


async def test_caller_cancels_a_probe_that_outlives_its_budget():
    # Budget 0.1 s + the scheduler's 1 s margin; the slow device takes 5 s.
    probe = ScriptedProbe(budget_s=0.1, durations={"D1": 5.0})
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    s = Scheduler(probe, devices(3), interval_s=3.0, spread=0.0, max_concurrency=10,
                  on_result=results.append, on_cycle=cycles.append)
    await run_for(s, 2.0)
    by_id = {r.device_id: r for r in results}
    assert by_id["D1"].ok is False and by_id["D1"].reason == "caller timeout"
    assert dict(by_id["D1"].fields) == {"up": False}  # writable like any result of the probe
    assert by_id["D0"].ok and by_id["D2"].ok
    assert probe.cancelled == 1
    assert cycles[0].caller_timeouts == 1 and cycles[0].failed == 1


async def test_late_cycle_skips_the_next_tick_and_cycles_never_overlap():
    # Each cycle takes ~1.3 s (one slow device) with a 0.5 s interval.
    probe = ScriptedProbe(budget_s=5.0, durations={"D0": 1.3})
    cycles: list[CycleReport] = []
    s = Scheduler(probe, devices(2), interval_s=0.5, spread=0.0, max_concurrency=10,
                  on_result=lambda r: None, on_cycle=cycles.append)
    await run_for(s, 2.9)
    assert len(cycles) == 2
    assert s.cycles_skipped >= 3
    assert cycles[1].cycles_skipped >= 2
    # Never two cycles at once: the second cycle starts after the first ended.
    first_end = cycles[0].ts_ns + cycles[0].duration_s * 1e9
    assert cycles[1].ts_ns >= first_end
    assert probe.max_in_flight <= 2


@pytest.mark.parametrize("probe_class", ["ScriptedProbe", "ScriptedStarter"], ids=["tasks", "batch"])
async def test_a_probe_bug_becomes_a_failed_result_and_monitoring_goes_on(caplog, probe_class):
    probe = globals()[probe_class](raise_for={"D1"})
    results: list[ProbeResult] = []
    s = Scheduler(probe, devices(3), interval_s=0.4, spread=0.0, max_concurrency=10,
                  on_result=results.append, on_cycle=lambda c: None)
    await run_for(s, 1.0)
    bad = [r for r in results if r.device_id == "D1"]
    assert len(bad) >= 2 and all(r.reason == "probe error: ValueError" for r in bad)
    assert sum(r.ok for r in results) >= 4 and s.in_flight == 0
    assert "raised (a bug)" in caplog.text


async def test_cancelling_the_scheduler_cancels_the_running_cycle():
    probe = ScriptedProbe(default_s=10.0, budget_s=20.0)
    s = Scheduler(probe, devices(5), interval_s=30.0, spread=0.0, max_concurrency=10,
                  on_result=lambda r: None, on_cycle=lambda c: None)
    await run_for(s, 0.3)
    assert probe.cancelled == 5 and probe.in_flight == 0


@pytest.mark.parametrize(("probe_class", "at_least"), [("ScriptedProbe", 6), ("ScriptedStarter", 3)],
                         ids=["tasks", "batch"])
async def test_a_crashing_callback_is_logged_and_the_next_cycle_still_runs(caplog, probe_class, at_least):
    # Tasks: every device's callback runs (2 devices × ≥ 3 cycles); batch: the cycle stops at
    # its first crashed callback, the next cycles still run.
    calls = []

    def broken(result: ProbeResult) -> None:
        calls.append(result)
        raise RuntimeError("callback bug")

    probe = globals()[probe_class]()
    s = Scheduler(probe, devices(2), interval_s=0.3, spread=0.0, max_concurrency=10,
                  on_result=broken, on_cycle=lambda c: None)
    await run_for(s, 1.0)
    assert len(calls) >= at_least
    assert f"{probe.name}-cycle-0 crashed (a bug)" in caplog.text and "callback bug" in caplog.text


# --- the batch path (probes.base.Starter: no task per device) ----------------------------------


class ScriptedStarter(ScriptedProbe):
    """ScriptedProbe with `start`: the scheduler takes its batch path. A device answers through
    a timer after its duration; `never` devices never answer; `ignore_cancel`: a cancelled
    device still answers (a buggy probe), which must not count twice."""

    name = "starter"

    def __init__(self, *args, never=(), ignore_cancel: bool = False, miss=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.never = set(never)
        self.miss = set(miss)
        self.ignore_cancel = ignore_cancel
        self.cancels = 0

    def start(self, device: Device, on_done):
        self.starts.append((time.monotonic(), device.id))
        if device.id in self.raise_for:
            raise ValueError("scripted bug")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        ts_ns = time.time_ns()
        ok = device.id not in self.miss

        def answer() -> None:
            self.in_flight -= 1
            on_done(ProbeResult(device.id, self.name, ts_ns, ok, None if ok else "timeout", {"up": ok}))

        delay = 3600.0 if device.id in self.never else self.durations.get(device.id, self.default_s)
        timer = asyncio.get_running_loop().call_later(delay, answer)

        def cancel() -> None:
            self.cancels += 1
            if not self.ignore_cancel:
                self.in_flight -= 1
                timer.cancel()

        return cancel


async def test_batch_path_bounds_concurrency_and_reports_each_device_once_without_tasks():
    probe = ScriptedStarter(default_s=0.05)
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    tasks: list[int] = []

    def on_result(result: ProbeResult) -> None:
        results.append(result)
        tasks.append(len(asyncio.all_tasks()))

    s = Scheduler(probe, devices(40), interval_s=5.0, spread=0.0, max_concurrency=4,
                  on_result=on_result, on_cycle=cycles.append)
    await run_for(s, 1.5)
    assert probe.max_in_flight == 4
    assert sorted(r.device_id for r in results) == sorted(f"D{i}" for i in range(40))
    assert (cycles[0].targets, cycles[0].ok, cycles[0].failed) == (40, 40, 0)
    # The test, the scheduler and its cycle: no task per device.
    assert max(tasks) <= 3, max(tasks)
    assert s.in_flight == 0 and s.waiting == 0


async def test_batch_path_spreads_starts_over_the_configured_part_of_the_interval():
    probe = ScriptedStarter()
    s = Scheduler(probe, devices(50), interval_s=2.0, spread=0.5, max_concurrency=100,
                  on_result=lambda r: None, on_cycle=lambda c: None)
    await run_for(s, 1.5)
    times = [t for t, _ in probe.starts]
    assert 0.8 < times[-1] - times[0] < 1.2
    assert [d for _, d in probe.starts] == [f"D{i}" for i in range(50)]


@pytest.mark.parametrize("ignore_cancel", [False, True], ids=["cancelled", "answers-late"])
async def test_batch_path_times_out_a_device_after_its_budget_once(ignore_cancel: bool):
    # Budget 0.1 s + the margin (interval / 2 = 1 s); D1 never answers, or answers at 1.5 s
    # despite the cancel.
    durations = {"D1": 1.5} if ignore_cancel else {}
    probe = ScriptedStarter(budget_s=0.1, durations=durations, never=() if ignore_cancel else {"D1"},
                            ignore_cancel=ignore_cancel)
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    s = Scheduler(probe, devices(3), interval_s=2.0, spread=0.0, max_concurrency=10,
                  on_result=results.append, on_cycle=cycles.append)
    await run_for(s, 2.0)
    by_id = {r.device_id: r for r in results}
    assert len(results) == 3
    assert (by_id["D1"].ok, by_id["D1"].reason, dict(by_id["D1"].fields)) == (False, "caller timeout", {"up": False})
    assert by_id["D0"].ok and by_id["D2"].ok
    assert probe.cancels == 1
    assert (cycles[0].caller_timeouts, cycles[0].failed) == (1, 1)
    assert 1.0 < cycles[0].duration_s < 1.5


async def test_batch_path_cancelling_cancels_every_device_in_flight():
    probe = ScriptedStarter(default_s=10.0, budget_s=20.0)
    s = Scheduler(probe, devices(5), interval_s=30.0, spread=0.0, max_concurrency=10,
                  on_result=lambda r: None, on_cycle=lambda c: None)
    await run_for(s, 0.3)
    assert probe.cancels == 5 and probe.in_flight == 0 and s.in_flight == 0


async def test_batch_path_misses_go_through_confirmation_by_probe():
    # D1 misses its scheduled (batch) probe; the re-probe (probe(), the task path) answers.
    probe = ScriptedStarter(miss={"D1"})
    results: list[ProbeResult] = []
    s = Scheduler(probe, devices(3), interval_s=5.0, spread=0.0, max_concurrency=10,
                  on_result=results.append, on_cycle=lambda c: None,
                  confirm=ConfirmConfig(count=2, spacing_s=0.1))
    await run_for(s, 0.5)
    by_id = {r.device_id: r for r in results}
    assert len(results) == 3
    assert (by_id["D1"].ok, by_id["D1"].confirmations, by_id["D1"].fields["up"]) == (True, 1, True)
    assert by_id["D0"].confirmations == 0 and s.confirmations["answered"] == 1 and s.confirming == 0


async def test_batch_path_an_event_loop_held_up_for_seconds_makes_no_caller_timeout():
    """The batch path's only deadline is the cycle's (interval / 2 past the budgets): a loop held
    up 1.5 s (a long evaluation at 100,000 devices) delays the answers, it does not turn them
    into caller timeouts, which would make every device in flight unknown."""
    probe = ScriptedStarter(default_s=0.05, budget_s=0.1)
    results: list[ProbeResult] = []
    cycles: list[CycleReport] = []
    s = Scheduler(probe, devices(20), interval_s=4.0, spread=0.0, max_concurrency=50,
                  on_result=results.append, on_cycle=cycles.append)
    asyncio.get_running_loop().call_later(0.02, time.sleep, 1.5)
    await run_for(s, 2.5)
    assert len(results) == 20 and all(r.ok for r in results)
    assert (cycles[0].ok, cycles[0].caller_timeouts) == (20, 0) and cycles[0].duration_s > 1.5
