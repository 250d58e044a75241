"""Faults and their events: what the rules engine raises and the notifiers deliver.

A fault is one real problem (a dead switch with 40 cameras behind it is ONE fault whose
`affected` lists the 40 cameras). Its lifecycle: pending (condition seen, not yet sustained
for the rule's `for_s`) → firing (notified) → resolved (notified). Pending faults that clear
are dropped without a word. Every notification is a FaultEvent, written to the outbox in the
same SQLite transaction as the fault's state, so a crash can neither lose one nor queue it twice
(its delivery is at least once: rules/alerting/outbox.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Mapping


class Severity(StrEnum):
    """紧急 / 严重 / 一般."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @property
    def zh(self) -> str:
        return {"critical": "紧急", "major": "严重", "minor": "一般"}[self.value]

    @property
    def rank(self) -> int:
        """0 = most severe; for sorting and `min_severity` comparisons."""
        return ("critical", "major", "minor").index(self.value)


class FaultState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    FIRING = "firing"  # the fault is confirmed: first notification
    RESOLVED = "resolved"  # the condition cleared: every notified fault gets one
    REMINDER = "reminder"  # still firing and not acknowledged after `remind_every_s`
    ESCALATED = "escalated"  # not acknowledged after `escalate_after_s`: sent to the escalation route
    ACKNOWLEDGED = "acknowledged"  # somebody took it (API)
    # Work orders (monitor.assess): the "fault" carried is the order (id = its reference, e.g.
    # WO-20261204-0007) and `details["facts"]` holds its [label, value] lines, already in the
    # configured language, for the routes to show as they are.
    SLA_WARNING = "sla_warning"  # an SLA clock of the order is close to its deadline (e.g. 80 % used)
    SLA_BREACHED = "sla_breached"  # an SLA clock passed its deadline, or a point stayed offline too long


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault. Times are UTC ns since the epoch.

    - id: "F" + a sequence number, stable for the fault's life.
    - rule: name of the rule that raised it (config `rules[].name`); kind: its type
      (device_down, online_rate, latency, loss, jitter, flapping, notifier …).
    - scope: what it is about: "device:<id>", "site:<name>", "region:<name>", "fleet".
    - device_id / site / region: where, for routing and messages (None when not applicable).
    - title: one line for people, in the configured language ("交换机X离线，影响N路摄像机").
    - value / threshold: the measured value and the limit (units in `unit`), when numeric.
    - affected: device ids the fault covers besides its own device (cameras behind a switch).
    - in_maintenance: the fault's scope is inside a maintenance window: no notifications.
    """

    id: str
    rule: str
    kind: str
    scope: str
    severity: Severity
    state: FaultState
    title: str
    first_seen_ns: int
    last_seen_ns: int
    device_id: str | None = None
    site: str | None = None
    region: str | None = None
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    affected: tuple[str, ...] = ()
    fired_ns: int | None = None
    resolved_ns: int | None = None
    acked_by: str | None = None
    acked_ns: int | None = None
    in_maintenance: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"], d["state"] = self.severity.value, self.state.value
        d["affected"], d["details"] = list(self.affected), dict(self.details)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Fault":
        return cls(
            **{
                **d,
                "severity": Severity(d["severity"]),
                "state": FaultState(d["state"]),
                "affected": tuple(d.get("affected") or ()),
                "details": dict(d.get("details") or {}),
            }
        )


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A notification to deliver: what happened to which fault, when (UTC ns), and the fault as
    it was at that moment. `id` is the outbox row id (delivery order within a route)."""

    id: int
    kind: EventKind
    ts_ns: int
    fault: Fault

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.kind.value, "ts_ns": self.ts_ns, "fault": self.fault.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FaultEvent":
        return cls(int(d["id"]), EventKind(d["event"]), int(d["ts_ns"]), Fault.from_dict(d["fault"]))
