"""Whether the state database takes writes, and what its writers do when it does not.

Every writer of the state DB (the Recorder's transitions and heartbeats, the FaultBook's
faults and outbox rows, the outbox's delivery outcomes) keeps what it could not store in
memory, in order, and stores it once the database takes writes again (a disk that filled up
and was cleared, an I/O error that passed). Each writer reports every attempt here:
`failed(writer, exc)` or `ok(writer)`. The database is *failing* from the first failure until
every writer that failed has stored again; listeners hear of each change once (the daemon's
/healthz answers 503 meanwhile, alerting sends "状态库写入失败" and its recovery straight
through the notification routes, since the outbox lives in the failing database).

Log ("fleetmon.statedb"): one ERROR line when writes start failing, saying what failed
("状态库写入失败: database or disk is full (SQLITE_FULL, ENOSPC)"), one INFO line when they work
again, and one ERROR line whenever a writer had to drop writes because its bound in memory was
reached (counted in `dropped`).
"""

from __future__ import annotations

import errno
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("fleetmon.statedb")

# SQLite's primary result codes (https://www.sqlite.org/rescode.html); extended codes keep the
# primary one in their low byte (SQLITE_IOERR_WRITE = 778 = 10 | 3 << 8).
SQLITE_IOERR = 10
SQLITE_FULL = 13

BACKOFF_INITIAL_S = 0.2
"""First retry of a failed write, seconds; doubled per failure (±20 % jitter) up to BACKOFF_MAX_S."""
BACKOFF_MAX_S = 5.0
"""Longest wait between retries, seconds: how late at most the first write after the cause is
gone is stored."""


def cause_of(exc: BaseException) -> str:
    """What failed, for people and /healthz: SQLite's message and its code name, with the
    operating system's name for a full disk ("database or disk is full (SQLITE_FULL, ENOSPC)",
    "disk I/O error (SQLITE_IOERR_WRITE)")."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None)
        if code is not None and code & 0xFF == SQLITE_FULL:
            return f"{exc} (SQLITE_FULL, ENOSPC)"
        return f"{exc} ({name})" if name else str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, 'OSError')})"
    return repr(exc)


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """The state DB is failing: since when (UTC ns), the latest cause (cause_of), and the
    writers that have not stored since they failed."""

    cause: str
    since_ns: int
    writers: tuple[str, ...]


class WriteHealth:
    """The state DB's write health, fed by its writers; `failure` is None while writes work.

    `listeners` are called with a WriteFailure when writes start failing and with None when
    they work again (on the event loop; they must not block or raise)."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}  # writer → latest cause
        self._since_ns: int | None = None
        self._since: float = 0.0
        self.dropped = 0
        """Writes dropped by writers whose bound in memory was reached, since the start."""
        self.listeners: list[Callable[[WriteFailure | None], None]] = []

    @property
    def failure(self) -> WriteFailure | None:
        if not self._failing or self._since_ns is None:
            return None
        return WriteFailure(list(self._failing.values())[-1], self._since_ns, tuple(self._failing))

    def failed(self, writer: str, exc: BaseException) -> None:
        """`writer`'s attempt failed with `exc` (what it tried is kept and retried)."""
        cause = cause_of(exc)
        starts = not self._failing
        self._failing[writer] = cause
        if starts:
            self._since_ns, self._since = time.time_ns(), time.monotonic()
            log.error("状态库写入失败: %s (%s); writes are kept in memory and retried", cause, writer)
            self._tell(self.failure)

    def ok(self, writer: str) -> None:
        """`writer` stored everything it had."""
        if self._failing.pop(writer, None) is not None and not self._failing:
            log.info("状态库写入恢复: the state database takes writes again after %.1f s", time.monotonic() - self._since)
            self._since_ns = None
            self._tell(None)

    def drop(self, writer: str, count: int, what: str) -> None:
        """`writer` dropped `count` of its oldest writes (`what`) to stay within its bound."""
        self.dropped += count
        log.error("state database failing too long: %s dropped %d %s (%d dropped since the start)",
                  writer, count, what, self.dropped)

    def _tell(self, failure: WriteFailure | None) -> None:
        for listener in self.listeners:
            try:
                listener(failure)
            except Exception:  # a listener's bug must not stop the writer that reported
                log.exception("state database health listener failed")


class Backoff:
    """Waits between retries of a failed write: BACKOFF_INITIAL_S × 2^(n-1) with ±20 % jitter,
    at most BACKOFF_MAX_S; `reset()` after a success."""

    def __init__(self, initial_s: float = BACKOFF_INITIAL_S, max_s: float = BACKOFF_MAX_S) -> None:
        self._initial_s, self._max_s, self._failures = initial_s, max_s, 0

    def next_s(self) -> float:
        self._failures += 1
        base = self._initial_s * 2 ** min(self._failures - 1, 30)
        return min(self._max_s, base * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self._failures = 0
