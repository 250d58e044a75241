"""The state database's single writer: transitions in arrival order, a heartbeat per cycle and
each probe's cycles (monitor.state.db.StateDB.probe_cycle).

Callbacks on the event loop must never wait on SQLite, so they queue their work here and one
task stores it, coalescing what piled up into one transaction (monitor.state.db.StateDB.record).

When a write fails (disk full, I/O error) nothing is lost while memory lasts: the task keeps
the transitions and cycles it could not store, in order, retries with backoff
(monitor.state.writes.Backoff) and stores them once the database takes writes again; the
failure and the recovery are reported to `db.health`. Past MAX_BACKLOG transitions the oldest
are dropped and counted (WriteHealth.drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from typing import Self

from monitor.state.db import StateDB
from monitor.state.tracker import Transition
from monitor.state.writes import Backoff, cause_of

log = logging.getLogger("fleetmon.statedb")

WRITER = "recorder"
MAX_BACKLOG = 200_000
"""Transitions kept in memory while the state DB fails (~200 bytes each: ~40 MB); the oldest
beyond are dropped. At 10,000 devices a dead county line is ~10,000 transitions."""
MAX_CYCLES = 10_000
"""Probe cycles kept in memory while the state DB fails (a day of 10 s cycles of one probe)."""


class Recorder:
    """Use as `async with Recorder(db) as recorder:`; `store()`, `heartbeat()` and `cycle()`
    never block.
    Leaving stores everything queued before it (the last transitions survive SIGTERM), with
    one last attempt when the database is failing: what it cannot store then is logged as
    lost, and leaving does not raise."""

    def __init__(self, db: StateDB, backoff: Backoff | None = None) -> None:
        self._db = db
        self._backoff = backoff or Backoff()
        # Work for the task; None asks it to finish.
        self._pending: asyncio.Queue[list[Transition] | None] = asyncio.Queue()
        self._heartbeat_due = False
        self._cycles: deque[tuple[str, int, int, int]] = deque()
        self._backlog: deque[Transition] = deque()  # taken from _pending, not stored yet
        self._stopping = asyncio.Event()
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
        if len(self._cycles) > MAX_CYCLES:
            self._cycles.popleft()
            self._db.health.drop(WRITER, 1, "probe cycle")
        self.heartbeat()

    @property
    def backlog(self) -> int:
        """Transitions taken but not stored yet (they wait for the database)."""
        return len(self._backlog)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="statedb-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._pending.put_nowait(None)
        self._stopping.set()
        await self._task

    async def _run(self) -> None:
        stopping = False
        while True:
            if not (self._backlog or self._cycles or self._heartbeat_due):
                stopping |= await self._take(wait=True)
            stopping |= await self._take(wait=False)  # coalesce into one SQLite transaction
            try:
                await self._write()
            except sqlite3.Error as exc:
                self._db.health.failed(WRITER, exc)
                if stopping:
                    log.error("stopping with %d transitions and %d probe cycles not stored: %s",
                              len(self._backlog), len(self._cycles), cause_of(exc))
                    return
                with contextlib.suppress(TimeoutError):  # a stop cuts the wait short: one last try
                    await asyncio.wait_for(self._stopping.wait(), self._backoff.next_s())
                continue
            self._backoff.reset()
            self._db.health.ok(WRITER)
            if stopping:
                return

    async def _take(self, *, wait: bool) -> bool:
        """Move queued transitions to the backlog (the first one awaited when `wait`); True when
        the stop was among them."""
        items = [await self._pending.get()] if wait else []
        while not self._pending.empty():
            items.append(self._pending.get_nowait())
        for batch in items:
            if batch:
                self._backlog.extend(batch)
        over = len(self._backlog) - MAX_BACKLOG
        if over > 0:
            for _ in range(over):
                self._backlog.popleft()
            self._db.health.drop(WRITER, over, "transitions")
        return None in items

    async def _write(self) -> None:
        """Store the backlog, then the cycles, then the heartbeat; each part leaves memory only
        once stored, so a retry never stores anything twice."""
        if self._backlog:
            batch = list(self._backlog)
            await self._db.record(batch)
            for _ in batch:
                self._backlog.popleft()
        while self._cycles:
            try:
                await self._db.probe_cycle(*self._cycles[0])
            except ValueError:  # a cycle that can never be stored (a bug): not retried
                log.exception("probe cycle %r not stored", self._cycles[0])
            self._cycles.popleft()
        if self._heartbeat_due:
            await self._db.heartbeat()
            self._heartbeat_due = False
