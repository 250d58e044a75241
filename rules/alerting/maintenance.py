"""Maintenance windows (计划维护 and ad hoc): faults inside them are not notified, and the
windows themselves are kept in the state database so availability reports can exclude the
time they cover.

A window is one-off ([start, end)) or recurring (每周二 01:00–05:00: a cron rule and a
duration in the configured zone, in force from a date or its creation until a date or for
good; rules.alerting.recurrence). Windows come from the config (stored once, idempotently; a
window removed from the config ends when the daemon loads the new config) and from the HTTP
API (ad hoc; can be ended, which keeps the row with `deleted_ns` for the record).
A window covers a fault when its selector matches the fault's device (regions, sites, kinds,
tags, point ids); for group faults (region, site, fleet) when its region/site lists are empty
or name the fault's region/site and it names no kind, tag or point.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import Iterator, Sequence
from zoneinfo import ZoneInfo

from monitor.core.config_base import SelectorConfig
from monitor.core.timecheck import check_ns
from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB
from rules.alerting.config import MaintenanceMatch, MaintenanceWindowConfig, check_day
from rules.alerting.recurrence import (
    FOREVER_NS, MAX_OCCURRENCE_S, NS, Recurrence, RuleError, parse_every, span_of,
)
from rules.model import Fault

MAX_WINDOW_S = MAX_OCCURRENCE_S  # an ad hoc window longer than a month is a typo, not maintenance
_CACHE_NS = 86_400 * NS  # how far ahead a recurring window's occurrences are kept for `covers`

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
    # Recurring windows: start_ns/end_ns are the span the schedule is in force (end_ns of an
    # open-ended one is FOREVER_NS), occurrences start when `cron` fires in `zone`.
    """
ALTER TABLE maintenance ADD COLUMN every TEXT;          -- the rule as written (NULL: one-off)
ALTER TABLE maintenance ADD COLUMN cron TEXT;           -- its 5-field cron expression
ALTER TABLE maintenance ADD COLUMN duration_ns INTEGER; -- one occurrence
ALTER TABLE maintenance ADD COLUMN zone TEXT;           -- IANA zone the rule is read in
ALTER TABLE maintenance ADD COLUMN config_key TEXT;     -- a config window's identity (its entry as JSON)
""",
))

_COLUMNS = "id, selector, start_ns, end_ns, reason, created_by, source, every, cron, duration_ns, zone"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One window. One-off: in force over [start_ns, end_ns). Recurring (`recurrence` set,
    `every` the rule as written): its occurrences, clipped to [start_ns, end_ns), the span the
    schedule is in force; an occurrence starts before end_ns - duration. (An occurrence that
    windows_between returns keeps `every` but has no `recurrence`: it is one-off.)"""

    id: int
    match: MaintenanceMatch
    start_ns: int
    end_ns: int
    reason: str
    created_by: str
    source: str  # "config" | "api"
    every: str | None = None
    recurrence: Recurrence | None = None

    def occurrences(self, start_ns: int, end_ns: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
        """(start_ns, end_ns) of each time the window is in force overlapping [start_ns, end_ns),
        in order (a one-off window: itself); at most `limit`."""
        if self.recurrence is None:
            if self.start_ns < end_ns and self.end_ns > start_ns and limit != 0:
                yield self.start_ns, self.end_ns
            return
        last_start = self.end_ns - self.recurrence.duration_ns
        a, b = max(start_ns, self.start_ns), min(end_ns, self.end_ns)
        if a >= b:
            return
        for s, e in self.recurrence.occurrences(a, b, limit):
            if s >= last_start:
                return
            yield max(s, self.start_ns), min(e, self.end_ns)

    def active(self, ts_ns: int) -> bool:
        return next(self.occurrences(ts_ns, ts_ns + 1, 1), None) is not None

    def next_occurrences(self, now_ns: int, n: int) -> list[tuple[int, int]]:
        """The occurrence running at `now_ns` (if any) and the next ones, `n` in all."""
        return list(self.occurrences(now_ns, FOREVER_NS, n))

    def expanded(self, start_ns: int, end_ns: int, ended_ns: int | None = None) -> list["MaintenanceWindow"]:
        """Each occurrence overlapping [start_ns, end_ns) as a one-off window of its own (same id,
        reason and `every`, for people; no `recurrence`: it is that one interval), ending at
        `ended_ns` when the window was ended early; for reports."""
        out = []
        for s, e in self.occurrences(start_ns, end_ns):
            if ended_ns is not None:
                e = min(e, ended_ns)
            if e > s and e > start_ns:
                out.append(replace(self, start_ns=s, end_ns=e, recurrence=None))
        return out


class MaintenanceBook:
    """The current maintenance windows (not deleted, not long past), kept in memory and in the
    state database. Use `await MaintenanceBook.load(db, inventory, configured, timezone)`;
    `timezone` (IANA) is the zone recurring rules are read in."""

    def __init__(self, db: StateDB, inventory: Inventory, windows: Sequence[MaintenanceWindow],
                 timezone: str = "Asia/Shanghai") -> None:
        self._db = db
        self._inventory = inventory
        self._windows = {w.id: w for w in windows}
        self._zone = timezone
        # Recurring window id → (from_ns, to_ns, its occurrences overlapping [from, to)): covers()
        # runs for every open fault every cycle, and would otherwise redo the same croniter
        # iteration for each of them.
        self._cache: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}

    @property
    def timezone(self) -> str:
        return self._zone

    @classmethod
    async def load(
        cls, db: StateDB, inventory: Inventory, configured: Sequence[MaintenanceWindowConfig],
        timezone: str = "Asia/Shanghai",
    ) -> "MaintenanceBook":
        """Store the config's windows not stored yet, end the stored config windows no longer
        in the config, and keep the windows not yet over."""
        zone = ZoneInfo(timezone)

        def op(conn: sqlite3.Connection) -> list[MaintenanceWindow]:
            now = time.time_ns()
            wanted = {_config_key(w, timezone): w for w in configured}
            with conn:
                conn.execute("BEGIN")
                stored = conn.execute(
                    f"SELECT {_COLUMNS}, config_key FROM maintenance WHERE source='config' AND deleted_ns IS NULL"
                ).fetchall()
                seen = set()
                for row in stored:
                    key = row[-1] or _legacy_key(row)
                    if key in wanted and key not in seen:
                        seen.add(key)
                        if row[-1] is None:
                            conn.execute("UPDATE maintenance SET config_key=? WHERE id=?", (key, row[0]))
                    elif row[3] > now:  # removed from the config (or stored twice): ends now
                        conn.execute("UPDATE maintenance SET deleted_ns=? WHERE id=?", (now, row[0]))
                for key, w in wanted.items():
                    if key not in seen:
                        _insert(conn, _config_row(w, zone, timezone, now), "config", "config", now, key)
            return current_windows(conn, now)

        await db.migrate(SCHEMA)
        return cls(db, inventory, await db.execute(op), timezone)

    def windows(self, active_at_ns: int | None = None) -> list[MaintenanceWindow]:
        """Windows not yet over (or, with `active_at_ns`, active then), by start."""
        out = sorted(self._windows.values(), key=lambda w: (w.start_ns, w.id))
        if active_at_ns is not None:
            out = [w for w in out if self._active(w, active_at_ns)]
        return out

    def covers(self, fault: Fault, ts_ns: int) -> bool:
        return any(self._matches(w, fault) and self._active(w, ts_ns) for w in self._windows.values())

    def device_covered(self, device_id: str, ts_ns: int) -> MaintenanceWindow | None:
        """The first window (by start) active at `ts_ns` whose selector matches the device, or
        None (also for an unknown device): the status page's 维护中."""
        device = self._inventory.devices.get(device_id)
        if device is None:
            return None
        return next((w for w in self.windows() if w.match.selector().matches(device) and self._active(w, ts_ns)), None)

    def _active(self, window: MaintenanceWindow, ts_ns: int) -> bool:
        if window.recurrence is None:
            return window.start_ns <= ts_ns < window.end_ns
        cached = self._cache.get(window.id)
        if cached is None or not cached[0] <= ts_ns < cached[1]:
            cached = (ts_ns, ts_ns + _CACHE_NS, list(window.occurrences(ts_ns, ts_ns + _CACHE_NS)))
            self._cache[window.id] = cached
        return any(s <= ts_ns < e for s, e in cached[2])

    def _matches(self, window: MaintenanceWindow, fault: Fault) -> bool:
        device = self._inventory.devices.get(fault.device_id) if fault.device_id else None
        if device is not None:
            return window.match.selector().matches(device)
        m = window.match
        return ((not m.region or fault.region in m.region) and (not m.site or fault.site in m.site)
                and not m.kind and not m.tags and not m.devices)

    def unknown_devices(self, match: SelectorConfig) -> list[str]:
        """`match.devices` not in the point list."""
        return [d for d in getattr(match, "devices", ()) if d not in self._inventory.devices]

    async def create(self, match: SelectorConfig, start_ns: int, end_ns: int, reason: str, by: str) -> MaintenanceWindow:
        """Store an ad hoc one-off window. Raises ValueError: start or end outside
        monitor.core.timecheck's range (stored as int64 ns), end ≤ start, longer than 31 days,
        already over, empty reason or author, an unknown point id (match.devices)."""
        check_ns(start_ns, "start")
        check_ns(end_ns, "end")
        if end_ns <= start_ns:
            raise ValueError("end must be after start")
        if end_ns - start_ns > MAX_WINDOW_S * NS:
            raise ValueError("a maintenance window may last at most 31 days")
        if end_ns <= time.time_ns():
            raise ValueError("the window is already over")
        return await self._store(_as_match(match), start_ns, end_ns, reason, by, None)

    async def create_recurring(
        self, match: SelectorConfig, every: str, duration_s: int, first: date | None, last: date | None,
        reason: str, by: str,
    ) -> MaintenanceWindow:
        """Store an ad hoc recurring window: occurrences when `every` fires in the book's zone,
        `duration_s` long, from 00:00 of `first` (None: now) until the day `last` (None: until
        ended). Raises ValueError (RuleError): a bad rule or duration, a day out of
        monitor.core.timecheck's range, last before first, no occurrence left, empty reason or
        author, an unknown point id."""
        cron = parse_every(every)
        check_day(first)
        check_day(last)
        if not 0 < duration_s <= MAX_OCCURRENCE_S:
            raise RuleError("duration must be longer than zero and at most 31 days")
        zone = ZoneInfo(self._zone)
        now = time.time_ns()
        start_ns, end_ns = span_of(first, last, duration_s * NS, zone, now)
        probe = MaintenanceWindow(0, _as_match(match), max(start_ns, now), end_ns, reason, by, "api", every,
                                  Recurrence(cron, duration_s * NS, self._zone))
        if not probe.next_occurrences(now, 1):
            raise RuleError("the schedule has no occurrence left (until is past)")
        return await self._store(probe.match, start_ns, end_ns, reason, by, probe)

    async def _store(self, match: MaintenanceMatch, start_ns: int, end_ns: int, reason: str, by: str,
                     rule: MaintenanceWindow | None) -> MaintenanceWindow:
        if not reason.strip() or not by.strip():
            raise ValueError("reason and by must not be empty")
        unknown = self.unknown_devices(match)
        if unknown:
            where = ", ".join(f"match.devices[{match.devices.index(d)}]" for d in unknown)
            raise ValueError(f"{where}: unknown device {', '.join(unknown)} (not in the point list)")
        every, rec = (rule.every, rule.recurrence) if rule is not None else (None, None)
        row = (match.model_dump_json(), start_ns, end_ns, reason.strip(), every,
               rec.cron if rec else None, rec.duration_ns if rec else None, rec.zone if rec else None)
        now = time.time_ns()
        wid = await self._db.execute(lambda conn: _insert(conn, row, by.strip(), "api", now, None))
        window = MaintenanceWindow(wid, match, start_ns, end_ns, reason.strip(), by.strip(), "api", every, rec)
        self._windows[window.id] = window
        return window

    async def delete(self, window_id: int) -> None:
        """End an ad hoc window now (a recurring one: its schedule, and the occurrence running
        now, if any); kept in the database with its deletion time. Raises KeyError for an
        unknown id, ValueError for a window from the config (edit the config)."""
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
        self._cache.pop(window_id, None)


def _as_match(match: SelectorConfig) -> MaintenanceMatch:
    return match if isinstance(match, MaintenanceMatch) else MaintenanceMatch.model_validate(match.model_dump())


def _insert(conn: sqlite3.Connection, row: tuple, by: str, source: str, now: int, key: str | None) -> int:
    cur = conn.execute(
        "INSERT INTO maintenance (selector, start_ns, end_ns, reason, every, cron, duration_ns, zone, "
        "created_by, created_ns, source, config_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*row, by, now, source, key),
    )
    return int(cur.lastrowid)


def _config_row(w: MaintenanceWindowConfig, zone: ZoneInfo, zone_name: str, now: int) -> tuple:
    if w.every is None:
        assert w.start is not None and w.end is not None  # MaintenanceWindowConfig's validator
        return (w.match.model_dump_json(), _ns(w.start), _ns(w.end), w.reason, None, None, None, None)
    assert w.duration is not None
    start, end = span_of(w.from_, w.until, w.duration * NS, zone, now)
    return (w.match.model_dump_json(), start, end, w.reason, w.every, parse_every(w.every), w.duration * NS, zone_name)


def _config_key(w: MaintenanceWindowConfig, zone: str) -> str:
    """A config window's identity: what it selects, when, why (a recurring one also in which zone)."""
    key: dict = {"match": w.match.model_dump(mode="json"), "reason": w.reason}
    if w.every is None:
        key.update(start_ns=_ns(w.start), end_ns=_ns(w.end))
    else:
        key.update(every=w.every, duration_s=w.duration, zone=zone, **{
            "from": w.from_.isoformat() if w.from_ else None, "until": w.until.isoformat() if w.until else None})
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def _legacy_key(row: tuple) -> str | None:
    """The key of a one-off config window stored before config_key existed."""
    if row[7] is not None:
        return None
    match = MaintenanceMatch.model_validate(json.loads(row[1]))
    key = {"match": match.model_dump(mode="json"), "reason": row[4], "start_ns": row[2], "end_ns": row[3]}
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def _ns(dt) -> int:
    return int(dt.timestamp() * 1e9)


def _window(row: tuple) -> MaintenanceWindow:
    wid, selector, start_ns, end_ns, reason, created_by, source, every, cron, duration_ns, zone = row[:11]
    rec = Recurrence(cron, duration_ns, zone) if cron is not None else None
    match = MaintenanceMatch.model_validate(json.loads(selector))
    return MaintenanceWindow(wid, match, start_ns, end_ns, reason, created_by, source, every, rec)


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='maintenance'").fetchone() is not None


def current_windows(conn: sqlite3.Connection, now_ns: int) -> list[MaintenanceWindow]:
    """The windows not ended and not over at `now_ns`, by start: what the daemon holds. On the
    caller's connection (a read-only one too: `fleetmon maintenance list` with the daemon down)."""
    if not _has_table(conn):
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM maintenance WHERE deleted_ns IS NULL AND end_ns > ? ORDER BY start_ns, id", (now_ns,),
    ).fetchall()
    return [_window(r) for r in rows]


def windows_between(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[MaintenanceWindow]:
    """Every time a stored window was in force in [start_ns, end_ns), as it was in force: a
    one-off window as one entry, a recurring one as one entry per occurrence overlapping the
    period (same id and reason; its start_ns/end_ns those of the occurrence), by start. One
    ended early ends at its deletion (a window deleted before it began is left out). For
    reports (availability excludes the time they cover); runs on the caller's connection (the
    state DB thread); an empty list when the table does not exist yet."""
    if not _has_table(conn):
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS}, deleted_ns FROM maintenance WHERE start_ns < ? AND end_ns > ? "
        "AND (deleted_ns IS NULL OR deleted_ns > ?) ORDER BY start_ns, id",
        (end_ns, start_ns, start_ns),
    ).fetchall()
    out = [occurrence for row in rows for occurrence in _window(row).expanded(start_ns, end_ns, row[-1])]
    return sorted(out, key=lambda w: (w.start_ns, w.id))
