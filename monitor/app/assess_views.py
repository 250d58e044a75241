"""The assessment as people and programs read it: the request models, the answers and how they
are made, for the HTTP API (GET /api/v1/availability, /score, /spot-check/{id}, /long-offline;
monitor.app.api declares the routes) and the CLI (`fleetmon availability`, `score`,
`spot-check`, `long-offline`; `--json` prints the very same documents, the tables are made
from them). Independent of aiohttp: a request that cannot be answered raises RequestError with
the HTTP status it means and the reason.

Times as in the rest of the API: UTC ISO-8601 plus `*_ns` integers; durations of the
availability figures in seconds (`*_s`), of the score's evidence in minutes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.assess.assessment import Assessment, NoScheme
from monitor.assess.availability import ALL, AvailabilityError, AvailabilityReport, Figures, PointAvailability
from monitor.assess.offline import LongOffline
from monitor.assess.periods import Period, PeriodError, format_local
from monitor.assess.score import ScoreError
from monitor.assess.spotcheck import SpotCheck
from monitor.core.model import Basis, Kind, Selector, Status

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RequestError(Exception):
    """The request cannot be answered: `status` (400 bad input, 404 unknown device or group,
    409 not configured, 422 a metric without value) and the reason for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _utc(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ------------------------------------------------------------------------------------

PeriodText = Annotated[
    str,
    Field(min_length=1, max_length=64, description="2026-12-01, 2026-W49, 2026-12, 2026Q4, 2026H2, 2026, or a custom "
                                                   "range 2026-10-01..2026-12-31 (dates, or local times "
                                                   "'2026-12-01 08:00'); boundaries in the configured zone"),
]


class AvailabilityQuery(_In):
    period: PeriodText
    scope: Annotated[Literal["fleet", "region", "site"], Field(description="which groups: the fleet, its regions or "
                                                                          "its sites")] = "fleet"
    group: Annotated[str | None, Field(max_length=200, description="one region or site (with scope region or site)")] = None
    kind: Annotated[Kind | None, Field(description="only points of this kind (default: all kinds)")] = None
    basis: Annotated[Basis, Field(description="the basis shown: online (the contract's) or network, service, video, picture (画面正常)")] = (
        Basis.ONLINE)
    points: Annotated[bool, Field(description="also every selected point with its figures, outages and exclusions")] = (
        False)


class ScoreQuery(_In):
    period: PeriodText
    evidence: Annotated[bool, Field(description="every evidence line (points, orders, systems); false: their count")] = (
        False)
    manual: Annotated[
        str | None,
        Field(max_length=500, description="values entered by hand for metrics fleetmon does not measure, "
                                          "NAME=VALUE[,NAME=VALUE]: report_nonconformities, serious_incidents, data_leaks"),
    ] = None


class SpotCheckPath(_In):
    device_id: Annotated[str, Field(min_length=1, max_length=200, description="the point's id (点位编号)")]


class SpotCheckQuery(_In):
    at: Annotated[str, Field(min_length=1, max_length=40, description="the moment: local time '2026-12-01 10:00[:ss]' "
                                                                       "or ISO-8601 with an offset")]


# --- answers: availability -------------------------------------------------------------------------


class PeriodOut(_Out):
    label: Annotated[str, Field(description="2026Q4, 2026-12, a custom range …")]
    kind: Annotated[str, Field(description="day, week, month, quarter, half, year or custom")]
    timezone: str
    start: datetime
    start_ns: int
    end: datetime
    end_ns: int
    clipped: Annotated[bool, Field(description="the period has not ended: counted up to the moment of the request")]
    note: str | None


class FiguresOut(_Out):
    """One basis over the period, of a point or summed over a group's points (seconds; disjoint:
    counted = up + down + unreachable; unknown = undecided + blind + agent_silent; excluded = status +
    maintenance + cause; span = all three)."""

    up_s: float
    down_s: float
    unreachable_s: Annotated[float, Field(description="behind a dead parent: offline too")]
    offline_s: float
    counted_s: float
    undecided_s: Annotated[float, Field(description="state unknown")]
    blind_s: Annotated[float, Field(description="not watched: fleetmon not running, or the probe stalled")]
    agent_silent_s: Annotated[float, Field(description="monitor blind (监测盲区): the probe agent watching the point "
                                                       "was silent (探测代理失联)")]
    unknown_s: float
    excluded_status_s: Annotated[float, Field(description="延建/拆除")]
    excluded_maintenance_s: float
    excluded_cause_s: Annotated[float, Field(description="work orders with an excluded cause (市政, 电力 …)")]
    excluded_s: float
    span_s: float
    checks_up: Annotated[int, Field(description="daily checks (daily_snapshot): point × instant, online")]
    checks_offline: int
    checks_unknown: int
    checks_excluded: int
    rate_pct: Annotated[float | None, Field(description="online rate by the configured definition and unknown "
                                                        "policy; null when nothing was counted")]
    rate_parts: Annotated[list[int] | None, Field(description="[online, counted] it was divided from: ns (point_time) "
                                                              "or checks (daily_snapshot of a point)")]


class GroupOut(_Out):
    scope: Literal["fleet", "region", "site"]
    group: Annotated[str, Field(description='region or site name; "all" for the fleet')]
    kind: Annotated[str, Field(description='a device kind, or "all"')]
    points: int
    figures: Annotated[FiguresOut | None, Field(description="of the basis asked; null when it applied to none of them")]


class OutageOut(_Out):
    start: datetime
    start_ns: int
    end: datetime
    end_ns: int
    minutes: float
    state: Literal["down", "unreachable"]


class ExclusionOut(_Out):
    kind: Annotated[Literal["status", "maintenance", "cause"], Field(description="延建/拆除, a maintenance window, "
                                                                                 "a work order's excluded cause")]
    reason: str
    start: datetime
    start_ns: int
    end: datetime
    end_ns: int


class PointOut(_Out):
    id: str
    name: str
    kind: Kind
    site: str
    region: str
    status: Status
    figures: FiguresOut | None
    outages: Annotated[list[OutageOut], Field(description="the counted offline time on the basis, in time order")]
    exclusions: list[ExclusionOut]


class GapOut(_Out):
    probe: Annotated[str | None, Field(description="null: no monitoring session at all, or an agent's silence; else "
                                                   "that probe stalled")]
    start: datetime
    start_ns: int
    end: datetime
    end_ns: int
    reason: Annotated[str, Field(description="not running, since the last heartbeat, stalled, agent silent")]
    agent: Annotated[str | None, Field(description="the probe agent that was silent (reason agent silent)")] = None


class AvailabilityOut(_Out):
    period: PeriodOut
    definition: Literal["point_time", "daily_snapshot"]
    unknown_policy: Literal["exclude", "count_as_up", "count_as_down"]
    online_requires: list[Basis]
    basis: Basis
    groups: Annotated[list[GroupOut], Field(description="fleet, then regions, then sites by name")]
    points: Annotated[list[PointOut] | None, Field(description="with points=true: the selected points, point-list order")]
    gaps: Annotated[list[GapOut], Field(description="when fleetmon was not watching")]
    notes: list[str]


def period_out(period: Period) -> PeriodOut:
    return PeriodOut(
        label=period.label, kind=period.kind, timezone=period.timezone, start=_utc(period.start_ns),
        start_ns=period.start_ns, end=_utc(period.end_ns), end_ns=period.end_ns, clipped=period.clipped,
        note=period.note,
    )


def figures_out(figures: Figures | None) -> FiguresOut | None:
    return None if figures is None else FiguresOut.model_validate(figures.as_dict())


def point_out(point: PointAvailability, basis: Basis) -> PointOut:
    d = point.device
    return PointOut(
        id=d.id, name=d.name, kind=d.kind, site=d.site, region=d.region, status=d.status,
        figures=figures_out(point.figures.get(basis)),
        outages=[
            OutageOut(start=_utc(o.start_ns), start_ns=o.start_ns, end=_utc(o.end_ns), end_ns=o.end_ns,
                      minutes=round((o.end_ns - o.start_ns) / 60e9, 3), state=o.state.value)  # type: ignore[arg-type]
            for o in point.outages(basis)
        ],
        exclusions=[
            ExclusionOut(kind=e.kind, reason=e.reason, start=_utc(e.start_ns), start_ns=e.start_ns,  # type: ignore[arg-type]
                         end=_utc(e.end_ns), end_ns=e.end_ns)
            for e in point.exclusions
        ],
    )


def _selector(assessment: Assessment, q: AvailabilityQuery) -> Selector | None:
    """The points the query selects; RequestError for a group that does not exist."""
    devices = assessment.inventory.devices.values()
    if q.group is not None:
        if q.scope == "fleet":
            raise RequestError(400, "group names a region or a site: give scope region or site with it")
        names = sorted({d.region if q.scope == "region" else d.site for d in devices})
        if q.group not in names:
            raise RequestError(404, f"no {q.scope} {q.group!r} in the point list ({q.scope}s: {', '.join(names)})")
    if q.kind is not None and not any(d.kind is q.kind for d in devices):
        raise RequestError(404, f"no point of kind {q.kind.value} in the point list")
    if q.group is None and q.kind is None:
        return None
    where = {q.scope: [q.group]} if q.group is not None else {}
    selector = Selector.of(**where, kind=[q.kind] if q.kind is not None else [])
    if not any(selector.matches(d) for d in devices):
        raise RequestError(404, f"no point of kind {q.kind.value if q.kind else '-'} in {q.scope} {q.group}")
    return selector


async def availability(assessment: Assessment, q: AvailabilityQuery) -> AvailabilityOut:
    """GET /api/v1/availability and `fleetmon availability`. Raises RequestError."""
    period = _period(assessment, q.period)
    selector = _selector(assessment, q)
    try:
        report = await assessment.availability(period, selector=selector)
    except AvailabilityError as exc:  # the selection was checked: what is left is a bug's, or the data's
        raise RequestError(400, str(exc)) from None
    return availability_out(report, q)


def availability_out(report: AvailabilityReport, q: AvailabilityQuery) -> AvailabilityOut:
    kind = q.kind.value if q.kind is not None else ALL
    groups = [
        GroupOut(scope=g.scope, group=g.group, kind=g.kind, points=g.points, figures=figures_out(g.figures.get(q.basis)))
        for g in report.groups
        if g.scope == q.scope and g.kind == kind and (q.group is None or g.group == q.group)
    ]
    points = [point_out(p, q.basis) for p in report.points.values()] if q.points else None
    return AvailabilityOut(
        period=period_out(report.period), definition=report.definition.value,  # type: ignore[arg-type]
        unknown_policy=report.unknown_policy.value, online_requires=list(report.online_requires),  # type: ignore[arg-type]
        basis=q.basis, groups=groups, points=points,
        gaps=[GapOut(probe=g.probe, start=_utc(g.start_ns), start_ns=g.start_ns, end=_utc(g.end_ns), end_ns=g.end_ns,
                     reason=g.reason, agent=g.agent) for g in report.gaps],
        notes=list(report.notes),
    )


def _period(assessment: Assessment, text: str) -> Period:
    try:
        return assessment.period(text)
    except PeriodError as exc:
        raise RequestError(400, str(exc)) from None


# --- answers: score ------------------------------------------------------------------------------


class LabelOut(_Out):
    zh: str
    en: str


class EvidenceOut(_Out):
    kind: Annotated[str, Field(description='"point" (a point id), "order" (a work order), "system"')]
    ref: str
    outcome: Annotated[str, Field(description="what it did to the figure: down, unknown, excluded, timely, late, "
                                              "pending, not_needed, counted")]
    minutes: Annotated[float | None, Field(description="the time that counted: down minutes, minutes to arrival …")]
    detail: str


class MetricOut(_Out):
    name: str
    value: float
    unit: Literal["pct", "count", "minutes"]
    numerator: float | None
    denominator: float | None
    note: Annotated[str, Field(description="how the figure was read from the evidence")]
    evidence: Annotated[list[EvidenceOut] | int, Field(description="the evidence, or (evidence=false) its count")]


class ItemOut(_Out):
    key: str
    name: LabelOut
    metric: MetricOut
    value: Annotated[float, Field(description="what the tiers were applied to")]
    rule: Annotated[str, Field(description="the tier that applied, as written (90 <= r < 95)")]
    points: float
    deduction: float
    score: float


class VetoOut(_Out):
    key: str
    name: LabelOut
    metric: MetricOut
    rule: str
    hit: bool


class PaymentOut(_Out):
    fee_yuan: float
    deduction_yuan: float
    payable_yuan: float
    basis: Annotated[str, Field(description="full, per_point, below_floor, grade or veto")]
    points_short: float | None
    cut_pct: float | None
    grade: str | None
    grade_name: LabelOut | None


class ScoreOut(_Out):
    period: PeriodOut
    scheme: str
    title: LabelOut
    items: list[ItemOut]
    vetoes: list[VetoOut]
    vetoed: bool
    total: Annotated[float, Field(description="out of 100 分")]
    payment: PaymentOut
    notes: list[str]


def parse_manual(text: str | None) -> dict[str, float]:
    """"report_nonconformities=1,data_leaks=0" → {name: value}. Raises RequestError (400)."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None or not name:
            raise RequestError(400, f"manual: {part.strip()!r} is not NAME=VALUE (e.g. report_nonconformities=1)")
        if name in out:
            raise RequestError(400, f"manual: {name} given twice")
        out[name] = number
    return out


async def score(assessment: Assessment, q: ScoreQuery) -> ScoreOut:
    """GET /api/v1/score and `fleetmon score`. Raises RequestError."""
    period = _period(assessment, q.period)
    manual = parse_manual(q.manual)
    try:
        report = await assessment.score(period, manual)
    except NoScheme as exc:
        raise RequestError(409, str(exc)) from None
    except (ValueError, ScoreError) as exc:  # a bad manual value; a source answering wrongly (a bug)
        raise RequestError(400, str(exc)) from None
    except LookupError as exc:  # a metric without value: a manual one not given, nothing counted
        raise RequestError(422, str(exc)) from None
    d: dict[str, Any] = report.score.to_dict(q.evidence)
    for key in ("period", "start_ns", "end_ns"):
        del d[key]
    return ScoreOut.model_validate({**d, "period": period_out(period), "notes": list(report.notes)})


# --- answers: spot check -------------------------------------------------------------------------


class DeviceRefOut(_Out):
    id: str
    name: str
    kind: Kind
    site: str
    region: str


class TransitionOut(_Out):
    ts: datetime
    ts_ns: int
    local: Annotated[str, Field(description="the time in the configured zone")]
    old: str
    new: str
    reason: str | None


class ProbeAtOut(_Out):
    probe: str
    state: Annotated[str | None, Field(description="the probe's published state then; null before its first verdict")]
    since: datetime | None
    since_ns: int | None
    coverage: Annotated[str, Field(description="watched, not watched, not running, or - (a probe of no basis)")]
    before: Annotated[list[TransitionOut], Field(description="transitions at or before the moment, oldest first")]
    after: Annotated[list[TransitionOut], Field(description="transitions after it")]


class SessionOut(_Out):
    id: int
    started: datetime
    started_ns: int
    last_seen: datetime
    last_seen_ns: int


class NotRunningOut(_Out):
    last_heartbeat_ns: Annotated[int | None, Field(description="fleetmon's last heartbeat before the moment")]
    next_start_ns: Annotated[int | None, Field(description="its next start after it")]


class RawResultOut(_Out):
    measurement: str
    ts: datetime
    ts_ns: int
    values: dict[str, Any]


class SpotCheckOut(_Out):
    device: DeviceRefOut
    at: datetime
    at_ns: int
    local: Annotated[str, Field(description="the moment in the configured zone")]
    seen: Annotated[dict[str, str], Field(description="per basis as fleetmon saw it: up, down, unreachable, unknown, "
                                                      "not watched")]
    counted: Annotated[dict[str, str], Field(description="per basis as the assessment counts it: the same, or "
                                                         "excluded: status / maintenance / cause, or not a point yet")]
    probes: list[ProbeAtOut]
    status: Status
    status_since_ns: int | None
    exclusions: list[ExclusionOut]
    session: SessionOut | None
    not_running: NotRunningOut | None
    results: Annotated[list[RawResultOut], Field(description="raw probe results around the moment (InfluxDB)")]
    results_note: str | None


def _transition_out(t: Any, tz: str) -> TransitionOut:
    return TransitionOut(ts=_utc(t.ts_ns), ts_ns=t.ts_ns, local=format_local(t.ts_ns, tz), old=t.old.value,
                         new=t.new.value, reason=t.reason)


def spot_check_out(c: SpotCheck) -> SpotCheckOut:
    tz, d = c.timezone, c.device
    return SpotCheckOut(
        device=DeviceRefOut(id=d.id, name=d.name, kind=d.kind, site=d.site, region=d.region),
        at=_utc(c.at_ns), at_ns=c.at_ns, local=c.when,
        seen={b.value: v for b, v in c.seen.items()}, counted={b.value: v for b, v in c.counted.items()},
        probes=[
            ProbeAtOut(probe=p.probe, state=p.state.value if p.state is not None else None,
                       since=_utc(p.since_ns) if p.since_ns is not None else None, since_ns=p.since_ns,
                       coverage=p.coverage, before=[_transition_out(t, tz) for t in p.before],
                       after=[_transition_out(t, tz) for t in p.after])
            for p in c.probes.values()
        ],
        status=c.status, status_since_ns=c.status_since_ns,
        exclusions=[
            ExclusionOut(kind=e.kind, reason=e.reason, start=_utc(e.start_ns), start_ns=e.start_ns,  # type: ignore[arg-type]
                         end=_utc(e.end_ns), end_ns=e.end_ns)
            for e in c.exclusions
        ],
        session=None if c.session is None else SessionOut(
            id=c.session[0], started=_utc(c.session[1]), started_ns=c.session[1], last_seen=_utc(c.session[2]),
            last_seen_ns=c.session[2]),
        not_running=None if c.not_running is None else NotRunningOut(
            last_heartbeat_ns=c.not_running[0], next_start_ns=c.not_running[1]),
        results=[RawResultOut(measurement=r.measurement, ts=_utc(r.ts_ns), ts_ns=r.ts_ns, values=dict(r.values))
                 for r in c.results],
        results_note=c.results_note,
    )


async def spot_check(assessment: Assessment, device_id: str, at: str) -> SpotCheckOut:
    """GET /api/v1/spot-check/{device_id}?at= and `fleetmon spot-check`. Raises RequestError."""
    if device_id not in assessment.inventory.devices:
        raise RequestError(404, f"unknown device: {device_id} (not in the point list)")
    try:
        at_ns = assessment.instant(at)
    except PeriodError as exc:
        raise RequestError(400, str(exc)) from None
    try:
        return spot_check_out(await assessment.spot_check(device_id, at_ns))
    except AvailabilityError as exc:  # a moment in the future
        raise RequestError(400, str(exc)) from None


# --- answers: long-offline points ----------------------------------------------------------------


class LongOfflinePointOut(_Out):
    device_id: str
    name: str
    kind: Kind
    site: str
    region: str
    since: datetime
    since_ns: int
    days: float
    order_ref: Annotated[str | None, Field(description="its open work order, if any")]
    cause: Annotated[str | None, Field(description="that order's cause class")]
    excluded: Annotated[bool, Field(description="the cause is excluded: listed, never escalated")]
    escalated: bool


class LongOfflineOut(_Out):
    days: Annotated[float, Field(description="the threshold: offline at least this many days")]
    points: Annotated[list[LongOfflinePointOut], Field(description="longest offline first")]


def long_offline_out(days: float, points: list[LongOffline]) -> LongOfflineOut:
    return LongOfflineOut(days=days, points=[
        LongOfflinePointOut.model_validate({**p.to_dict(), "since": _utc(p.since_ns)}) for p in points
    ])


async def long_offline(assessment: Assessment) -> LongOfflineOut:
    """GET /api/v1/long-offline and `fleetmon long-offline`."""
    return long_offline_out(assessment.book.long_offline_days, await assessment.long_offline())
