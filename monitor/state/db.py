"""The state database: an embedded SQLite file (WAL) holding every state transition with its
time, the last state of every device, and the daemon's own monitoring sessions.

It is the source of truth for availability reports: a device's state at any instant is the
`to_state` of its latest transition before that instant, and `sessions` says when fleetmon
was watching at all (heartbeat every cycle, so a `kill -9` leaves at most one cycle unknown).

All SQLite work runs on one dedicated thread, in submission order, so the event loop never
blocks on disk and writes never interleave.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from monitor.state.tracker import State, Transition
from monitor.state.writes import WriteHealth


T = TypeVar("T")

@dataclass(frozen=True, slots=True)
class Schema:
    """The tables one component owns in the state database, as migrations.

    `migrations[i]` is the SQL script that takes the component's tables from version i to
    i + 1 (statements separated by ";", triggers included; no transaction statements); the
    current version is `len(migrations)`. Append a step to change a table, never edit one that
    has shipped: a database written by an older fleetmon is brought forward step by step on
    open."""

    component: str
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


def migrate(conn: sqlite3.Connection, schema: Schema, path: Path | str = "state database") -> None:
    """Bring `schema`'s tables up to its version, in one transaction with the version stamp.

    Runs on the caller's connection (the state DB thread). Raises StateDBError when the file
    was written by a newer fleetmon (its version of the component is higher than ours): a
    downgrade must not write into tables it does not understand."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component=?", (schema.component,)).fetchone()
    current = 0 if row is None else int(row[0])
    if current > schema.version:
        raise StateDBError(
            f"{path}: tables of {schema.component} are at schema version {current}, this fleetmon knows "
            f"{schema.version}: it was written by a newer fleetmon"
        )
    if current == schema.version:
        return
    with conn:
        conn.execute("BEGIN")
        for script in schema.migrations[current:]:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_versions VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version=excluded.version",
            (schema.component, schema.version),
        )


def require(conn: sqlite3.Connection, schema: Schema, path: Path | str = "state database") -> None:
    """Check, without writing, that `schema`'s tables are at this fleetmon's version (for a
    read-only connection). Raises StateDBError saying what to do when they are missing or
    older (the daemon brings them forward when it starts) or newer (written by a newer
    fleetmon)."""
    try:
        row = conn.execute("SELECT version FROM schema_versions WHERE component=?", (schema.component,)).fetchone()
    except sqlite3.OperationalError:  # no schema_versions table: not (yet) a fleetmon state database
        row = None
    current = 0 if row is None else int(row[0])
    if current < schema.version:
        found = "has none" if current == 0 else f"has version {current}"
        raise StateDBError(
            f"{path}: the tables of {schema.component} are at schema version {schema.version} in this fleetmon, "
            f"the database {found}: start this fleetmon's daemon once (it brings the database forward), "
            "then ask again"
        )
    if current > schema.version:
        raise StateDBError(
            f"{path}: tables of {schema.component} are at schema version {current}, this fleetmon knows "
            f"{schema.version}: it was written by a newer fleetmon"
        )


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection to the existing database at `path` that can never write (SQLite's
    mode=ro; the WAL index file is shared with the daemon). Raises StateDBError when there is
    no database yet, or it cannot be read, or its `state` tables are not at this version."""
    if not path.is_file():
        raise StateDBError(f"{path}: no state database yet: the daemon (fleetmon run) creates it when it first starts")
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            require(conn, SCHEMA, path)
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as exc:
        raise StateDBError(f"{path}: cannot read the state database: {exc}") from exc
    return conn


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration script, split on ";" but never inside one (a trigger's
    BEGIN … END body holds semicolons of its own): pieces are joined until SQLite calls the
    statement complete."""
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf)
            buf = ""
    if buf.strip(" \n\t;"):
        raise StateDBError(f"incomplete SQL statement in a migration: {buf.strip()[:80]!r}")
    return out


# Version 1 is the schema of fleetmon 0.1 (whose `meta` table said schema_version 1): written
# with IF NOT EXISTS, so a database of that release is adopted as it is.
SCHEMA = Schema("state", (
    """
CREATE TABLE IF NOT EXISTS transitions (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT    NOT NULL,
    probe       TEXT    NOT NULL,
    ts_ns       INTEGER NOT NULL,   -- UTC, ns since the epoch
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS transitions_device_ts ON transitions (device_id, probe, ts_ns);
CREATE INDEX IF NOT EXISTS transitions_ts ON transitions (ts_ns);
CREATE TABLE IF NOT EXISTS device_state (
    device_id   TEXT    NOT NULL,
    probe       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    since_ns    INTEGER NOT NULL,
    PRIMARY KEY (device_id, probe)
);
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY,
    started_ns  INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,  -- heartbeat: monitoring is known to have run until here
    stopped_ns  INTEGER,            -- NULL: the daemon did not stop cleanly (crash, kill -9)
    pid         INTEGER NOT NULL,
    devices     INTEGER NOT NULL
);
""",
    # 2: per-probe coverage inside a session (a probe can stall while the others keep cycling).
    """
CREATE TABLE probe_watch (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL,   -- sessions.id
    probe       TEXT    NOT NULL,
    start_ns    INTEGER NOT NULL,   -- start of the first cycle of the stretch
    end_ns      INTEGER NOT NULL,   -- end of its latest cycle
    grace_ns    INTEGER NOT NULL    -- the next cycle is due by end_ns + grace_ns at the latest
);
CREATE INDEX probe_watch_session ON probe_watch (session_id, probe, end_ns);
""",
))


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    started_ns: int
    last_seen_ns: int
    stopped_ns: int | None
    pid: int
    devices: int


class StateDBError(RuntimeError):
    """The state database cannot be opened or is not a fleetmon state database."""


class StateDB:
    """Async facade over the SQLite state database at `path` (created with its folder).

    `read_only=True` opens an existing database for reading beside the running daemon (the
    `fleetmon availability` / `score` / `spot-check` commands): SQLite's read-only mode, so
    nothing is ever written, and nothing migrated: `migrate` then checks that each
    component's tables are at this fleetmon's version instead (StateDBError when a table set
    is older, newer or missing, saying what to do). In WAL mode readers never block the
    daemon's writer, and see every transaction committed before each of their reads."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")
        self._conn: sqlite3.Connection | None = None
        self._session_id: int | None = None
        self.health = WriteHealth()
        """Whether writes work (fed by the writers: Recorder, FaultBook, OutboxWorker)."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def migrate(self, schema: Schema) -> None:
        """Create or bring forward another component's tables (faults, outbox, maintenance,
        work orders …); see `migrate`. Raises StateDBError."""
        check = require if self.read_only else migrate
        try:
            await self._run(lambda: check(self._db, schema, self.path))
        except sqlite3.DatabaseError as exc:
            raise StateDBError(f"{self.path}: {schema.component}: {exc}") from exc

    async def execute(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread, after everything submitted before it.

        For the other owners of tables in this file (faults, outbox, maintenance): they keep
        their SQL to themselves but share the one connection and thread, so writes never
        contend and one transaction can span their tables. The connection is in autocommit
        mode: use `with conn:` plus "BEGIN" for a transaction."""
        return await self._run(lambda: fn(self._db))

    async def __aenter__(self) -> "StateDB":
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _open(self) -> None:
        if self.read_only:
            self._conn = _open_read_only(self.path)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupts.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            migrate(conn, SCHEMA, self.path)
        except sqlite3.DatabaseError as exc:
            raise StateDBError(f"{self.path}: {exc}") from exc
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "StateDB used outside its context"
        return self._conn

    # -- sessions -------------------------------------------------------------------------

    async def start_session(self, devices: int) -> int:
        """Record the daemon's start; returns the session id."""
        now = time.time_ns()

        def op() -> int:
            cur = self._db.execute(
                "INSERT INTO sessions (started_ns, last_seen_ns, pid, devices) VALUES (?, ?, ?, ?)",
                (now, now, os.getpid(), devices),
            )
            return int(cur.lastrowid)

        self._session_id = await self._run(op)
        return self._session_id

    async def heartbeat(self) -> None:
        now = time.time_ns()
        await self._run(lambda: self._db.execute("UPDATE sessions SET last_seen_ns=? WHERE id=?", (now, self._session_id)))

    async def probe_cycle(self, probe: str, start_ns: int, end_ns: int, grace_ns: int) -> None:
        """Note that a cycle of `probe` ran from `start_ns` to `end_ns` in this session
        (`probe_watch`): it extends the probe's current stretch when it started no later than
        `grace_ns` after that stretch's end, else it opens a new one and the time between was a
        stall (its devices not watched on that probe's basis, whatever the session's heartbeat
        says). `grace_ns`: how long after a cycle's end the next may start at the latest, e.g.
        2 × the probe's interval (a late cycle is skipped, not run twice). Raises ValueError for
        an end before the start, a negative grace, or no session started."""
        if end_ns < start_ns or grace_ns < 0:
            raise ValueError(f"probe {probe}: cycle end {end_ns} before start {start_ns}, or negative grace {grace_ns}")
        session_id = self._session_id
        if session_id is None:
            raise ValueError("probe cycles are recorded inside a session: call start_session first")

        def op() -> None:
            db = self._db
            row = db.execute(
                "SELECT id, end_ns, grace_ns FROM probe_watch WHERE session_id=? AND probe=? "
                "ORDER BY end_ns DESC, id DESC LIMIT 1",
                (session_id, probe),
            ).fetchone()
            if row is not None and start_ns <= row[1] + row[2]:
                db.execute("UPDATE probe_watch SET end_ns=max(end_ns, ?), grace_ns=? WHERE id=?", (end_ns, grace_ns, row[0]))
            else:
                db.execute(
                    "INSERT INTO probe_watch (session_id, probe, start_ns, end_ns, grace_ns) VALUES (?, ?, ?, ?, ?)",
                    (session_id, probe, start_ns, end_ns, grace_ns),
                )

        await self._run(op)

    async def end_session(self) -> None:
        now = time.time_ns()
        await self._run(
            lambda: self._db.execute(
                "UPDATE sessions SET last_seen_ns=?, stopped_ns=? WHERE id=?", (now, now, self._session_id)
            )
        )

    async def sessions(self) -> list[Session]:
        rows = await self._run(lambda: self._db.execute("SELECT * FROM sessions ORDER BY id").fetchall())
        return [Session(*r) for r in rows]

    # -- states and transitions -------------------------------------------------------------

    async def load_states(self, probe: str) -> dict[str, tuple[State, int]]:
        """Last saved state of every device for `probe`: {device_id: (state, since_ns)}."""
        rows = await self._run(
            lambda: self._db.execute("SELECT device_id, state, since_ns FROM device_state WHERE probe=?", (probe,)).fetchall()
        )
        return {device_id: (State(state), since) for device_id, state, since in rows}

    async def record(self, transitions: Iterable[Transition]) -> None:
        """Store transitions and the resulting current states in one transaction."""
        batch = list(transitions)
        if not batch:
            return

        def op() -> None:
            db = self._db
            with db:  # one transaction
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO transitions (device_id, probe, ts_ns, from_state, to_state, reason) VALUES (?,?,?,?,?,?)",
                    [(t.device_id, t.probe, t.ts_ns, t.old.value, t.new.value, t.reason) for t in batch],
                )
                db.executemany(
                    "INSERT INTO device_state (device_id, probe, state, since_ns) VALUES (?,?,?,?) "
                    "ON CONFLICT (device_id, probe) DO UPDATE SET state=excluded.state, since_ns=excluded.since_ns",
                    [(t.device_id, t.probe, t.new.value, t.ts_ns) for t in batch],
                )

        await self._run(op)

    async def transitions(self, device_id: str | None = None, since_ns: int = 0) -> list[Transition]:
        """Stored transitions in time order, optionally of one device and from `since_ns` on."""
        sql = "SELECT device_id, probe, ts_ns, from_state, to_state, reason FROM transitions WHERE ts_ns >= ?"
        args: list[Any] = [since_ns]
        if device_id is not None:
            sql += " AND device_id = ?"
            args.append(device_id)
        rows = await self._run(lambda: self._db.execute(sql + " ORDER BY ts_ns, id", args).fetchall())
        return [Transition(d, p, ts, State(a), State(b), r) for d, p, ts, a, b, r in rows]
