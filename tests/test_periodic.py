"""monitor.core.periodic.PeriodicTask: the loop of the work-order clocks and the report schedule."""

import asyncio
import logging

from monitor.core.periodic import PeriodicTask

log = logging.getLogger("fleetmon.test.periodic")


async def test_a_failing_step_is_logged_and_the_loop_goes_on_and_wake_runs_it_at_once(caplog):
    calls = []

    async def step():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("disk on fire")

    async with PeriodicTask(step, lambda: 3600.0, name="t", log=log, what="test step") as loop:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if calls:
                break
        assert calls == [0]
        loop.wake()  # the interval is an hour: only the wake can bring the second run
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(calls) == 2:
                break
        assert calls == [0, 1]
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == ["test step failed"]
    await asyncio.sleep(0.05)
    assert calls == [0, 1]  # stopped on exit
