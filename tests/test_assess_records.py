"""The assessment's own evidence: point status history, appended only."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.assess.records import record_inventory_statuses
from monitor.core.model import Device, Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from tests.plugins.factories import device


def point(i: int, status: Status = Status.ACTIVE) -> Device:
    return device(f"C{i}", status=status)


def rows(path, sql):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_status_changes_are_appended_with_their_time(tmp_path):
    path = tmp_path / "state.db"
    async with StateDB(path) as db:
        first = await record_inventory_statuses(db, Inventory([point(1), point(2, Status.CONSTRUCTION)]), 100)
        assert [(c.device_id, c.previous, c.status, c.since_ns) for c in first] == [
            ("C1", None, Status.ACTIVE, 100), ("C2", None, Status.CONSTRUCTION, 100),
        ]
        assert await record_inventory_statuses(db, Inventory([point(1), point(2, Status.CONSTRUCTION)]), 200) == []
        again = await record_inventory_statuses(db, Inventory([point(1, Status.REMOVED), point(2), point(3)]), 300)
        assert [(c.device_id, c.previous, c.status) for c in again] == [
            ("C1", Status.ACTIVE, Status.REMOVED), ("C2", Status.CONSTRUCTION, Status.ACTIVE), ("C3", None, Status.ACTIVE),
        ]
    assert rows(path, "SELECT device_id, status, since_ns FROM point_status ORDER BY id") == [
        ("C1", "active", 100), ("C2", "construction", 100),
        ("C1", "removed", 300), ("C2", "active", 300), ("C3", "active", 300),
    ]


async def test_a_clock_set_back_stores_nothing(tmp_path):
    path = tmp_path / "state.db"
    async with StateDB(path) as db:
        await record_inventory_statuses(db, Inventory([point(1), point(2)]), 1000)
        with pytest.raises(ValueError, match="point C1: status change at 500 ns is earlier than its stored change"):
            await record_inventory_statuses(db, Inventory([point(1, Status.REMOVED), point(2, Status.REMOVED)]), 500)
    assert len(rows(path, "SELECT * FROM point_status")) == 2
