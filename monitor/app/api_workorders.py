"""Work orders (工单) over the HTTP API: the request and response models and the handlers of

    GET    /api/v1/workorders                      ?state=open|closed|all&device=&days=&limit=
    GET    /api/v1/workorders/{ref}                the order, its events, its SLA clocks
    POST   /api/v1/workorders                      a manual fault report (故障申告)        (write)
    POST   /api/v1/workorders/{ref}/acknowledge    响应/认领                               (write)
    POST   /api/v1/workorders/{ref}/arrive         到场                                    (write)
    POST   /api/v1/workorders/{ref}/restore        修复 (resolution remote | on_site)      (write)
    POST   /api/v1/workorders/{ref}/replace        更换 (device, old/new serial and model) (write)
    POST   /api/v1/workorders/{ref}/confirm-replacement   fleetmon's proposal confirmed    (write)
    POST   /api/v1/workorders/{ref}/classify       cause, resolution, no spare part        (write)
    POST   /api/v1/workorders/{ref}/note           a note                                  (write)
    POST   /api/v1/workorders/{ref}/assign         give the order to someone               (write)
    POST   /api/v1/workorders/{ref}/close          close (after the restore), or cancel    (write)

The routes themselves are declared with the others in monitor.app.api `_endpoints()`.

Who acts (`by` of the events) comes from the token (monitor.app.access): a person's token
records that person; the shared write token needs `by` in the body. Cancelling an order and an
excluded cause need the manager role (they take downtime out of the assessment).

The book (monitor.assess.workorders.WorkOrderBook) checks everything else; its errors become
400 (WorkOrderError: unknown device, a time in the future, serials missing …), 404
(UnknownOrderError) and 409 (OrderStateError: closed, stamps out of order), and nothing is
written. Without a book (work orders not enabled in the daemon) every route answers 503.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Awaitable, Literal

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from monitor.app.access import Permission
from monitor.app.api_base import (
    ApiError, BodyModel, Call, InModel, Line, OutModel, Person, Reason, Reply, opt_utc, to_ns, utc,
)
from monitor.assess.model import Cause
from monitor.core.timecheck import check_datetime
from monitor.assess.orders import (
    MAX_TEXT, OrderEvent, OrderStateError, Resolution, Source, UnknownOrderError, WorkOrder, WorkOrderError,
)
from monitor.assess.sla import LABELS, ClockState, ClockStatus
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Kind
from monitor.fleet.inventory import Inventory
from rules.model import Severity

_DAY_NS = 86_400 * 1_000_000_000

NOT_ENABLED = "work orders are not enabled in this daemon (config assessment.workorders)"

# --- request models ------------------------------------------------------------------------------

DeviceId = Annotated[Line, StringConstraints(max_length=64)]
Serial = Annotated[Line, StringConstraints(max_length=64)]
ModelName = Annotated[Line, StringConstraints(max_length=64)]
def _in_range(moment: datetime | None) -> datetime | None:
    """monitor.core.timecheck's range: stamps are stored as int64 ns."""
    return None if moment is None else check_datetime(moment)


Stamp = Annotated[
    AwareDatetime | None,
    AfterValidator(_in_range),
    Field(description="when it happened, ISO-8601 with a UTC offset (entered late: the real time); default now"),
]
By = Annotated[
    Person | None,
    Field(description="who: absent (or the same name) with a personal token, which records its person; "
                      "required with the shared write token"),
]


class OrderPath(InModel):
    ref: Annotated[str, Field(max_length=40, description='reference, e.g. "WO-20261204-0007"')]


class OrderQuery(InModel):
    state: Annotated[
        Literal["open", "closed", "all"],
        Field(description="open: oldest report first; closed and all: newest report first"),
    ] = "open"
    device: Annotated[DeviceId | None, Field(description="only orders listing this device (id)")] = None
    days: Annotated[
        int, Field(ge=1, le=3660, description="closed and all: orders open at some time in the last `days` days"),
    ] = 90
    limit: Annotated[int, Field(ge=1, le=10_000, description="most orders returned")] = 500


class ReportIn(BodyModel):
    """A manual fault report (故障申告): the buyer phoned, duty staff enter it."""

    devices: Annotated[
        list[DeviceId], Field(min_length=1, max_length=100, description="device ids, first the main one"),
    ]
    title: Annotated[Reason, Field(description="what was reported, one line")]
    severity: Annotated[Severity, Field(description="critical (紧急), major (严重), minor (一般)")] = Severity.MAJOR
    assignee: Annotated[Person | None, Field(description="who should take it (default: whoever acknowledges)")] = None
    reported: Annotated[
        AwareDatetime | None,
        AfterValidator(_in_range),
        Field(description="when the fault was reported (the call), ISO-8601 with offset; default now"),
    ] = None
    by: By = None


class StampIn(BodyModel):
    """An acknowledgement (响应/认领) or an arrival on site (到场)."""

    at: Stamp = None
    by: By = None


class RestoreIn(StampIn):
    resolution: Annotated[
        Resolution | None,
        Field(description="remote (无须现场) or on_site (须现场: needs the arrival first); default as classified, "
                          "else on_site after an arrival or a replacement, else remote"),
    ] = None


class ReplaceIn(StampIn):
    device: Annotated[DeviceId, Field(description="the device exchanged: one of the order's")]
    old_serial: Serial
    new_serial: Serial
    old_model: Annotated[ModelName | None, Field(description="default: the point list's model")] = None
    new_model: ModelName | None = None


class ConfirmIn(StampIn):
    device: Annotated[DeviceId | None, Field(description="whose proposal (default: the latest pending)")] = None
    new_model: ModelName | None = None


class ClassifyIn(BodyModel):
    cause: Annotated[
        Cause | None,
        Field(description="cause class; municipal, power, vandalism, force_majeure, carrier and buyer are excluded "
                          "from the assessment (need the manager role)"),
    ] = None
    resolution: Resolution | None = None
    no_spare: Annotated[bool | None, Field(description="no spare part (无备件): the no_spare deadline applies")] = None
    by: By = None


class NoteIn(BodyModel):
    text: Annotated[Line, StringConstraints(max_length=MAX_TEXT)]
    by: By = None


class AssignIn(BodyModel):
    assignee: Person
    by: By = None


class CloseIn(StampIn):
    cancelled: Annotated[
        bool, Field(description="误报/重复: closes without a restore and stops its clocks (needs the manager role)"),
    ] = False
    note: Annotated[Line, StringConstraints(max_length=MAX_TEXT)] | None = None


# --- response models -----------------------------------------------------------------------------


class ClockOut(OutModel):
    """One SLA clock of the order (monitor.assess.sla): started at the report, stopped by its stamp."""

    clock: Literal["response", "arrival", "restore", "replacement"]
    label: Annotated[str, Field(description="the contract's word for it (响应, 到场, 排除, 更换) in the configured language")]
    basis: Annotated[Literal["calendar", "business"], Field(description="business: only working hours count")]
    variant: Annotated[str, Field(description="which deadline applies: within, off_hours, on_site, no_spare")]
    deadline: datetime
    deadline_ns: int
    stopped: datetime | None
    stopped_ns: int | None
    allowed_s: Annotated[float, Field(description="seconds allowed (working seconds for business clocks)")]
    used_s: float
    percent_used: float
    remaining_s: Annotated[float, Field(description="wall-clock seconds from now (or the stop) to the deadline; "
                                                    "negative when past it")]
    state: Annotated[ClockState, Field(description="running: ok, warning, breached; stopped: met, missed")]


class OrderDeviceOut(OutModel):
    id: str
    name: Annotated[str | None, Field(description="null: no longer in the point list")]
    kind: Kind | None
    site: str | None
    region: str | None
    model: str | None
    serial: Annotated[str | None, Field(description="the point list's serial number")]


class ReplacementOut(OutModel):
    device: str
    old_serial: str
    new_serial: str
    old_model: str | None
    new_model: str | None
    at: datetime
    at_ns: int
    by: str


class ProposalOut(OutModel):
    """A replacement fleetmon suspects (the camera's ONVIF serial changed), until confirmed."""

    device: str
    old_serial: str
    new_serial: str
    new_model: str | None
    at: datetime
    at_ns: int
    confirmed: bool


class NoteOut(OutModel):
    at: datetime
    at_ns: int
    by: str
    text: str


class WorkOrderOut(OutModel):
    """A work order as its events make it (monitor.assess.orders.WorkOrder). Stamps are null
    until recorded; each has its time (UTC) and `*_ns`, and who."""

    ref: str
    devices: Annotated[list[OrderDeviceOut], Field(description="the device first, then the points it affects")]
    kind: Kind
    severity: Severity
    severity_label: Annotated[str, Field(description="紧急/严重/一般 in the configured language")]
    source: Source
    source_ref: Annotated[str | None, Field(description="fault id (source fault), device id (long_offline)")]
    title: str
    stage: Annotated[
        Literal["reported", "acknowledged", "arrived", "restored", "closed"], Field(description="the furthest stamp"),
    ]
    reported: datetime
    reported_ns: int
    reported_by: str
    fault_start: Annotated[datetime | None, Field(description="when the downtime began (fault orders)")]
    fault_start_ns: int | None
    assignee: str | None
    acknowledged: datetime | None
    acknowledged_ns: int | None
    acknowledged_by: str | None
    arrived: datetime | None
    arrived_ns: int | None
    arrived_by: str | None
    restored: datetime | None
    restored_ns: int | None
    restored_by: str | None
    resolution: Resolution | None
    auto_restored: Annotated[bool, Field(description="restored by fleetmon: the fault resolved on its own")]
    cause: Cause | None
    cause_label: str | None
    cause_excluded: Annotated[bool, Field(description="the cause takes the downtime out of the assessment")]
    no_spare: bool
    replacements: list[ReplacementOut]
    proposals: list[ProposalOut]
    notes: list[NoteOut]
    close_proposed: Annotated[datetime | None, Field(description="fleetmon proposes closing (the fault resolved)")]
    close_proposed_ns: int | None
    closed: datetime | None
    closed_ns: int | None
    closed_by: str | None
    cancelled: bool
    escalated: datetime | None
    escalated_ns: int | None
    clocks: Annotated[list[ClockOut], Field(description="SLA clocks now: response, arrival, restore, replacement")]
    event_count: int


class EventOut(OutModel):
    """One appended event: nothing is edited in place."""

    id: int
    action: Annotated[str, Field(description="opened, assigned, acknowledged, arrived, restored, replaced, "
                                             "replacement_proposed, classified, noted, close_proposed, closed, "
                                             "sla_notice, escalated")]
    at: Annotated[datetime, Field(description="when it happened (the stamp)")]
    at_ns: int
    recorded: Annotated[datetime, Field(description="when it was written")]
    recorded_ns: int
    by: Annotated[str, Field(description='who: a person, or "fleetmon"')]
    payload: dict[str, Any]


class WorkOrderDetailOut(WorkOrderOut):
    events: Annotated[list[EventOut], Field(description="every event, oldest first")]


class WorkOrderListOut(OutModel):
    now: Annotated[datetime, Field(description="the server's time the clocks were evaluated at")]
    now_ns: int
    total: Annotated[int, Field(description="orders matching, before the limit")]
    orders: list[WorkOrderOut]


# --- conversions ---------------------------------------------------------------------------------


def _clock_out(s: ClockStatus, language: str) -> ClockOut:
    return ClockOut(
        clock=s.clock.value, label=s.label if language == "zh" else LABELS["en"][s.clock],  # type: ignore[arg-type]
        basis=s.basis, variant=s.variant, deadline=utc(s.deadline_ns),  # type: ignore[arg-type]
        deadline_ns=s.deadline_ns, stopped=opt_utc(s.stopped_ns), stopped_ns=s.stopped_ns, allowed_s=s.allowed_s,
        used_s=round(s.used_s, 3), percent_used=round(s.percent_used, 2), remaining_s=round(s.remaining_s, 3),
        state=s.state,
    )


def _order_fields(o: WorkOrder, clocks: list[ClockStatus], inventory: Inventory, language: str) -> dict[str, Any]:
    def device(device_id: str) -> OrderDeviceOut:
        d = inventory.devices.get(device_id)
        if d is None:
            return OrderDeviceOut(id=device_id, name=None, kind=None, site=None, region=None, model=None, serial=None)
        return OrderDeviceOut(id=d.id, name=d.name, kind=d.kind, site=d.site, region=d.region, model=d.model,
                              serial=d.serial)

    return dict(
        ref=o.ref, devices=[device(d) for d in o.devices], kind=o.kind, severity=o.severity,
        severity_label=o.severity.zh if language == "zh" else o.severity.value, source=o.source,
        source_ref=o.source_ref, title=o.title, stage=o.stage,
        reported=utc(o.reported_ns), reported_ns=o.reported_ns, reported_by=o.reported_by,
        fault_start=opt_utc(o.fault_start_ns), fault_start_ns=o.fault_start_ns, assignee=o.assignee,
        acknowledged=opt_utc(o.acknowledged_ns), acknowledged_ns=o.acknowledged_ns, acknowledged_by=o.acknowledged_by,
        arrived=opt_utc(o.arrived_ns), arrived_ns=o.arrived_ns, arrived_by=o.arrived_by,
        restored=opt_utc(o.restored_ns), restored_ns=o.restored_ns, restored_by=o.restored_by,
        resolution=o.resolution, auto_restored=o.auto_restored, cause=o.cause,
        cause_label=o.cause.label(language) if o.cause else None, cause_excluded=bool(o.cause and o.cause.excluded),
        no_spare=o.no_spare,
        replacements=[
            ReplacementOut(device=r.device_id, old_serial=r.old_serial, new_serial=r.new_serial,
                           old_model=r.old_model, new_model=r.new_model, at=utc(r.ts_ns), at_ns=r.ts_ns, by=r.by)
            for r in o.replacements
        ],
        proposals=[
            ProposalOut(device=p.device_id, old_serial=p.old_serial, new_serial=p.new_serial, new_model=p.new_model,
                        at=utc(p.ts_ns), at_ns=p.ts_ns, confirmed=p.confirmed)
            for p in o.proposals
        ],
        notes=[NoteOut(at=utc(n.ts_ns), at_ns=n.ts_ns, by=n.by, text=n.text) for n in o.notes],
        close_proposed=opt_utc(o.close_proposed_ns), close_proposed_ns=o.close_proposed_ns,
        closed=opt_utc(o.closed_ns), closed_ns=o.closed_ns, closed_by=o.closed_by, cancelled=o.cancelled,
        escalated=opt_utc(o.escalated_ns), escalated_ns=o.escalated_ns,
        clocks=[_clock_out(s, language) for s in clocks], event_count=o.events,
    )


def _event_out(e: OrderEvent) -> EventOut:
    return EventOut(id=e.id, action=e.action.value, at=utc(e.ts_ns), at_ns=e.ts_ns, recorded=utc(e.recorded_ns),
                    recorded_ns=e.recorded_ns, by=e.by, payload=dict(e.payload))


def _opt_ns(dt: datetime | None) -> int | None:
    return None if dt is None else to_ns(dt)


# --- handlers ------------------------------------------------------------------------------------


class WorkOrderRoutes:
    """The handlers of the work-order routes over `book` (None: not enabled, 503)."""

    def __init__(self, book: WorkOrderBook | None, inventory: Inventory, language: str) -> None:
        self._book = book
        self._inventory = inventory
        self._language = language

    @property
    def book(self) -> WorkOrderBook:
        if self._book is None:
            raise ApiError(503, NOT_ENABLED)
        return self._book

    def _out(self, order: WorkOrder) -> WorkOrderOut:
        clocks = self.book.countdown(order)  # now: running clocks on the monotonic clock
        return WorkOrderOut(**_order_fields(order, clocks, self._inventory, self._language))

    async def _detail(self, order: WorkOrder) -> WorkOrderDetailOut:
        events = await self.book.events(order.ref)
        clocks = self.book.countdown(order)
        return WorkOrderDetailOut(**_order_fields(order, clocks, self._inventory, self._language),
                                  events=[_event_out(e) for e in events])

    async def _write(self, call: Call, what: str, action: Awaitable[WorkOrder], status: int = 200) -> Reply:
        """Await the book's `action`; its errors as 400/404/409, the order with its events as
        the answer, `what` as the audit line."""
        try:
            order = await action
        except UnknownOrderError as exc:
            raise ApiError(404, str(exc)) from None
        except OrderStateError as exc:
            raise ApiError(409, str(exc)) from None
        except WorkOrderError as exc:
            raise ApiError(400, str(exc)) from None
        return Reply(status, await self._detail(order), f"work order {order.ref} {what}")

    # -- reads --

    async def workorders(self, call: Call) -> Reply:
        q: OrderQuery = call.query
        book = self.book
        if q.device is not None and q.device not in self._inventory.devices:
            raise ApiError(400, f"query.device: unknown device {q.device!r} (not in the point list)")
        now = time.time_ns()
        if q.state == "open":
            found = [o for o in book.open_orders() if q.device is None or q.device in o.devices]
        else:
            found = await book.orders(now - q.days * _DAY_NS, None, device_id=q.device)
            found = [o for o in found if q.state == "all" or not o.is_open]
            found.reverse()  # newest report first
        body = WorkOrderListOut(now=utc(now), now_ns=now, total=len(found),
                                orders=[self._out(o) for o in found[: q.limit]])
        return Reply(200, body)

    async def workorder(self, call: Call) -> Reply:
        ref = call.path.ref
        try:
            order = await self.book.get(ref)
        except UnknownOrderError as exc:
            raise ApiError(404, str(exc)) from None
        return Reply(200, await self._detail(order))

    # -- writes --

    async def workorder_report(self, call: Call) -> Reply:
        b: ReportIn = call.body
        book, by = self.book, call.who(b.by)
        action = book.report(b.devices, by=by, title=b.title, severity=b.severity, ts_ns=_opt_ns(b.reported),
                             assignee=b.assignee)
        return await self._write(call, f"reported by {by}: {b.title}", action, 201)

    async def workorder_acknowledge(self, call: Call) -> Reply:
        b: StampIn = call.body
        book, by = self.book, call.who(b.by)
        return await self._write(call, f"acknowledged by {by}", book.acknowledge(call.path.ref, by=by,
                                                                                ts_ns=_opt_ns(b.at)))

    async def workorder_arrive(self, call: Call) -> Reply:
        b: StampIn = call.body
        book, by = self.book, call.who(b.by)
        return await self._write(call, f"arrival recorded by {by}", book.arrive(call.path.ref, by=by,
                                                                               ts_ns=_opt_ns(b.at)))

    async def workorder_restore(self, call: Call) -> Reply:
        b: RestoreIn = call.body
        book, by = self.book, call.who(b.by)
        action = book.restore(call.path.ref, by=by, ts_ns=_opt_ns(b.at), resolution=b.resolution)
        return await self._write(call, f"restored by {by}", action)

    async def workorder_replace(self, call: Call) -> Reply:
        b: ReplaceIn = call.body
        book, by = self.book, call.who(b.by)
        action = book.replace(call.path.ref, by=by, device_id=b.device, old_serial=b.old_serial,
                              new_serial=b.new_serial, old_model=b.old_model, new_model=b.new_model,
                              ts_ns=_opt_ns(b.at))
        return await self._write(call, f"{b.device} replaced by {by}: {b.old_serial} → {b.new_serial}", action)

    async def workorder_confirm_replacement(self, call: Call) -> Reply:
        b: ConfirmIn = call.body
        book, by = self.book, call.who(b.by)
        action = book.confirm_replacement(call.path.ref, by=by, device_id=b.device, ts_ns=_opt_ns(b.at),
                                          new_model=b.new_model)
        return await self._write(call, f"replacement confirmed by {by}", action)

    async def workorder_classify(self, call: Call) -> Reply:
        b: ClassifyIn = call.body
        if b.cause is not None and b.cause.excluded and not call.caller.may(Permission.EXCLUDE):
            raise ApiError(403, f"cause {b.cause.value} ({b.cause.label()}) is excluded from the assessment: "
                                + call.caller.refusal(Permission.EXCLUDE))
        book, by = self.book, call.who(b.by)
        action = book.classify(call.path.ref, by=by, cause=b.cause, resolution=b.resolution, no_spare=b.no_spare)
        parts = [f"{k} {v.value if hasattr(v, 'value') else v}"
                 for k, v in (("cause", b.cause), ("resolution", b.resolution), ("no_spare", b.no_spare))
                 if v is not None]
        return await self._write(call, f"classified by {by}: {', '.join(parts) or 'nothing'}", action)

    async def workorder_note(self, call: Call) -> Reply:
        b: NoteIn = call.body
        book, by = self.book, call.who(b.by)
        return await self._write(call, f"note added by {by}", book.note(call.path.ref, b.text, by=by))

    async def workorder_assign(self, call: Call) -> Reply:
        b: AssignIn = call.body
        book, by = self.book, call.who(b.by)
        return await self._write(call, f"assigned to {b.assignee} by {by}",
                                 book.assign(call.path.ref, b.assignee, by=by))

    async def workorder_close(self, call: Call) -> Reply:
        b: CloseIn = call.body
        if b.cancelled and not call.caller.may(Permission.EXCLUDE):
            raise ApiError(403, "cancelling an order stops its clocks from counting: "
                                + call.caller.refusal(Permission.EXCLUDE))
        book, by = self.book, call.who(b.by)
        action = book.close(call.path.ref, by=by, ts_ns=_opt_ns(b.at), cancelled=b.cancelled, note=b.note)
        return await self._write(call, f"{'cancelled' if b.cancelled else 'closed'} by {by}", action)
