"""The SQLite state database: transitions survive restarts and crashes, sessions show coverage."""

import sqlite3

import pytest

from monitor.state.tracker import State, Transition
from monitor.state.db import StateDB, StateDBError
from monitor.state.recorder import Recorder


def t(device, ts, old, new, reason=None, probe="icmp"):
    return Transition(device, probe, ts, State(old), State(new), reason)


async def test_transitions_and_states_survive_a_reopen(tmp_path):
    path = tmp_path / "sub" / "state.db"
    async with StateDB(path) as db:
        await db.start_session(devices=3)
        await db.record([t("A", 10, "unknown", "up"), t("B", 11, "unknown", "up")])
        await db.record([t("A", 20, "up", "down", "timeout")])
    async with StateDB(path) as db:
        assert await db.load_states("icmp") == {"A": (State.DOWN, 20), "B": (State.UP, 11)}
        assert await db.load_states("rtsp") == {}
        history = await db.transitions("A")
        assert [(x.ts_ns, x.old, x.new, x.reason) for x in history] == [
            (10, State.UNKNOWN, State.UP, None),
            (20, State.UP, State.DOWN, "timeout"),
        ]
        assert [x.device_id for x in await db.transitions(since_ns=11)] == ["B", "A"]


async def test_database_is_in_wal_mode(tmp_path):
    async with StateDB(tmp_path / "s.db"):
        pass
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_sessions_record_clean_stops_and_leave_crashes_open(tmp_path):
    path = tmp_path / "s.db"
    async with StateDB(path) as db:
        await db.start_session(devices=5)
        await db.heartbeat()
        await db.end_session()
    async with StateDB(path) as db:  # a daemon killed with -9 never calls end_session
        await db.start_session(devices=5)
        await db.heartbeat()
    async with StateDB(path) as db:
        first, crashed = await db.sessions()
    assert first.stopped_ns is not None and first.stopped_ns >= first.started_ns
    assert crashed.stopped_ns is None and crashed.last_seen_ns >= crashed.started_ns
    assert crashed.devices == 5


async def test_a_file_that_is_not_a_state_database_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateDBError, match="garbage.db"):
        async with StateDB(path):
            pass


async def test_a_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "s.db"
    async with StateDB(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_versions SET version=99 WHERE component='state'")
    with pytest.raises(StateDBError, match="state are at schema version 99, this fleetmon knows 2"):
        async with StateDB(path):
            pass


async def test_every_component_is_versioned_and_a_new_step_migrates_an_old_file(tmp_path):
    """Each owner of tables states its schema version; an appended migration step brings a file
    written by the previous version forward on open, its rows kept."""
    from rules.alerting import faults, maintenance, outbox
    from monitor.state.db import SCHEMA, Schema

    path = tmp_path / "s.db"
    async with StateDB(path) as db:
        for schema in (faults.SCHEMA, maintenance.SCHEMA, outbox.SCHEMA):
            await db.migrate(schema)
        await db.migrate(Schema("probe_notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",)))
        await db.execute(lambda conn: conn.execute("INSERT INTO notes (text) VALUES ('kept')"))
    with sqlite3.connect(path) as conn:
        versions = dict(conn.execute("SELECT component, version FROM schema_versions").fetchall())
    assert versions == {"state": SCHEMA.version, "faults": 1, "maintenance": 2, "outbox": 1, "probe_notes": 1}
    v2 = Schema("probe_notes", (
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",
        "ALTER TABLE notes ADD COLUMN by TEXT; UPDATE notes SET by='migration'",
    ))
    async with StateDB(path) as db:
        await db.migrate(v2)
        rows = await db.execute(lambda conn: conn.execute("SELECT text, by FROM notes").fetchall())
    assert rows == [("kept", "migration")]
    async with StateDB(path) as db:  # the older release refuses the newer file, and changes nothing
        with pytest.raises(StateDBError, match="probe_notes are at schema version 2, this fleetmon knows 1"):
            await db.migrate(Schema("probe_notes", v2.migrations[:1]))


async def test_a_migration_may_create_triggers_whose_bodies_hold_semicolons(tmp_path):
    """A trigger's BEGIN … END body has statements of its own: the script is split only between
    complete statements (the work-order tables refuse UPDATE and DELETE this way)."""
    from monitor.state.db import Schema

    schema = Schema("ledger", ("""
CREATE TABLE ledger (id INTEGER PRIMARY KEY, text TEXT);
CREATE TRIGGER ledger_append_only BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'append-only; no updates'); END;
INSERT INTO ledger (text) VALUES ('a; b');
""",))
    async with StateDB(tmp_path / "s.db") as db:
        await db.migrate(schema)
        with pytest.raises(sqlite3.IntegrityError, match="append-only; no updates"):
            await db.execute(lambda conn: conn.execute("UPDATE ledger SET text='x'"))
        rows = await db.execute(lambda conn: conn.execute("SELECT text FROM ledger").fetchall())
    assert rows == [("a; b",)]


async def test_probe_cycles_make_stretches_and_a_stall_opens_a_new_one(tmp_path):
    path = tmp_path / "state.db"
    async with StateDB(path) as db:
        with pytest.raises(ValueError, match="call start_session first"):
            await db.probe_cycle("icmp", 0, 10, 150)
        first = await db.start_session(devices=3)
        for start in (0, 60, 120, 500, 560):  # the cycle at 500 starts 370 after the last end: > grace 150
            await db.probe_cycle("icmp", start, start + 10, 150)
        await db.probe_cycle("rtsp", 0, 10, 150)
        with pytest.raises(ValueError, match="cycle end 5 before start 10"):
            await db.probe_cycle("icmp", 10, 5, 150)
        second = await db.start_session(devices=3)
        async with Recorder(db) as recorder:  # the daemon's way: queued, written after the transitions
            recorder.cycle("icmp", 600, 610, 150)
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT session_id, probe, start_ns, end_ns, grace_ns FROM probe_watch ORDER BY id").fetchall()
    assert rows == [
        (first, "icmp", 0, 130, 150), (first, "icmp", 500, 570, 150), (first, "rtsp", 0, 10, 150),
        (second, "icmp", 600, 610, 150),  # another session: its own stretch
    ]
