"""Maintenance windows (计划维护 and ad hoc): faults inside them are not notified, and the
windows themselves are kept in the state database so availability reports can exclude the
time they cover.

Windows come from the config (scheduled; stored once, idempotently) and from the HTTP API
(ad hoc; can be deleted, which ends them: the row is kept with `deleted_ns` for the record).
A window covers a fault when its selector matches the fault's device; for group faults
(region, site, fleet) when its region/site lists are empty or name the fault's region/site.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Sequence

from monitor.core.config_base import SelectorConfig
from monitor.core.timecheck import check_ns
from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB
from rules.alerting.config import MaintenanceWindowConfig
from rules.model import Fault

MAX_WINDOW_S = 31 * 86_400  # an ad hoc window longer than a month is a typo, not maintenance

SCHEMA = Schema("maintenance", (
    """
CREATE TABLE IF NOT EXISTS maintenance (
    id          INTEGER PRIMARY KEY,
    selector    TEXT    NOT NULL,   -- SelectorConfig JSON
    start_ns    INTEGER NOT NULL,   -- UTC ns
    end_ns      INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_ns  INTEGER NOT NULL,
    source      TEXT    NOT NULL,   -- 'config' | 'api'
    deleted_ns  INTEGER             -- set when an ad hoc window is deleted (ended early)
);
CREATE INDEX IF NOT EXISTS maintenance_time ON maintenance (start_ns, end_ns);
""",
))


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    match: SelectorConfig
    start_ns: int
    end_ns: int
    reason: str
    created_by: str
    source: str  # "config" | "api"

    def active(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns


class MaintenanceBook:
    """The current maintenance windows (not deleted, not long past), kept in memory and in the
    state database. Use `await MaintenanceBook.load(db, inventory, configured)`."""

    def __init__(self, db: StateDB, inventory: Inventory, windows: Sequence[MaintenanceWindow]) -> None:
        self._db = db
        self._inventory = inventory
        self._windows = {w.id: w for w in windows}

    @classmethod
    async def load(
        cls, db: StateDB, inventory: Inventory, configured: Sequence[MaintenanceWindowConfig]
    ) -> "MaintenanceBook":
        def op(conn: sqlite3.Connection) -> list[MaintenanceWindow]:
            now = time.time_ns()
            with conn:
                conn.execute("BEGIN")
                for w in configured:
                    row = (w.match.model_dump_json(), _ns(w.start), _ns(w.end), w.reason)
                    exists = conn.execute(
                        "SELECT 1 FROM maintenance WHERE source='config' AND selector=? AND start_ns=? AND end_ns=? "
                        "AND reason=?", row,
                    ).fetchone()
                    if not exists:
                        conn.execute(
                            "INSERT INTO maintenance (selector, start_ns, end_ns, reason, created_by, created_ns, source) "
                            "VALUES (?, ?, ?, ?, 'config', ?, 'config')", (*row, now),
                        )
            rows = conn.execute(
                "SELECT id, selector, start_ns, end_ns, reason, created_by, source FROM maintenance "
                "WHERE deleted_ns IS NULL AND end_ns > ? ORDER BY start_ns, id", (now,),
            ).fetchall()
            return [_window(r) for r in rows]

        await db.migrate(SCHEMA)
        return cls(db, inventory, await db.execute(op))

    def windows(self, active_at_ns: int | None = None) -> list[MaintenanceWindow]:
        """Windows not yet over (or, with `active_at_ns`, active then), by start."""
        out = sorted(self._windows.values(), key=lambda w: (w.start_ns, w.id))
        if active_at_ns is not None:
            out = [w for w in out if w.active(active_at_ns)]
        return out

    def covers(self, fault: Fault, ts_ns: int) -> bool:
        return any(w.active(ts_ns) and self._matches(w, fault) for w in self._windows.values())

    def _matches(self, window: MaintenanceWindow, fault: Fault) -> bool:
        device = self._inventory.devices.get(fault.device_id) if fault.device_id else None
        if device is not None:
            return window.match.selector().matches(device)
        m = window.match
        return (not m.region or fault.region in m.region) and (not m.site or fault.site in m.site) and not m.kind and not m.tags

    async def create(self, match: SelectorConfig, start_ns: int, end_ns: int, reason: str, by: str) -> MaintenanceWindow:
        """Store an ad hoc window. Raises ValueError: start or end outside
        monitor.core.timecheck's range (stored as int64 ns), end ≤ start, longer than 31 days, already
        over, empty reason or author."""
        check_ns(start_ns, "start")
        check_ns(end_ns, "end")
        if end_ns <= start_ns:
            raise ValueError("end must be after start")
        if end_ns - start_ns > MAX_WINDOW_S * 1_000_000_000:
            raise ValueError("a maintenance window may last at most 31 days")
        if end_ns <= time.time_ns():
            raise ValueError("the window is already over")
        if not reason.strip() or not by.strip():
            raise ValueError("reason and by must not be empty")

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO maintenance (selector, start_ns, end_ns, reason, created_by, created_ns, source) "
                "VALUES (?, ?, ?, ?, ?, ?, 'api')",
                (match.model_dump_json(), start_ns, end_ns, reason.strip(), by.strip(), time.time_ns()),
            )
            return int(cur.lastrowid)

        window = MaintenanceWindow(await self._db.execute(op), match, start_ns, end_ns, reason.strip(), by.strip(), "api")
        self._windows[window.id] = window
        return window

    async def delete(self, window_id: int) -> None:
        """End an ad hoc window now (kept in the database with its deletion time). Raises
        KeyError for an unknown id, ValueError for a window from the config (edit the config)."""
        window = self._windows.get(window_id)
        if window is None:
            raise KeyError(window_id)
        if window.source == "config":
            raise ValueError("a window from config.yaml is changed in config.yaml, not deleted")
        now = time.time_ns()
        await self._db.execute(
            lambda conn: conn.execute("UPDATE maintenance SET deleted_ns=? WHERE id=?", (now, window_id))
        )
        del self._windows[window_id]


def _ns(dt) -> int:
    return int(dt.timestamp() * 1e9)


def _window(row: tuple) -> MaintenanceWindow:
    wid, selector, start_ns, end_ns, reason, created_by, source = row
    return MaintenanceWindow(wid, SelectorConfig.model_validate(json.loads(selector)), start_ns, end_ns, reason, created_by, source)


def windows_between(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[MaintenanceWindow]:
    """Every stored window that was in force at some time in [start_ns, end_ns), as it was in
    force: one deleted early ends at its deletion (a window deleted before it began is left
    out). For reports (availability excludes the time they cover); runs on the caller's
    connection (the state DB thread); an empty list when the table does not exist yet."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='maintenance'").fetchone() is None:
        return []
    rows = conn.execute(
        "SELECT id, selector, start_ns, min(end_ns, coalesce(deleted_ns, end_ns)), reason, created_by, source "
        "FROM maintenance WHERE start_ns < ? AND end_ns > ? ORDER BY start_ns, id",
        (end_ns, start_ns),
    ).fetchall()
    return [w for w in map(_window, rows) if w.end_ns > w.start_ns and w.end_ns > start_ns]
