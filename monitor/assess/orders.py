"""Work orders (工单) as events: what an order is, the events that change it, how its state is
folded from them and which new events are allowed (pure functions; storage is in
monitor.assess.workorders).

An order is never edited in place: every change is an appended OrderEvent (order reference,
action, when it happened, who, a JSON payload), and the order is the fold of its events. The
stamps and their order:

    reported ─► acknowledged (响应) ─► arrived (到场) ─► restored (修复) ─► closed
                                        └── replaced (更换, any number) ──┘

- every stamp is at or after the report and at or after every earlier stamp present; a stamp
  of a later stage already present refuses an earlier one (arriving after the restore, a second
  acknowledgement);
- steps may be skipped: acknowledging is implied by any later stamp; a remote fix has no
  arrival; but a restore on site (resolution on_site) needs the arrival first;
- a replacement needs the fault reported (not an arrival: a camera swapped and noticed by its
  ONVIF serial is confirmed after the fact) and puts the order on site;
- closing needs the restore, unless the order is cancelled (误报, duplicate);
- nothing is accepted on a closed order, nor in the future (FUTURE_SLACK_NS of clock skew
  allowed), nor without who (`by`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable, Mapping, NamedTuple

from monitor.assess.model import Cause
from monitor.core.model import Kind
from rules.model import Severity

FLEETMON = "fleetmon"
"""`by` of the events fleetmon records itself (openings, automatic restores, SLA notices)."""

FUTURE_SLACK_NS = 60 * 1_000_000_000
"""A stamp up to this far ahead of fleetmon's clock is taken (a phone's clock a little fast)."""

MAX_BY = 64
MAX_TEXT = 2000


class Source(StrEnum):
    """Why the order exists."""

    FAULT = "fault"  # a fault fired and matched `assessment.workorders.open_on`; source_ref: fault id
    MANUAL = "manual"  # 故障申告: the buyer reported it (phone), duty staff entered it
    LONG_OFFLINE = "long_offline"  # a point offline ≥ the threshold (7 days); source_ref: device id
    SERIAL_CHANGE = "serial_change"  # a camera's ONVIF serial changed with no order open: a replacement to confirm


class Resolution(StrEnum):
    """How the fault was cleared: remotely (无须现场处理) or on site (须现场处理)."""

    REMOTE = "remote"
    ON_SITE = "on_site"


class Action(StrEnum):
    """What an event does (OrderEvent.action); payload keys in brackets."""

    OPENED = "opened"  # [devices, kind, severity, source, source_ref, title, fault_start_ns, assignee]
    ASSIGNED = "assigned"  # [assignee]
    ACKNOWLEDGED = "acknowledged"  # 响应
    ARRIVED = "arrived"  # 到场
    RESTORED = "restored"  # 修复 [resolution; by fleetmon also auto, source_ref]
    REPLACED = "replaced"  # 更换 [device, old_serial, new_serial, old_model, new_model]
    REPLACEMENT_PROPOSED = "replacement_proposed"  # by fleetmon [device, old_serial, new_serial, new_model]
    CLASSIFIED = "classified"  # [cause, resolution, no_spare] (any of them)
    NOTED = "noted"  # [text]
    CLOSE_PROPOSED = "close_proposed"  # by fleetmon [reason]
    CLOSED = "closed"  # [cancelled, note; by fleetmon note = the reason]
    SLA_NOTICE = "sla_notice"  # by fleetmon: a warning or breach was sent [clock, level, deadline_ns]
    ESCALATED = "escalated"  # by fleetmon: points offline too long [devices, since_ns, days]


class WorkOrderError(ValueError):
    """The request is refused and nothing was written; the message says what and where."""


class UnknownOrderError(WorkOrderError):
    """No work order has this reference."""


class OrderStateError(WorkOrderError):
    """The order's state does not allow it: closed, or a stamp out of order."""


class OrderEvent(NamedTuple):
    """One stored event. ts_ns: when it happened (the stamp, UTC ns); recorded_ns: when it was
    written; id: the row id (global order of writing). A NamedTuple: a quarter's fold makes
    tens of thousands, and a tuple is built several times faster than a frozen dataclass."""

    id: int
    ref: str
    action: Action
    ts_ns: int
    recorded_ns: int
    by: str
    payload: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ref": self.ref, "action": self.action.value, "ts_ns": self.ts_ns,
                "recorded_ns": self.recorded_ns, "by": self.by, "payload": dict(self.payload)}


@dataclass(frozen=True, slots=True)
class Replacement:
    """A device exchanged (更换): serials and models, old and new."""

    device_id: str
    old_serial: str
    new_serial: str
    old_model: str | None
    new_model: str | None
    ts_ns: int
    by: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """A replacement fleetmon suspects (the device's ONVIF serial changed), until confirmed."""

    device_id: str
    old_serial: str
    new_serial: str
    new_model: str | None
    ts_ns: int
    confirmed: bool


@dataclass(frozen=True, slots=True)
class Note:
    ts_ns: int
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A work order as its events make it. Times UTC ns; None = not (yet) stamped.

    - devices: the device first, then the points it affects (a switch and its cameras); kind:
      the first device's kind (for the SLA policy).
    - source / source_ref: see Source; title: one line for people.
    - fault_start_ns: when the downtime began (the fault's first sighting), for exclusions;
      None for manual reports (the report is the start).
    - notices: (clock, "warning" | "breached") already sent; escalated_ns: when the long-offline
      escalation was recorded.
    """

    ref: str
    devices: tuple[str, ...]
    kind: Kind
    severity: Severity
    source: Source
    source_ref: str | None
    title: str
    reported_ns: int
    reported_by: str
    fault_start_ns: int | None = None
    assignee: str | None = None
    acknowledged_ns: int | None = None
    acknowledged_by: str | None = None
    arrived_ns: int | None = None
    arrived_by: str | None = None
    restored_ns: int | None = None
    restored_by: str | None = None
    resolution: Resolution | None = None
    auto_restored: bool = False
    cause: Cause | None = None
    no_spare: bool = False
    replacements: tuple[Replacement, ...] = ()
    proposals: tuple[Proposal, ...] = ()
    notes: tuple[Note, ...] = ()
    close_proposed_ns: int | None = None
    closed_ns: int | None = None
    closed_by: str | None = None
    cancelled: bool = False
    notices: frozenset[tuple[str, str]] = frozenset()
    escalated_ns: int | None = None
    events: int = 0

    @property
    def is_open(self) -> bool:
        return self.closed_ns is None

    @property
    def on_site(self) -> bool:
        """On site: classified or restored on_site, an arrival or a replacement stamped."""
        return self.resolution is Resolution.ON_SITE or self.arrived_ns is not None or bool(self.replacements)

    @property
    def responded_ns(self) -> int | None:
        """The response (响应): the acknowledgement, else the first later stamp that implies it."""
        stamps = [self.acknowledged_ns, self.arrived_ns, self.restored_ns] + [r.ts_ns for r in self.replacements]
        return min((s for s in stamps if s is not None), default=None)

    @property
    def replaced_ns(self) -> int | None:
        return min((r.ts_ns for r in self.replacements), default=None)

    @property
    def stage(self) -> str:
        """reported | acknowledged | arrived | restored | closed: the furthest stamp."""
        for stage, ts in (("closed", self.closed_ns), ("restored", self.restored_ns), ("arrived", self.arrived_ns),
                          ("acknowledged", self.acknowledged_ns)):
            if ts is not None:
                return stage
        return "reported"

    @property
    def pending_proposals(self) -> tuple[Proposal, ...]:
        return tuple(p for p in self.proposals if not p.confirmed)

    @property
    def downtime_start_ns(self) -> int:
        return self.fault_start_ns if self.fault_start_ns is not None else self.reported_ns

    @property
    def downtime_end_ns(self) -> int | None:
        """The restore, else the close (a cancelled order), else None (still down)."""
        return self.restored_ns if self.restored_ns is not None else self.closed_ns

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (API, CLI --json): enums as values, tuples as lists."""
        return {
            "ref": self.ref, "devices": list(self.devices), "kind": self.kind.value,
            "severity": self.severity.value, "source": self.source.value, "source_ref": self.source_ref,
            "title": self.title, "stage": self.stage, "reported_ns": self.reported_ns, "reported_by": self.reported_by,
            "fault_start_ns": self.fault_start_ns, "assignee": self.assignee,
            "acknowledged_ns": self.acknowledged_ns, "acknowledged_by": self.acknowledged_by,
            "arrived_ns": self.arrived_ns, "arrived_by": self.arrived_by,
            "restored_ns": self.restored_ns, "restored_by": self.restored_by,
            "resolution": self.resolution.value if self.resolution else None, "auto_restored": self.auto_restored,
            "cause": self.cause.value if self.cause else None,
            "cause_excluded": bool(self.cause and self.cause.excluded), "no_spare": self.no_spare,
            "replacements": [_plain(r) for r in self.replacements],
            "proposals": [_plain(p) for p in self.proposals], "notes": [_plain(n) for n in self.notes],
            "close_proposed_ns": self.close_proposed_ns, "closed_ns": self.closed_ns, "closed_by": self.closed_by,
            "cancelled": self.cancelled, "escalated_ns": self.escalated_ns, "events": self.events,
        }


def _plain(obj: Replacement | Proposal | Note) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


# -- folding ------------------------------------------------------------------------------------


def fold(events: Iterable[OrderEvent]) -> WorkOrder:
    """The order made by its events (oldest first, the first one `opened`). The events were
    checked when written; folding trusts them. Raises WorkOrderError for an empty history."""
    state: dict[str, Any] | None = None
    replacements: list[Replacement] = []
    proposals: list[Proposal] = []
    notes: list[Note] = []
    notices: set[tuple[str, str]] = set()
    count = 0
    for e in events:
        count += 1
        p, a = e.payload, e.action
        if state is None:
            if a is not Action.OPENED:
                raise WorkOrderError(f"{e.ref}: history does not start with 'opened'")
            state = {
                "ref": e.ref, "devices": tuple(p["devices"]), "kind": _KINDS[p["kind"]],
                "severity": _SEVERITIES[p["severity"]], "source": _SOURCES[p["source"]],
                "source_ref": p.get("source_ref"), "title": p["title"], "reported_ns": e.ts_ns,
                "reported_by": e.by, "fault_start_ns": p.get("fault_start_ns"), "assignee": p.get("assignee"),
            }
        elif a is Action.ASSIGNED:
            state["assignee"] = p["assignee"]
        elif a is Action.ACKNOWLEDGED:
            state["acknowledged_ns"], state["acknowledged_by"] = e.ts_ns, e.by
        elif a is Action.ARRIVED:
            state["arrived_ns"], state["arrived_by"] = e.ts_ns, e.by
        elif a is Action.RESTORED:
            state["restored_ns"], state["restored_by"] = e.ts_ns, e.by
            state["resolution"] = _RESOLUTIONS[p["resolution"]]
            state["auto_restored"] = bool(p.get("auto"))
        elif a is Action.REPLACED:
            replacements.append(Replacement(
                p["device"], p["old_serial"], p["new_serial"], p.get("old_model"), p.get("new_model"), e.ts_ns, e.by))
            proposals = [
                _confirmed(x) if (x.device_id, x.new_serial) == (p["device"], p["new_serial"]) else x for x in proposals
            ]
        elif a is Action.REPLACEMENT_PROPOSED:
            proposals.append(Proposal(p["device"], p["old_serial"], p["new_serial"], p.get("new_model"), e.ts_ns, False))
        elif a is Action.CLASSIFIED:
            if p.get("cause") is not None:
                state["cause"] = _CAUSES[p["cause"]]
            if p.get("resolution") is not None:
                state["resolution"] = _RESOLUTIONS[p["resolution"]]
            if p.get("no_spare") is not None:
                state["no_spare"] = bool(p["no_spare"])
        elif a is Action.NOTED:
            notes.append(Note(e.ts_ns, e.by, p["text"]))
        elif a is Action.CLOSE_PROPOSED:
            state["close_proposed_ns"] = e.ts_ns
        elif a is Action.CLOSED:
            state["closed_ns"], state["closed_by"], state["cancelled"] = e.ts_ns, e.by, bool(p.get("cancelled"))
        elif a is Action.SLA_NOTICE:
            notices.add((p["clock"], p["level"]))
        elif a is Action.ESCALATED:
            state["escalated_ns"] = e.ts_ns
    if state is None:
        raise WorkOrderError("an order needs at least its 'opened' event")
    return WorkOrder(
        **state, replacements=tuple(replacements), proposals=tuple(proposals), notes=tuple(notes),
        notices=frozenset(notices), events=count,
    )


# Enum lookups by value, without Enum.__call__: folding a quarter makes tens of thousands.
_KINDS = {k.value: k for k in Kind}
_SEVERITIES = {s.value: s for s in Severity}
_SOURCES = {s.value: s for s in Source}
_RESOLUTIONS = {r.value: r for r in Resolution}
_CAUSES = {c.value: c for c in Cause}


def _confirmed(p: Proposal) -> Proposal:
    return Proposal(p.device_id, p.old_serial, p.new_serial, p.new_model, p.ts_ns, True)


# -- checking -----------------------------------------------------------------------------------


def check_by(by: str | None, what: str = "by") -> str:
    """A person's name (who did it, or `what` else: the assignee), trimmed; raises
    WorkOrderError when missing or too long."""
    if by is None or not str(by).strip():
        raise WorkOrderError(f"{what} is missing" + (": every event of a work order records who" if what == "by" else ""))
    by = str(by).strip()
    if len(by) > MAX_BY:
        raise WorkOrderError(f"{what}: at most {MAX_BY} characters")
    return by


def check_time(ts_ns: int, now_ns: int, what: str) -> None:
    """Raise WorkOrderError unless `ts_ns` is an instant (int, UTC ns) not in the future."""
    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
        raise WorkOrderError(f"{what}: the time must be UTC ns since the epoch (an integer), not {ts_ns!r}")
    if ts_ns > now_ns + FUTURE_SLACK_NS:
        raise WorkOrderError(f"{what}: the time is in the future ({_ago(ts_ns - now_ns)} ahead of now)")


def check(order: WorkOrder, action: Action, ts_ns: int, now_ns: int, payload: Mapping[str, Any]) -> None:
    """Raise WorkOrderError / OrderStateError when `action` at `ts_ns` may not be appended to
    `order` now (see the module docstring for the rules)."""
    what = f"{order.ref} {action.value}"
    if not order.is_open:
        raise OrderStateError(f"{order.ref} is closed ({order.closed_by}): nothing more is recorded on it")
    check_time(ts_ns, now_ns, what)
    if ts_ns < order.reported_ns:
        raise OrderStateError(f"{what}: the time is before the report ({_ago(order.reported_ns - ts_ns)} earlier)")
    stamps = {
        Action.ACKNOWLEDGED: order.acknowledged_ns, Action.ARRIVED: order.arrived_ns,
        Action.RESTORED: order.restored_ns, Action.CLOSED: order.closed_ns,
    }
    if action in stamps:
        stages = list(stamps)
        here = stages.index(action)
        if stamps[action] is not None:
            raise OrderStateError(f"{what}: already recorded")
        for later in stages[here + 1:]:
            if stamps[later] is not None:
                raise OrderStateError(f"{what}: the order is already {later.value}; {action.value} comes before it")
        for earlier in stages[:here]:
            if stamps[earlier] is not None and ts_ns < stamps[earlier]:
                raise OrderStateError(
                    f"{what}: the time is before the {earlier.value} stamp ({_ago(stamps[earlier] - ts_ns)} earlier)")
        if action is Action.RESTORED and payload.get("resolution") == Resolution.ON_SITE and order.arrived_ns is None:
            raise OrderStateError(f"{what}: an on-site restore needs the arrival (到场) recorded first")
        last_replacement = max((r.ts_ns for r in order.replacements), default=None)
        if action is Action.CLOSED and last_replacement is not None and ts_ns < last_replacement:
            raise OrderStateError(f"{what}: the time is before the last replacement (更换)")
        if action is Action.CLOSED and order.restored_ns is None and not payload.get("cancelled"):
            raise OrderStateError(f"{what}: record the restore (修复) first, or close it as cancelled (误报/重复)")
    elif action is Action.REPLACED:
        if order.arrived_ns is not None and ts_ns < order.arrived_ns:
            raise OrderStateError(f"{what}: the time is before the arrival (到场)")
        if payload["device"] not in order.devices:
            raise WorkOrderError(f"{what}: device {payload['device']} is not one of this order's ({', '.join(order.devices)})")
        if not payload["old_serial"] or not payload["new_serial"]:
            raise WorkOrderError(f"{what}: old and new serial numbers are both needed")
        if payload["old_serial"] == payload["new_serial"]:
            raise WorkOrderError(f"{what}: the new serial number equals the old one")


def _ago(delta_ns: int) -> str:
    s = abs(delta_ns) // 1_000_000_000
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else f"{s // 60} min {s % 60} s"
