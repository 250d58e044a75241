"""The durable notification outbox: fault events wait in the state database until their route
has delivered them.

Data flow: the fault store changes a fault and, in the same SQLite transaction, calls
`enqueue()` once per route the event goes to → `outbox` rows → `OutboxWorker`: one task per
route hands that route's pending rows, oldest first, to `route.deliver()` and records the
outcome. A crash before the commit loses the fault change and its notification together; after
it, both survive. Delivery itself is at least once, never exactly once: an event is sent again
when the peer took it but fleetmon did not learn so in time:
- a crash (kill -9, power) between the peer accepting a message and its rows being marked
  delivered: routes report each accepted message at once (`progress`, recorded before the next
  request goes out), so a crash repeats at most the one message that was in flight;
- an answer that never came (a lost MQTT PUBACK, an HTTP answer after the timeout, a broken
  connection): the event is sent again later. The WeCom route waits `resend_after_s` (doubling)
  before such a resend, so that a slow WeCom does not turn one message into many.
`FaultEvent.id` (the row id) is stable across attempts and travels with every message (the
webhook's `Idempotency-Key` header and "id" field, the MQTT payload's "id", "#17" in a WeCom
text), so receivers and people can drop repeats.

Tables (in the state database, through `StateDB.execute`, so on its one thread and connection):

    outbox(id INTEGER PRIMARY KEY,   -- delivery order within a route; FaultEvent.id
           route TEXT,               -- configured route name
           event TEXT,               -- FaultEvent.to_dict() without "id", JSON
           created_ns, attempts,     -- attempts: deliver() calls the row was offered to
           next_attempt_ns,          -- when the worker tries it again (UTC ns; informative)
           delivered_ns NULL, last_error NULL)
    disabled_routes(route PRIMARY KEY, reason, since_ns)

Per route, the worker
- never reorders: only the oldest pending row can be attempted; rows behind it wait with it;
- never drops: rows leave the outbox only by `prune`, after delivery and `prune_after_days`;
- waits `Delivery.retry_after_s` exactly when the route gives it (the peer's Retry-After, a rate
  limit), otherwise backs off exponentially with jitter while deliveries fail (`Delivery.error`,
  or no progress at all); a route that delivered a prefix without error is called again at once;
- treats a `deliver()` that raises as a failed attempt (a bug: logged with its traceback once);
- stops using a route that answers `Delivery.disabled` (recorded in disabled_routes, logged at
  ERROR, `on_disabled(route, reason)` called); its rows stay pending and go out after the
  operator fixes the route and restarts fleetmon.
Each start gives every route a fresh chance at once: backoff and disabled states are not carried
over a restart (a restart is when an operator has fixed a key or a URL). Rows of a route that
is no longer configured are kept and reported at start.

Logging ("fleetmon.outbox"): one line when a route starts failing, one when its queue has
drained again ("delivered N queued notifications after T s"), never one per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

from monitor.state.db import Schema, StateDB, migrate
from rules.model import EventKind, Fault, FaultEvent
from rules.alerting.notifiers.base import Delivery, Route

log = logging.getLogger("fleetmon.outbox")

_NS_PER_DAY = 86_400 * 10**9
_PRUNE_EVERY_S = 3600.0
WRITER = "outbox"  # its name in the state DB's WriteHealth

SCHEMA = Schema("outbox", (
    """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    route           TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    created_ns      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns INTEGER NOT NULL,
    delivered_ns    INTEGER,
    last_error      TEXT
);
-- The worker's only hot query: a route's pending rows in id order.
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (route, id) WHERE delivered_ns IS NULL;
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_ns) WHERE delivered_ns IS NOT NULL;
CREATE TABLE IF NOT EXISTS disabled_routes (
    route    TEXT    PRIMARY KEY,
    reason   TEXT    NOT NULL,
    since_ns INTEGER NOT NULL
);
""",
))


def enqueue(conn: sqlite3.Connection, route: str, kind: EventKind, ts_ns: int, fault: Fault) -> int:
    """Queue the event `kind` of `fault` at `ts_ns` (UTC ns) for `route`; returns the row id
    (the event's id). Runs on the caller's connection and inside its transaction, if one is
    open: the fault store calls it in the transaction that changes the fault, then `wake()`s
    the worker after the commit. Raises TypeError when `fault.details` is not JSON-serialisable
    (which aborts the caller's transaction: better than a notification that cannot be stored)."""
    doc = FaultEvent(0, kind, ts_ns, fault).to_dict()
    del doc["id"]  # the row id is the event id
    now = time.time_ns()
    cur = conn.execute(
        "INSERT INTO outbox (route, event, created_ns, attempts, next_attempt_ns) VALUES (?, ?, ?, 0, ?)",
        (route, json.dumps(doc, ensure_ascii=False, separators=(",", ":")), now, now),
    )
    return int(cur.lastrowid)


@dataclass(slots=True)
class _Trouble:
    """A route's episode of failed deliveries, from the first failure until its queue drains."""

    since: float  # time.monotonic()
    delivered: int = 0  # rows delivered during the episode
    traceback_logged: bool = False


@dataclass(slots=True)
class _RouteState:
    name: str
    route: Route
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    not_before: float = 0.0  # time.monotonic() before which the head row is not attempted
    failures: int = 0  # consecutive failed attempts: the backoff exponent
    trouble: _Trouble | None = None
    # Outcomes the state DB did not take (disk full): retried before the next attempt; their
    # delivered ids are not offered again meanwhile (no repeated message).
    unrecorded: list[Callable[[sqlite3.Connection], None]] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)


class OutboxWorker:
    """Delivers the outbox, one task per route. `async with OutboxWorker(db, routes) as outbox:`

    - db: the open state database; routes: {route name: Route}, already entered (the caller
      owns their lifecycle: enter them before the worker, exit them after it).
    - on_disabled(route, reason): called once when a route reports itself disabled (the
      daemon raises a local alarm from it); exceptions it raises are logged and ignored.
    - backoff_initial_s / backoff_max_s: exponential backoff while a route fails (±20 % jitter).
    - poll_s: how often each route looks for new rows without `wake()` (a safety net).
    - batch_size: at most this many events per `deliver()` call.
    - prune_after_days: delivered rows older than this are deleted (at start, then hourly).
    """

    def __init__(
        self,
        db: StateDB,
        routes: Mapping[str, Route],
        *,
        on_disabled: Callable[[str, str], None] | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        poll_s: float = 5.0,
        batch_size: int = 50,
        prune_after_days: float = 30.0,
    ) -> None:
        self._db = db
        self._states = {name: _RouteState(name, route) for name, route in routes.items()}
        self._on_disabled = on_disabled
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._poll_s = poll_s
        self._batch_size = batch_size
        self._prune_after_days = prune_after_days
        self._disabled: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._bookkeeping: set[asyncio.Future[None]] = set()

    # -- public API ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._db.execute(self._prepare)
        await self.prune()
        self._tasks = [asyncio.create_task(self._run(s), name=f"outbox:{s.name}") for s in self._states.values()]
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="outbox:prune"))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Outcomes of deliveries that completed are written even if the stop interrupted the
        # task while it recorded them: otherwise those events would be sent again next start.
        await asyncio.gather(*self._bookkeeping, return_exceptions=True)
        self._tasks = []

    def wake(self) -> None:
        """Look for new rows now (call after committing `enqueue()`s); routes that are backing
        off keep waiting."""
        for state in self._states.values():
            state.wake.set()

    async def pending(self, route: str | None = None) -> int:
        """Rows not yet delivered, of `route` or of all routes (configured or not)."""
        if route is None:
            sql, args = "SELECT count(*) FROM outbox WHERE delivered_ns IS NULL", ()
        else:
            sql, args = "SELECT count(*) FROM outbox WHERE delivered_ns IS NULL AND route = ?", (route,)
        return int(await self._db.execute(lambda conn: conn.execute(sql, args).fetchone()[0]))

    def disabled(self) -> dict[str, str]:
        """Routes disabled since the start: {route: reason}."""
        return dict(self._disabled)

    async def prune(self) -> int:
        """Delete rows delivered more than `prune_after_days` ago; returns how many."""
        cutoff = time.time_ns() - int(self._prune_after_days * _NS_PER_DAY)
        sql = "DELETE FROM outbox WHERE delivered_ns IS NOT NULL AND delivered_ns < ?"
        return await self._db.execute(lambda conn: conn.execute(sql, (cutoff,)).rowcount)

    # -- start -------------------------------------------------------------------------------

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """(db thread) Schema; forget the last run's disabled routes; report orphaned rows."""
        migrate(conn, SCHEMA)
        conn.execute("DELETE FROM disabled_routes")
        counts = conn.execute(
            "SELECT route, count(*) FROM outbox WHERE delivered_ns IS NULL GROUP BY route ORDER BY route"
        ).fetchall()
        for route, count in counts:
            if route not in self._states:
                log.warning(
                    "%d queued notifications for route %r, which is not configured: kept until it is configured again",
                    count, route,
                )

    # -- one route ---------------------------------------------------------------------------

    async def _run(self, state: _RouteState) -> None:
        """Deliver `state`'s rows until the route is disabled or the worker stops."""
        while True:
            wait_s = state.not_before - time.monotonic()
            if wait_s > 0:
                await self._sleep(state, wait_s)
                continue
            try:
                done = await self._round(state)
            except Exception as exc:  # the database failed, or a row cannot be decoded
                self._failed(state, f"outbox error: {exc!r}", exc)
                state.not_before = time.monotonic() + self._backoff_s(state.failures)
                continue
            if done:
                return

    async def _round(self, state: _RouteState) -> bool:
        """One delivery attempt of the route's oldest pending rows; True when the route is
        disabled and its task should end."""
        if not await self._rerecord(state):
            return False
        rows = await self._db.execute(lambda conn: _load(conn, state.name, self._batch_size + len(state.sent)))
        rows = [row for row in rows if row[0] not in state.sent][: self._batch_size]
        if not rows:
            self._drained(state)
            await self._sleep(state, self._poll_s)
            return False
        events = [FaultEvent.from_dict({"id": row_id, **json.loads(doc)}) for row_id, doc in rows]
        batch = {e.id for e in events}

        async def progress(ids: Sequence[int]) -> None:
            # Recorded before the route sends its next message (only ids of this batch).
            await self._mark_delivered(state, [i for i in ids if i in batch])

        try:
            outcome, exc = await state.route.deliver(events, progress), None
        except Exception as raised:  # a bug in the route: it must answer with a Delivery
            outcome, exc = Delivery((), error=f"route raised {raised!r}"), raised
        # Only ids of this batch: a route reporting other ids must not mark other rows.
        reported = set(outcome.delivered)
        delivered = [e.id for e in events if e.id in reported]
        delay_s = self._schedule(state, len(events) - len(delivered), bool(delivered), outcome, exc)
        await self._record(state, events, delivered, outcome.error or outcome.disabled, delay_s)
        if state.trouble is not None:
            state.trouble.delivered += len(delivered)
        if outcome.disabled is not None:
            await self._disable(state, outcome.disabled)
            return True
        return False

    def _schedule(
        self, state: _RouteState, rest: int, progressed: bool, outcome: Delivery, exc: BaseException | None
    ) -> float:
        """Seconds until the route's next attempt, after an attempt that left `rest` events
        undelivered. A failure is an error, or no progress without a retry_after_s (which is a
        rate limit, not a failure)."""
        failed = rest > 0 and outcome.disabled is None and (
            outcome.error is not None or (not progressed and outcome.retry_after_s is None)
        )
        if failed:
            self._failed(state, outcome.error or "the route delivered nothing and gave no reason", exc)
        else:
            state.failures = 0
        if outcome.retry_after_s is not None:
            delay_s = max(0.0, outcome.retry_after_s)
        elif failed:
            delay_s = self._backoff_s(state.failures)
        else:
            delay_s = 0.0
        state.not_before = time.monotonic() + delay_s
        return delay_s

    def _failed(self, state: _RouteState, error: str, exc: BaseException | None) -> None:
        """Count a failed attempt. Logged when it starts an episode of failures, and when it is
        the episode's first exception (its traceback says where the bug is)."""
        state.failures += 1
        starts = state.trouble is None
        if state.trouble is None:
            state.trouble = _Trouble(time.monotonic())
        show_traceback = exc is not None and not state.trouble.traceback_logged
        if show_traceback:
            state.trouble.traceback_logged = True
        if starts or show_traceback:
            log.log(
                logging.ERROR if exc is not None else logging.WARNING,
                "route %s failing: %s; notifications stay queued and are retried",
                state.name, error, exc_info=exc if show_traceback else None,
            )

    def _drained(self, state: _RouteState) -> None:
        """The route has nothing pending: close its episode of failures, if any."""
        trouble, state.trouble = state.trouble, None
        if trouble is not None:
            log.info(
                "route %s recovered: delivered %d queued notifications after %.1f s",
                state.name, trouble.delivered, time.monotonic() - trouble.since,
            )

    async def _record(
        self, state: _RouteState, events: list[FaultEvent], delivered: list[int], error: str | None, delay_s: float
    ) -> None:
        """Write an attempt's outcome to its rows, in one transaction; when the state DB does not
        take it, keep it for `_rerecord` (reported to `db.health`)."""
        now = time.time_ns()
        offered = [(e.id,) for e in events]
        done = set(delivered)
        waiting = [(error, now + int(delay_s * 1e9), e.id) for e in events if e.id not in done]

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                conn.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", offered)
                conn.executemany(
                    "UPDATE outbox SET delivered_ns = ?, last_error = NULL WHERE id = ? AND delivered_ns IS NULL",
                    [(now, row_id) for row_id in delivered],
                )
                conn.executemany("UPDATE outbox SET last_error = ?, next_attempt_ns = ? WHERE id = ?", waiting)

        await self._write(state, op, delivered)

    async def _mark_delivered(self, state: _RouteState, ids: Sequence[int]) -> None:
        """Mark rows delivered now, as the route reports each accepted message."""
        if not ids:
            return
        now = time.time_ns()
        rows = [(now, row_id) for row_id in ids]

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "UPDATE outbox SET delivered_ns = ?, last_error = NULL WHERE id = ? AND delivered_ns IS NULL", rows
                )

        await self._write(state, op, ids)

    async def _write(self, state: _RouteState, op: Callable[[sqlite3.Connection], None], delivered: Sequence[int]) -> None:
        """Run a bookkeeping write (`delivered`: the row ids it marks delivered) shielded and
        tracked, so that a stop that interrupts the task does not lose it (see __aexit__); when
        the state DB does not take it, keep it for `_rerecord` (reported to `db.health`), and
        offer its delivered rows no more meanwhile."""
        write = asyncio.ensure_future(self._db.execute(op))
        self._bookkeeping.add(write)
        write.add_done_callback(self._bookkeeping.discard)
        try:
            await asyncio.shield(write)
        except sqlite3.Error as exc:
            self._db.health.failed(WRITER, exc)
            state.unrecorded.append(op)
            state.sent.update(delivered)
        else:
            self._db.health.ok(WRITER)

    async def _rerecord(self, state: _RouteState) -> bool:
        """Store the outcomes the state DB did not take, oldest first; False (and the route backs
        off) while it still does not."""
        if not state.unrecorded:
            return True
        while state.unrecorded:
            try:
                await self._db.execute(state.unrecorded[0])
            except sqlite3.Error as exc:
                self._db.health.failed(WRITER, exc)
                state.failures += 1
                state.not_before = time.monotonic() + self._backoff_s(state.failures)
                return False
            state.unrecorded.pop(0)
        state.sent.clear()
        state.failures = 0
        self._db.health.ok(WRITER)
        return True

    async def _disable(self, state: _RouteState, reason: str) -> None:
        self._disabled[state.name] = reason
        sql = "INSERT OR REPLACE INTO disabled_routes (route, reason, since_ns) VALUES (?, ?, ?)"
        row = (state.name, reason, time.time_ns())
        await self._db.execute(lambda conn: conn.execute(sql, row))
        queued = await self.pending(state.name)
        log.error(
            "route %s disabled: %s; its %d queued notifications are kept and sent after the route is fixed "
            "and fleetmon restarted",
            state.name, reason, queued,
        )
        if self._on_disabled is not None:
            try:
                self._on_disabled(state.name, reason)
            except Exception:
                log.exception("on_disabled(%r) failed", state.name)

    async def _sleep(self, state: _RouteState, seconds: float) -> None:
        """Wait `seconds` or until `wake()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wake.wait(), seconds)
        state.wake.clear()

    def _backoff_s(self, failures: int) -> float:
        """backoff_initial_s × 2^(failures-1), ±20 % jitter (so that routes and daemons do not
        retry in step), at most backoff_max_s."""
        base = self._backoff_initial_s * 2 ** min(max(failures - 1, 0), 30)
        return min(self._backoff_max_s, base * random.uniform(0.8, 1.2))

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY_S)
            try:
                await self.prune()
            except sqlite3.Error:
                log.exception("pruning delivered notifications failed; retrying in %.0f s", _PRUNE_EVERY_S)


def _load(conn: sqlite3.Connection, route: str, limit: int) -> list[tuple[int, str]]:
    """(db thread) The route's oldest pending rows: [(id, event JSON)]."""
    sql = "SELECT id, event FROM outbox WHERE route = ? AND delivered_ns IS NULL ORDER BY id LIMIT ?"
    return conn.execute(sql, (route, limit)).fetchall()
