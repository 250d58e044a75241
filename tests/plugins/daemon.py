"""Running the daemon inside a test: `running_daemon(config)` and `until(...)`, shared by the
end-to-end tests (alerting, SNMP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import AsyncIterator, Callable

from monitor.app.config import load_config
from monitor.app.daemon import Daemon
from monitor.fleet.inventory import load_inventory


async def until(predicate: Callable[[], object], timeout_s: float, what: str):
    """Poll `predicate` every 0.1 s; its first truthy value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running_daemon(
    path: Path,
    ready: Callable[[Daemon], object] = lambda d: d.snapshot is not None,
    what: str = "the first cycle",
    timeout_s: float = 10,
) -> AsyncIterator[Daemon]:
    """The daemon of config `path`, running until the block ends, once `ready(daemon)` holds."""
    cfg = load_config(path)
    d = Daemon(cfg, load_inventory(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        await until(lambda: ready(d), timeout_s, what)
        yield d
    finally:
        stop.set()
        await task
