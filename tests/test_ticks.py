"""The daemon's wake-up grid (monitor/core/ticks.py): the ICMP engine and the scheduler put
their timers on it, so one wake-up of the process serves both."""

from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.app.scheduler import Scheduler
from monitor.core.ticks import GRID_NS, at_loop_time, next_tick_ns, sleep_to_tick
from probes.icmp import IcmpConfig, IcmpEngine, IcmpProbe, PingParams
from tests.plugins.factories import device

root = pytest.mark.root


def test_next_tick_is_the_first_multiple_after_now_and_periods_stay_on_the_grid() -> None:
    assert next_tick_ns(GRID_NS, 0) == GRID_NS
    assert next_tick_ns(GRID_NS, GRID_NS - 1) == GRID_NS
    assert next_tick_ns(GRID_NS, GRID_NS) == 2 * GRID_NS  # strictly after
    assert next_tick_ns(2 * GRID_NS, 3 * GRID_NS) == 4 * GRID_NS
    # Every tick of a longer period is a tick of the grid, and the same instant is the same float.
    for now in range(0, 10**9, 7_777_777):
        tick = next_tick_ns(4 * GRID_NS, now)
        assert tick % GRID_NS == 0 and at_loop_time(tick) == at_loop_time(next_tick_ns(GRID_NS, tick - 1))
    for bad in (0, -GRID_NS, GRID_NS + 1, GRID_NS // 2):
        with pytest.raises(ValueError, match="not a positive multiple"):
            next_tick_ns(bad, 0)


async def test_sleep_to_tick_wakes_on_the_grid() -> None:
    loop = asyncio.get_running_loop()
    for _ in range(5):
        await sleep_to_tick(2 * GRID_NS)
        assert round(loop.time() * 1e9) % (2 * GRID_NS) < 3_000_000  # the timer's own lateness


class _Timers:
    """Records the `when` of every timer the event loop is asked for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.when: list[float] = []
        original = loop.call_at

        def call_at(when, callback, *args, **kwargs):
            self.when.append(when)
            return original(when, callback, *args, **kwargs)

        monkeypatch.setattr(loop, "call_at", call_at)

    def off_grid(self) -> list[float]:
        return [w for w in self.when if round(w * 1e9) % GRID_NS]


@root
async def test_the_engine_and_the_scheduler_set_their_timers_on_the_grid(monkeypatch) -> None:
    # Any timer off the grid (an asyncio.sleep, a timer per echo or per reply) would wake the
    # process on its own; on the grid, the engine's and the scheduler's ticks coincide.
    timers = _Timers(asyncio.get_running_loop(), monkeypatch)
    devices = [device(f"d{i}", address=f"127.0.0.{i + 1}") for i in range(40)]
    results = []
    async with IcmpProbe(IcmpConfig(count=3, echo_interval_ms=30, timeout_s=0.5, retries=0)) as probe:
        await Scheduler(probe, devices, interval_s=2, spread=0.25, max_concurrency=5000,
                        on_result=results.append, on_cycle=lambda report: None).run_once()
        stats = await probe.engine.ping("127.0.0.1", PingParams(count=2, echo_interval_s=0.02))
    assert len(results) == 40 and all(r.ok and r.fields["received"] == 3 for r in results)
    assert stats.received == 2
    assert len(timers.when) > 20 and timers.off_grid() == []


@root
async def test_a_slow_pace_warns_once_and_still_sends_everything(caplog) -> None:
    # 60 echoes at 40/s: the queue is 1.5 s behind at once; one warning, every echo answered.
    caplog.set_level(logging.WARNING, logger="fleetmon.icmp")
    async with IcmpEngine(mode="raw", packets_per_second=40) as engine:
        results = await engine.ping_many([f"127.0.1.{i}" for i in range(1, 61)], PingParams(count=1, timeout_s=3))
    assert [r.received for r in results] == [1] * 60
    warnings = [r.getMessage() for r in caplog.records if "ICMP send queue is" in r.getMessage()]
    assert len(warnings) == 1 and "packets_per_second 40 is too low" in warnings[0]


@root
async def test_a_bug_that_stops_the_engine_is_logged_at_once(caplog, monkeypatch) -> None:
    caplog.set_level(logging.ERROR, logger="fleetmon.icmp")

    def broken(cores, budget):
        raise RuntimeError("a bug in the sender")

    monkeypatch.setattr(IcmpEngine, "_send_burst", staticmethod(broken))
    async with IcmpEngine(mode="raw") as engine:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.ping("127.0.0.1", PingParams(count=1, timeout_s=0.2)), 0.5)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "ICMP engine stopped by a bug" in errors[0].getMessage()
    assert "a bug in the sender" in caplog.text
