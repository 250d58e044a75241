"""The assessment's own evidence in the state database, appended, never edited:

- `point_status`: a point's contract status (active, 延建 construction, 拆除 removed) from a
  given moment on, one row per change, so that a point is out of the assessment exactly for the
  time it had that status ("延建或拆除点位不在考核范围内", CONTRACTS.md A). Written when the
  daemon loads a point list (`record_inventory_statuses`).
- `probe_watch`: stretches of time during which a probe's cycles kept coming, per monitoring
  session (`record_probe_cycle` at the end of every cycle). A probe whose next cycle is
  overdue has stalled: its devices are not being watched on that probe's basis, whatever the
  session's heartbeat says.

Both are read by monitor.assess.history.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from monitor.core.model import Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB

SCHEMA = Schema("assess_availability", (
    """
CREATE TABLE point_status (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL,   -- monitor.core.model.Status value
    since_ns    INTEGER NOT NULL    -- UTC ns: the point has this status from here on
);
CREATE INDEX point_status_device ON point_status (device_id, since_ns);
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
class StatusChange:
    """A point's status stored as changed at `since_ns`; `previous` is None for a point seen
    for the first time."""

    device_id: str
    previous: Status | None
    status: Status
    since_ns: int


async def record_inventory_statuses(db: StateDB, inventory: Inventory, now_ns: int) -> list[StatusChange]:
    """Append a `point_status` row for every point of `inventory` whose status differs from
    its last stored one (or that has none), stamped `now_ns`; returns what was stored, in
    inventory order. Points no longer in the inventory keep their history as it is.

    Call it whenever the daemon (re)loads its point list. Raises ValueError, storing nothing,
    when `now_ns` is earlier than a stored change of a point whose status would change (the
    history must stay in time order: the clock went back)."""

    def op(conn: sqlite3.Connection) -> list[StatusChange]:
        last: dict[str, tuple[str, int]] = {}
        for device_id, status, since_ns in conn.execute(
            "SELECT device_id, status, since_ns FROM point_status ORDER BY since_ns, id"
        ):
            last[device_id] = (status, since_ns)
        changes = []
        for device in inventory.devices.values():
            previous = last.get(device.id)
            if previous is not None and previous[0] == device.status.value:
                continue
            if previous is not None and now_ns < previous[1]:
                raise ValueError(
                    f"point {device.id}: status change at {now_ns} ns is earlier than its stored change at "
                    f"{previous[1]} ns: is the clock set back?"
                )
            changes.append(StatusChange(device.id, None if previous is None else Status(previous[0]), device.status, now_ns))
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO point_status (device_id, status, since_ns) VALUES (?, ?, ?)",
                [(c.device_id, c.status.value, c.since_ns) for c in changes],
            )
        return changes

    await db.migrate(SCHEMA)
    return await db.execute(op)


async def record_probe_cycle(db: StateDB, session_id: int, probe: str, start_ns: int, end_ns: int, grace_ns: int) -> None:
    """Note that a cycle of `probe` ran from `start_ns` to `end_ns` in session `session_id`
    (StateDB.start_session's id). It extends the probe's current stretch when it started no
    later than `grace_ns` after that stretch's end, else it opens a new stretch: the time in
    between was a stall. `grace_ns`: how long after a cycle's end the next one may end at the
    latest, e.g. 2 × the probe's interval (a late cycle is skipped, not run twice).

    Raises ValueError for end before start or a negative grace."""
    if end_ns < start_ns or grace_ns < 0:
        raise ValueError(f"probe {probe}: cycle end {end_ns} before start {start_ns}, or negative grace {grace_ns}")

    def op(conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT id, end_ns, grace_ns FROM probe_watch WHERE session_id=? AND probe=? ORDER BY end_ns DESC, id DESC "
            "LIMIT 1",
            (session_id, probe),
        ).fetchone()
        if row is not None and start_ns <= row[1] + row[2]:
            conn.execute(
                "UPDATE probe_watch SET end_ns=max(end_ns, ?), grace_ns=? WHERE id=?", (end_ns, grace_ns, row[0])
            )
        else:
            conn.execute(
                "INSERT INTO probe_watch (session_id, probe, start_ns, end_ns, grace_ns) VALUES (?, ?, ?, ?, ?)",
                (session_id, probe, start_ns, end_ns, grace_ns),
            )

    await db.migrate(SCHEMA)
    await db.execute(op)
