"""The state database's single writer: transitions in arrival order, a heartbeat per cycle.

Callbacks on the event loop must never wait on SQLite, so they queue their work here and one
task stores it, coalescing what piled up into one transaction (monitor.state.db.StateDB.record).
"""

from __future__ import annotations

import asyncio
from typing import Self

from monitor.state.db import StateDB
from monitor.state.tracker import Transition


class Recorder:
    """Use as `async with Recorder(db) as recorder:`; `store()` and `heartbeat()` never block.
    Leaving stores everything queued before it (the last transitions survive SIGTERM)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        # Work for the task; None asks it to finish.
        self._pending: asyncio.Queue[list[Transition] | None] = asyncio.Queue()
        self._heartbeat_due = False
        self._task: asyncio.Task[None] | None = None

    def store(self, transitions: list[Transition]) -> None:
        """Queue transitions (and the current states they set) for the state DB, in this order."""
        self._pending.put_nowait(transitions)

    def heartbeat(self) -> None:
        """Record, after what is queued, that fleetmon is watching (sessions.last_seen_ns): the
        evidence that tells "device down" from "fleetmon was not running"."""
        self._heartbeat_due = True
        self._pending.put_nowait([])

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
            if self._heartbeat_due:
                self._heartbeat_due = False
                await self._db.heartbeat()
            if None in items:
                return
