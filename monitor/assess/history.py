"""What the state database says about a set of points over a period, read in a handful of
queries and handed on as plain data (no SQL beyond this module).

Sources: `transitions`, `sessions` and `probe_watch` (monitor.state.db), `point_status`
(monitor.assess.records), maintenance windows through rules.alerting.maintenance. A table that
a database does not have yet (the component never ran) reads as empty.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from dataclasses import dataclass
from operator import itemgetter

from monitor.core.model import Status
from monitor.state.availability import MEASURED, PICTURE
from monitor.state.tracker import MONITOR_BLIND, State
from probes import probes_of
from rules.alerting.maintenance import MaintenanceWindow, windows_between

PROBE_ORDER: tuple[str, ...] = (*(p for b in MEASURED for p in probes_of(b)), PICTURE)
"""The probes that make the bases, in a fixed order: their index is their slot in a timeline.
The picture tracker (monitor.state.availability.PICTURE, 画面正常) is one of them: its
transitions and cycles are stored under its own name, as a probe's are."""

STATE_CODE = {State.UNKNOWN.value: 0, State.UP.value: 1, State.DOWN.value: 2, State.UNREACHABLE.value: 3}
NO_VERDICT = 4
"""Probe code of a device the probe has not judged yet (its basis does not apply yet)."""
SILENT = 5
"""Probe code of a device made UNKNOWN because its probe agent went silent (a transition whose
reason starts with MONITOR_BLIND, StateTracker.blind), until its next transition."""
_BLIND_SQL = "substr(reason, 1, ?5) = ?6"


@dataclass(frozen=True, slots=True)
class Watch:
    """A `probe_watch` stretch: the probe was watched over [start_ns, end_ns)."""

    session_id: int
    probe: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class History:
    """Evidence for points over [start_ns, end_ns).

    - initial: device id → per-probe code (PROBE_ORDER) just before start_ns: a STATE_CODE
      value, SILENT, or NO_VERDICT;
    - changes: device id → [(device id, ts_ns, probe slot, code)] inside the period, in stored
      order (time, then arrival);
    - sessions: (id, started_ns, last_seen_ns) of the sessions overlapping the period;
    - watches: stretches of those sessions (extended back to the session's start for its first
      stretch of each probe, forward by the grace, cut at the session's last heartbeat);
    - statuses: device id → [(since_ns, Status)] in time order (all of them, not just the period's);
    - first_seen: device id → earliest stored evidence of the point (its first transition or
      first status row), None when there is none at all;
    - windows: maintenance windows in force at some time of the period (deleted ones end at
      their deletion);
    - open_heartbeat_ns: the last heartbeat of the latest session when it has not stopped (the
      daemon is running, or crashed and not restarted yet), else None;
    - silences: (reason, device id, probe slot, ts_ns) of the monitor-blind transitions (an agent
      gone silent) in force at start_ns (stored before it) or inside the period, in time order.
    """

    start_ns: int
    end_ns: int
    initial: dict[str, list[int]]
    changes: dict[str, list[tuple[str, int, int, int]]]
    sessions: tuple[tuple[int, int, int], ...]
    watches: tuple[Watch, ...]
    statuses: dict[str, list[tuple[int, Status]]]
    first_seen: dict[str, int | None]
    windows: tuple[MaintenanceWindow, ...]
    open_heartbeat_ns: int | None
    silences: tuple[tuple[str, str, int, int], ...] = ()


def load_history(conn: sqlite3.Connection, device_ids: list[str], start_ns: int, end_ns: int) -> History:
    """Read the evidence of `device_ids` over [start_ns, end_ns). Runs on the caller's
    connection (the state DB's thread); reads only."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    ids_json = json.dumps(device_ids)
    slot = {p: i for i, p in enumerate(PROBE_ORDER)}

    initial: dict[str, list[int]] = {d: [NO_VERDICT] * len(PROBE_ORDER) for d in device_ids}
    first_seen: dict[str, int | None] = dict.fromkeys(device_ids)
    silences: list[tuple[str, str, int, int]] = []
    blind = (len(MONITOR_BLIND), MONITOR_BLIND)
    # One indexed look-up per (device, probe) pair (transitions_device_ts), all inside SQLite.
    for device_id, probe, state, ts_ns, reason in conn.execute(
        """
        SELECT d.value, p.value, t.to_state, t.ts_ns, t.reason
        FROM json_each(?1) d, json_each(?2) p
        JOIN transitions t ON t.id = (
            SELECT id FROM transitions WHERE device_id = d.value AND probe = p.value AND ts_ns < ?3
            ORDER BY ts_ns DESC, id DESC LIMIT 1)
        """,
        (ids_json, json.dumps(PROBE_ORDER), start_ns),
    ):
        code = STATE_CODE[state]
        if code == STATE_CODE[State.UNKNOWN.value] and reason is not None and reason.startswith(MONITOR_BLIND):
            code = SILENT
            silences.append((reason, device_id, slot[probe], ts_ns))
        initial[device_id][slot[probe]] = code
        first_seen[device_id] = start_ns - 1  # before the period: its exact time does not matter

    # Slots and codes computed by SQLite: the rows are the events as they are, no copies.
    slot_sql = " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(PROBE_ORDER))
    code_sql = " ".join(f"WHEN '{s}' THEN {c}" for s, c in STATE_CODE.items())
    unknown = State.UNKNOWN.value
    rows = conn.execute(
        f"""
        SELECT device_id, ts_ns, CASE probe {slot_sql} END,
               CASE WHEN to_state = '{unknown}' AND {_BLIND_SQL} THEN {SILENT} ELSE CASE to_state {code_sql} END END
        FROM transitions
        WHERE ts_ns >= ?1 AND ts_ns < ?2 AND device_id IN (SELECT value FROM json_each(?3))
          AND probe IN (SELECT value FROM json_each(?4))
        ORDER BY device_id, ts_ns, id
        """,
        (start_ns, end_ns, ids_json, json.dumps(PROBE_ORDER), *blind),
    ).fetchall()
    silences += conn.execute(
        f"""
        SELECT reason, device_id, CASE probe {slot_sql} END, ts_ns FROM transitions
        WHERE ts_ns >= ?1 AND ts_ns < ?2 AND device_id IN (SELECT value FROM json_each(?3))
          AND probe IN (SELECT value FROM json_each(?4)) AND to_state = '{unknown}' AND {_BLIND_SQL}
        ORDER BY ts_ns, id
        """,
        (start_ns, end_ns, ids_json, json.dumps(PROBE_ORDER), *blind),
    ).fetchall()
    changes = {device_id: list(events) for device_id, events in itertools.groupby(rows, key=itemgetter(0))}
    for device_id, events in changes.items():
        if first_seen[device_id] is None:
            first_seen[device_id] = events[0][1]

    sessions = tuple(
        conn.execute(
            "SELECT id, started_ns, last_seen_ns FROM sessions WHERE started_ns < ? AND last_seen_ns > ? ORDER BY id",
            (end_ns, start_ns),
        ).fetchall()
    )
    watches: list[Watch] = []
    if sessions:
        bounds = {sid: (started, last) for sid, started, last in sessions}
        opened: set[tuple[int, str]] = set()
        for session_id, probe, w_start, w_end, grace in conn.execute(
            "SELECT session_id, probe, start_ns, end_ns, grace_ns FROM probe_watch "
            "WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY session_id, probe, start_ns, id",
            (json.dumps(list(bounds)),),
        ):
            started, last = bounds[session_id]
            if (session_id, probe) not in opened:  # the first cycle began with the session
                opened.add((session_id, probe))
                w_start = started
            watches.append(Watch(session_id, probe, max(w_start, started), min(w_end + grace, last)))

    statuses: dict[str, list[tuple[int, Status]]] = {}
    if "point_status" in tables:
        for device_id, status, since_ns in conn.execute(
            "SELECT device_id, status, since_ns FROM point_status WHERE device_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY device_id, since_ns, id",
            (ids_json,),
        ):
            statuses.setdefault(device_id, []).append((since_ns, Status(status)))
        for device_id, rows in statuses.items():
            seen = first_seen[device_id]
            first_seen[device_id] = rows[0][0] if seen is None else min(seen, rows[0][0])

    latest = conn.execute("SELECT last_seen_ns, stopped_ns FROM sessions ORDER BY id DESC LIMIT 1").fetchone()
    return History(
        start_ns, end_ns, initial, changes, sessions, tuple(watches), statuses, first_seen,
        tuple(windows_between(conn, start_ns, end_ns)), latest[0] if latest and latest[1] is None else None,
        tuple(sorted(silences, key=itemgetter(3))),
    )
