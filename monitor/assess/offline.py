"""Long-offline points (tender: "保证掉线点位一周内要重新上线"): which points have been offline
for how long, from the state database's transitions.

A point is offline while any probe of the chosen bases says down or unreachable; its offline
run started at the latest transition of that probe from a state that was not offline into one
that is (down → unreachable → down is one run). With several probes, the runs all last until
now, so their union began at the earliest start.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Sequence

from monitor.assess.model import Cause
from monitor.core.model import Basis, Kind
from monitor.state.availability import PICTURE
from probes import probes_of


def probes_for(bases: Iterable[Basis]) -> tuple[str, ...]:
    """The probes that feed these measured bases (network → icmp, video → rtsp, rtsp_frame …;
    picture → its tracker, stored as probe PICTURE: a picture frozen for weeks is long offline)."""
    return tuple(p for b in bases for p in ((PICTURE,) if b is Basis.PICTURE else probes_of(b)))


def offline_since(conn: sqlite3.Connection, probes: Sequence[str]) -> dict[str, int]:
    """(state DB thread) {device id: UTC ns its current offline run began} for the devices that
    are offline now on any of `probes`."""
    marks = ",".join("?" * len(probes))
    sql = f"""
        SELECT s.device_id, s.since_ns,
               (SELECT max(t.ts_ns) FROM transitions t
                 WHERE t.device_id = s.device_id AND t.probe = s.probe
                   AND t.to_state IN ('down', 'unreachable') AND t.from_state NOT IN ('down', 'unreachable'))
          FROM device_state s
         WHERE s.state IN ('down', 'unreachable') AND s.probe IN ({marks})"""
    out: dict[str, int] = {}
    for device_id, since_ns, run_ns in conn.execute(sql, tuple(probes)):
        start = since_ns if run_ns is None else min(run_ns, since_ns)
        out[device_id] = min(out.get(device_id, start), start)
    return out


def offline_at(conn: sqlite3.Connection, probes: Sequence[str], at_ns: int) -> dict[str, int]:
    """(state DB thread) `offline_since` as it was at `at_ns` (a report's period end), from the
    stored transitions before it: {device id: UTC ns its offline run began} for the devices
    whose latest state before `at_ns` was down or unreachable on any of `probes`."""
    marks = ",".join("?" * len(probes))
    latest = conn.execute(
        f"SELECT device_id, probe, to_state, max(ts_ns) FROM transitions WHERE ts_ns < ? AND probe IN ({marks}) "
        "GROUP BY device_id, probe", (at_ns, *probes),
    ).fetchall()
    offline = {(d, p): ts for d, p, state, ts in latest if state in ("down", "unreachable")}
    if not offline:
        return {}
    runs = conn.execute(
        f"SELECT device_id, probe, max(ts_ns) FROM transitions WHERE ts_ns < ? AND probe IN ({marks}) "
        "AND to_state IN ('down', 'unreachable') AND from_state NOT IN ('down', 'unreachable') GROUP BY device_id, probe",
        (at_ns, *probes),
    ).fetchall()
    starts = {(d, p): ts for d, p, ts in runs}
    out: dict[str, int] = {}
    for (device_id, probe), last in offline.items():
        start = min(starts.get((device_id, probe), last), last)
        out[device_id] = min(out.get(device_id, start), start)
    return out


def back_online_ns(conn: sqlite3.Connection, device_id: str, probes: Sequence[str]) -> int | None:
    """(state DB thread) When the device's last offline probe recovered: the latest change of
    its current states on `probes` (None when it has none)."""
    marks = ",".join("?" * len(probes))
    row = conn.execute(
        f"SELECT max(since_ns) FROM device_state WHERE device_id = ? AND probe IN ({marks})", (device_id, *probes)
    ).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class LongOffline:
    """A point offline at least the threshold.

    - since_ns: start of the offline run (UTC ns); days: its length at the time of listing.
    - order_ref: its open work order, if any (the newest one listing the point); cause: that
      order's cause class; excluded: the cause takes the downtime out of the assessment, so the
      point is listed but not escalated; escalated: the order was opened or marked for it.
    """

    device_id: str
    name: str
    kind: Kind
    site: str
    region: str
    since_ns: int
    days: float
    order_ref: str | None
    cause: Cause | None
    excluded: bool
    escalated: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id, "name": self.name, "kind": self.kind.value, "site": self.site,
            "region": self.region, "since_ns": self.since_ns, "days": round(self.days, 3),
            "order_ref": self.order_ref, "cause": self.cause.value if self.cause else None,
            "excluded": self.excluded, "escalated": self.escalated,
        }
