"""The assessment's own evidence in the state database, appended, never edited: `point_status`,
a point's contract status (active, 延建 construction, 拆除 removed) from a given moment on, one
row per change, so that a point is out of the assessment exactly for the time it had that
status ("延建或拆除点位不在考核范围内", CONTRACTS.md A). Written when the daemon loads a point list
(`record_inventory_statuses`), read by monitor.assess.history.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from monitor.core.model import Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import Schema, StateDB

SCHEMA = Schema("point_status", (
    """
CREATE TABLE point_status (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL,   -- monitor.core.model.Status value
    since_ns    INTEGER NOT NULL    -- UTC ns: the point has this status from here on
);
CREATE INDEX point_status_device ON point_status (device_id, since_ns);
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
