"""One background loop for the daemon's periodic components (work-order clocks, scheduled
reports): a step run now and then every interval, or sooner when woken, as one asyncio task
while the component is entered; a failing step is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable, Self


class PeriodicTask:
    """`async with PeriodicTask(step, interval_s, name=…, log=…, what=…)`: runs `await step()`
    at once, then every `interval_s()` seconds (a callable, read each round, so a reloaded value
    applies) or as soon as `wake()` is called. An exception from the step (a bug, the database,
    a directory) is logged as "<what> failed" with its traceback and retried next round; the
    task is cancelled and awaited on exit."""

    def __init__(
        self, step: Callable[[], Awaitable[object]], interval_s: Callable[[], float], *,
        name: str, log: logging.Logger, what: str,
    ) -> None:
        self._step = step
        self._interval_s = interval_s
        self._name = name
        self._log = log
        self._what = what
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Run the step now rather than at the end of the interval."""
        self._wake.set()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=self._name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                self._log.exception("%s failed", self._what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s())
            self._wake.clear()
