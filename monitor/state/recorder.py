"""The state database's single writer: transitions in arrival order, a heartbeat per cycle and
each probe's cycles (monitor.state.db.StateDB.probe_cycle).

Callbacks on the event loop must never wait on SQLite, so they queue their work here and one
task stores it, coalescing what piled up into one transaction (monitor.state.db.StateDB.record).
"""

from __future__ import annotations

import asyncio
from typing import Self

from monitor.state.db import StateDB
from monitor.state.tracker import Transition


class Recorder:
    """Use as `async with Recorder(db) as recorder:`; `store()`, `heartbeat()` and `cycle()`
    never block.
    Leaving stores everything queued before it (the last transitions survive SIGTERM)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        # Work for the task; None asks it to finish.
        self._pending: asyncio.Queue[list[Transition] | None] = asyncio.Queue()
        self._heartbeat_due = False
        self._cycles: list[tuple[str, int, int, int]] = []
        self._task: asyncio.Task[None] | None = None

    def store(self, transitions: list[Transition]) -> None:
        """Queue transitions (and the current states they set) for the state DB, in this order."""
        self._pending.put_nowait(transitions)

    def heartbeat(self) -> None:
        """Record, after what is queued, that fleetmon is watching (sessions.last_seen_ns): the
        evidence that tells "device down" from "fleetmon was not running"."""
        self._heartbeat_due = True
        self._pending.put_nowait([])

    def cycle(self, probe: str, start_ns: int, end_ns: int, grace_ns: int) -> None:
        """Record, after what is queued, that a cycle of `probe` ran (StateDB.probe_cycle), and
        the heartbeat: so that a probe that stalls while the others go on is seen."""
        self._cycles.append((probe, start_ns, end_ns, grace_ns))
        self.heartbeat()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="statedb-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._pending.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while True:
            items = [await self._pending.get()]
            while not self._pending.empty():  # coalesce into one SQLite transaction
                items.append(self._pending.get_nowait())
            await self._db.record(t for batch in items if batch is not None for t in batch)
            cycles, self._cycles = self._cycles, []
            for cycle in cycles:
                await self._db.probe_cycle(*cycle)
            if self._heartbeat_due:
                self._heartbeat_due = False
                await self._db.heartbeat()
            if None in items:
                return
