"""Spot check (抽查): what fleetmon says about one point at one moment, with the evidence, for
the buyer to hold against its own look at the camera ("运维系统对设备监测数据和实际数据误差不得
超过3%，以采购人抽查为准", CONTRACTS.md A).

For the moment asked: each basis as fleetmon saw it and as the assessment counts it (computed by
the availability machinery itself, so a spot check and the period figures cannot disagree);
each probe's stored state, since when, whether it was watching, and the transitions before and
after; the point's status, the maintenance windows and exclusions in force; the monitoring
session, or the gap when fleetmon was not running.

The state database keeps transitions, not raw probe results; those live in InfluxDB. A caller
that can read them passes a `ResultSource` (monitor.metrics.results.InfluxResults); without one,
or when it fails, `results_note` says so.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from monitor.assess.availability import AvailabilityError, check_inputs
from monitor.assess.config import UnknownPolicy
from monitor.assess.history import PROBE_ORDER, History, load_history
from monitor.assess.model import Exclusion
from monitor.assess.periods import Period, format_local
from monitor.assess.timeline import (
    B_BLIND,
    B_CAUSE,
    B_DOWN,
    B_MAINTENANCE,
    B_SILENT,
    B_STATUS,
    B_UNDECIDED,
    B_UNREACHABLE,
    B_UP,
    BASES,
    BUCKETS,
    COV_OFF,
    COV_RUN,
    EX_NONE,
    EX_OUTSIDE,
    coverage,
    epochs_of,
    exclusion_layer,
    paint,
    sweep,
    tables,
)
from monitor.core.model import Basis, Device, Status
from monitor.fleet.inventory import Inventory
from monitor.metrics.results import RawResult, ResultsUnavailable
from monitor.state.db import StateDB
from monitor.state.tracker import State, Transition

_BUCKET_NAMES = {
    B_UP: "up", B_DOWN: "down", B_UNREACHABLE: "unreachable", B_UNDECIDED: "unknown", B_BLIND: "not watched",
    B_SILENT: "agent silent", B_STATUS: "excluded: status", B_MAINTENANCE: "excluded: maintenance", B_CAUSE: "excluded: cause",
}
_COVERAGE_NAMES = {COV_RUN: "watched", COV_OFF: "not running"}


class ResultSource(Protocol):
    """Where raw probe results can be read back: monitor.metrics.results.InfluxResults."""

    async def results(self, device_id: str, start_ns: int, end_ns: int) -> Sequence[RawResult]:
        """Results of `device_id` in [start_ns, end_ns), in time order. Raises
        ResultsUnavailable."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeAt:
    """One probe of the point at the moment: its stored (published) state, None before its
    first verdict, since when; `coverage` "watched", "not watched" (no session, or the probe
    stalled) or "not running" (off in that session); up to `context` transitions at or before
    the moment (`before`, oldest first) and after it (`after`)."""

    probe: str
    state: State | None
    since_ns: int | None
    coverage: str
    before: tuple[Transition, ...]
    after: tuple[Transition, ...]


@dataclass(frozen=True, slots=True)
class SpotCheck:
    """The point `device` at `at_ns`.

    - seen: per basis that applied then, its state as fleetmon saw it: "up", "down",
      "unreachable", "unknown" (undecided), "not watched" or "agent silent" (monitor blind: the
      probe agent watching it was silent);
    - counted: the same as the assessment counts it: one of those, or "excluded: status",
      "excluded: maintenance", "excluded: cause" (the first that applies, in that order), or
      "not a point yet" (before its first stored evidence);
    - probes: per probe that ever judged the point (and every basis probe);
    - status: the point's status then and since when (None: from before its recorded history);
    - exclusions: the status, maintenance windows and caller exclusions in force;
    - session: (id, started_ns, last_seen_ns) of the monitoring session covering the moment;
      when there was none, `not_running` = (last heartbeat before, next start after), None
      where there was no such session;
    - results: raw probe results within `window_ns` either side, when a source gave them;
      results_note: why there are none (no source, source unavailable) or None.
    """

    device: Device
    at_ns: int
    timezone: str
    seen: dict[Basis, str]
    counted: dict[Basis, str]
    probes: dict[str, ProbeAt]
    status: Status
    status_since_ns: int | None
    exclusions: tuple[Exclusion, ...]
    session: tuple[int, int, int] | None
    not_running: tuple[int | None, int | None] | None
    results: tuple[RawResult, ...]
    results_note: str | None

    @property
    def when(self) -> str:
        return format_local(self.at_ns, self.timezone)


async def spot_check(
    db: StateDB,
    inventory: Inventory,
    device_id: str,
    at_ns: int,
    *,
    timezone: str,
    online_requires: Sequence[Basis],
    exclusions: Iterable[Exclusion] = (),
    results: ResultSource | None = None,
    context: int = 3,
    window_ns: int = 10 * 60 * 1_000_000_000,
    now_ns: int | None = None,
) -> SpotCheck:
    """What fleetmon says about `device_id` at `at_ns` (UTC ns; people give local times, see
    monitor.assess.periods.parse_instant), with `context` transitions either side per probe and,
    from `results`, the raw results within `window_ns` either side.

    `exclusions` as for availability (work orders with an excluded cause). Raises
    AvailabilityError for an unknown device, a moment in the future, or bad exclusions."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if at_ns > now_ns:
        raise AvailabilityError([f"spot check at {format_local(at_ns, timezone)}: that is in the future"])
    moment = Period(format_local(at_ns, timezone), "custom", at_ns, at_ns + 1, timezone)
    checked = check_inputs(inventory, moment, [device_id], None, exclusions)
    device, given = checked.devices[0], checked.exclusions

    def read(conn: sqlite3.Connection) -> tuple[History, dict[str, tuple[list[Transition], list[Transition]]], list]:
        history = load_history(conn, [device_id], at_ns, at_ns + 1)
        around = {}
        for (probe,) in conn.execute("SELECT DISTINCT probe FROM transitions WHERE device_id=?", (device_id,)):
            before = conn.execute(
                "SELECT device_id, probe, ts_ns, from_state, to_state, reason FROM transitions "
                "WHERE device_id=? AND probe=? AND ts_ns<=? ORDER BY ts_ns DESC, id DESC LIMIT ?",
                (device_id, probe, at_ns, context),
            ).fetchall()
            after = conn.execute(
                "SELECT device_id, probe, ts_ns, from_state, to_state, reason FROM transitions "
                "WHERE device_id=? AND probe=? AND ts_ns>? ORDER BY ts_ns, id LIMIT ?",
                (device_id, probe, at_ns, context),
            ).fetchall()
            around[probe] = ([_transition(r) for r in reversed(before)], [_transition(r) for r in after])
        neighbours = conn.execute(
            "SELECT max(last_seen_ns) FROM sessions WHERE last_seen_ns <= ?1 UNION ALL "
            "SELECT min(started_ns) FROM sessions WHERE started_ns > ?1",
            (at_ns,),
        ).fetchall()
        return history, around, neighbours

    history, around, neighbours = await db.execute(read)
    t = tables(tuple(online_requires), UnknownPolicy.EXCLUDE)
    covers = coverage(history, at_ns, at_ns + 1)
    epochs, changes = epochs_of(covers)
    events = sorted(history.changes.get(device_id, []), key=lambda e: e[1])
    windows = [(w, w.match.selector()) for w in history.windows]
    pieces, _ = exclusion_layer(device, history, at_ns, at_ns + 1, windows, given.get(device_id, ()))
    layer = paint(at_ns, at_ns + 1, pieces)
    # The same exclusions over all time, to show them whole (from, to), not cut to the moment.
    _, evidence = exclusion_layer(device, history, 0, 2**62, windows, given.get(device_id, ()))
    seen = _classes(sweep(at_ns, at_ns + 1, history.initial[device_id], changes[0][1], EX_NONE, events, t, epochs, (), None).time)
    if layer[0][1] == EX_OUTSIDE:  # before the point's first evidence: not assessed at all
        counted = {basis: "not a point yet" for basis in seen}
    else:
        counted = _classes(sweep(at_ns, at_ns + 1, history.initial[device_id], changes[0][1], layer[0][1], events, t,
                                 epochs, (), None).time)

    probes = {}
    for probe, (before, after) in sorted(around.items()):
        state = before[-1].new if before else None
        cover = "-"  # a probe of no basis: its coverage is not recorded
        if probe in PROBE_ORDER:
            cover = _COVERAGE_NAMES.get(covers[PROBE_ORDER.index(probe)][0][1], "not watched")
        probes[probe] = ProbeAt(probe, state, before[-1].ts_ns if before else None, cover, tuple(before), tuple(after))

    status, since = _status_at(history, device, at_ns)
    session = history.sessions[0] if history.sessions else None
    not_running = None if session is not None else (neighbours[0][0], neighbours[1][0])

    raw: tuple[RawResult, ...] = ()
    if results is None:
        note: str | None = "raw probe results are kept in InfluxDB only, and none was given to read them from"
    else:
        try:
            raw = tuple(await results.results(device_id, at_ns - window_ns, at_ns + window_ns))
            note = None if raw else f"InfluxDB holds no probe result of this point within ±{window_ns / 60e9:g} min"
        except ResultsUnavailable as exc:
            note = f"InfluxDB not available, raw probe results not shown: {exc}"
    return SpotCheck(
        device, at_ns, timezone, seen, counted, probes, status, since,
        tuple(e for e in evidence if e.start_ns <= at_ns < e.end_ns), session, not_running, raw, note,
    )


def _classes(time_buckets: list[int]) -> dict[Basis, str]:
    """Basis → the name of the one bucket its single nanosecond went to."""
    out = {}
    for b, basis in enumerate(BASES):
        for bucket in range(BUCKETS):
            if time_buckets[b * BUCKETS + bucket]:
                out[basis] = _BUCKET_NAMES[bucket]
    return out


def _status_at(history: History, device: Device, at_ns: int) -> tuple[Status, int | None]:
    rows = history.statuses.get(device.id)
    if not rows:
        return device.status, None
    current, since = rows[0][1], None
    for ts, status in rows:
        if ts <= at_ns:
            current, since = status, ts
    return current, since


def _transition(row: tuple) -> Transition:
    device_id, probe, ts_ns, old, new, reason = row
    return Transition(device_id, probe, ts_ns, State(old), State(new), reason)
