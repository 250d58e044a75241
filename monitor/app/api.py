"""The HTTP API (aiohttp): health, fleet status, devices, faults, maintenance windows, the phone
status page, and an OpenAPI 3.1 document describing exactly these routes.

Routes (JSON in and out; times as UTC ISO-8601 strings plus `*_ns` integers):

    GET    /healthz                          liveness: 200, or 503 once cycles stopped finishing or state writes fail
    GET    /metrics                          fleetmon's own health for Prometheus (text format 0.0.4;
                                             monitor/app/selfmetrics.py)
    GET    /api/v1/status                    online rates (fleet, regions, sites, kinds), states, open faults
    GET    /api/v1/devices                   ?region=&site=&kind=&state=&limit=&offset=
    GET    /api/v1/faults                    ?state=open|pending|firing|resolved|all&limit=
    GET    /api/v1/faults/{id}
    POST   /api/v1/faults/{id}/ack           {"by": "张工"}                           (write)
    GET    /api/v1/maintenance               ?active=true   (with each window's next occurrences)
    POST   /api/v1/maintenance               {"match", "start", "end" | "every", "duration", "from", "until",
                                              "reason", "by"}  one-off or recurring (monitor/app/api_maintenance.py)
                                                                                       (write)
    DELETE /api/v1/maintenance/{id}          ?by=张工   ends it (a recurring one: its schedule)   (write)
    GET    /api/v1/whoami                    who the request's token makes: person, roles, permissions
    GET    /api/v1/workorders …              work orders (工单): list, one, report, actions  (writes)
                                             (monitor/app/api_workorders.py)
    GET    /api/v1/availability              ?period=2026Q4&scope=&group=&kind=&basis=&points=  (考核在线率)
    GET    /api/v1/score                     ?period=2026Q4&evidence=&manual=                   (考核得分)
    GET    /api/v1/spot-check/{device_id}    ?at=2026-12-01 10:00                               (抽查)
    GET    /api/v1/long-offline              points offline for the configured days (a week)
    GET    /api/v1/reports/{kind}            ?period=&format=pdf|xlsx&lang=  the report file (daily … annual)
                                             (monitor/app/api_reports.py)
    GET    /api/v1/thumbnails/{device_id}    a camera's latest frame-check picture (JPEG, Last-Modified:
                                             when taken; monitor/app/api_thumbs.py)
    GET    /api/v1/openapi.json
    GET    /status                           the phone status page (HTML), ?lang=&refresh=, #token=
    GET    /status/status.css, /status/status.js   its files (monitor/app/status_page.py)

Every route is declared once, in `_endpoints()`, together with the pydantic models of its path
parameters, query, body and responses. The app's routes, the request validation and the
OpenAPI document are all built from that one table, so the document cannot drift from what
the server does.

Security decisions:
- Reads are open by default; they show nothing the command hall's video wall does not. With a
  status token configured (api.status_token_env/_file: read-only, different from the write
  token) every data read needs it or the write token, as a bearer header. The status page,
  which a phone opens as a link, is static and open; its link carries the token after the #
  (/status#token=…), which browsers never send, and its script sends it as a bearer header.
  /healthz, the OpenAPI document and the page's files stay open: they show no fleet data.
  /metrics is a read like the others (open faults by severity are fleet data): with a status
  token, Prometheus sends it (`authorization: {credentials_file: …}` in its scrape config).
- No token is taken from a URL: a query with `token` (or `access_token`) is answered 400
  pointing to the Authorization header. Query strings end up in proxy logs and browser
  histories; fleetmon's own log lines name the path without the query.
- Every write (POST, DELETE) needs `Authorization: Bearer <token>`: a person's token
  (api.people: the write records that person as `by`, as far as their roles allow; a `by` in
  the request must be absent or the same, else 403) or the shared write token (admin and
  integrations: `by` from the request). A token without the role a write needs is answered 403
  saying which role (monitor.app.access); tokens are compared in constant time, all of them
  every time. Without any write token configured writes are refused (403, saying how to
  configure one): even on loopback, since any local account on the ops server could otherwise
  acknowledge faults. Binding anything but a loopback address without a token is refused
  outright (ApiConfig's validator, and again by ApiServer).
- A person's token also reads (as the status token does).
- Malformed requests (bad JSON, wrong types, unknown fields or query parameters, bad values,
  unknown ids) are answered 4xx with {"error": reason}; anything unexpected is logged with
  its traceback and answered 500 {"error": "internal error"} without details.

Logging (logger "fleetmon.api"): one line per write — who acknowledged, created, deleted or
recorded what; refused writes are counted: the first of a minute is logged with its reason,
then one line "N refused requests from M addresses in the last 60 s" (a flood of bad tokens
cannot flood the log); nothing per read; aiohttp's access log is off.

Connections (monitor.app.api_guard): at most api.max_connections open at once (by default a
quarter of RLIMIT_NOFILE, the rest stays for the probes), headers within api.header_timeout_s,
keep-alive connections closed after api.idle_timeout_s idle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Awaitable, Callable, Iterable, Literal, Mapping, Self, Sequence

from aiohttp import web
from pydantic import (
    BaseModel,
    Field,
    RootModel,
    SecretStr,
    ValidationError,
)
from pydantic.json_schema import models_json_schema

from monitor.app.access import Caller, Permission, Role, identify, roles_granting
from monitor.app.api_guard import AcceptErrors, BadRequests, Guard, Summaries, Tally, connection_cap, tally_line
from monitor.app.api_base import (
    ApiError,
    BodyModel as _Body,
    Call,
    ErrorOut,
    Handler,
    InModel as _In,
    OutModel as _Out,
    Person,
    Reply,
    opt_utc as _opt_utc,
    to_ns as _ns,
    utc as _utc,
)
from monitor.app.api_maintenance import (
    InMaintenanceOut, MaintenanceIn, WindowListOut, WindowOut, in_maintenance, window_out,
)
from monitor.app import api_workorders as wo
from monitor.app.api_workorders import (
    AssignIn,
    ClassifyIn,
    CloseIn,
    ConfirmIn,
    NoteIn,
    OrderPath,
    OrderQuery,
    ReplaceIn,
    ReportIn,
    RestoreIn,
    StampIn,
    WorkOrderDetailOut,
    WorkOrderListOut,
    WorkOrderRoutes,
)
from monitor.app.api_reports import MEDIA_TYPES, NOT_AVAILABLE, ReportFile, ReportPath, ReportQuery, ReportRoutes
from monitor.app.api_thumbs import MEDIA_TYPE as THUMBNAIL_MEDIA_TYPE, Thumbnail, ThumbnailPath, ThumbnailRoutes
from monitor.app.config import ApiConfig, PersonConfig
from monitor.app.reports import ReportMaker
from monitor.app import assess_views as views
from monitor.app.assess_views import (
    AvailabilityOut,
    AvailabilityQuery,
    LongOfflineOut,
    ScoreOut,
    ScoreQuery,
    SpotCheckOut,
    SpotCheckPath,
    SpotCheckQuery,
)
from monitor.assess.assessment import Assessment
from monitor.assess.workorders import WorkOrderBook
from monitor.app.reloads import ReloadOutcome
from monitor.app.snapshot import STALE_CYCLES, Snapshot, probe_ages
from monitor.fleet.inventory import Inventory
from monitor.core.model import Basis, Device, Kind, Status
from monitor.state.online_rate import ALL, GroupRate, online_rates
from monitor.state.tracker import State
from monitor.state.writes import WriteHealth
from monitor.app.agent_hub import AgentView
from monitor.app.selfmetrics import MEDIA_TYPE as METRICS_MEDIA_TYPE, MetricsText
from monitor.app.status_page import HEADERS as PAGE_HEADERS, Asset, PageQuery, PageText, load_assets
from probes.base import ProbeResult
from rules.alerting.faults import FaultBook, FaultStateError
from rules.alerting.maintenance import MaintenanceBook
from rules.model import Fault, FaultState, Severity

log = logging.getLogger("fleetmon.api")

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; the API's bodies are a few hundred bytes."""
_MAX_ERRORS_SHOWN = 5  # validation problems listed in one error message
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON = "application/json"


# --- config ------------------------------------------------------------------------------------


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


# --- context -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    """What the API serves, wired by the daemon.

    - snapshot: the latest finished cycle (None before the first one); called per request.
    - token: the shared bearer token for writes (`by` from the request); None: only people's
      tokens write (none configured: every write is refused).
    - status_token: the read-only token; None leaves reads open (see the module's security notes).
    - people: per-person tokens and roles (config api.people; monitor.app.access).
    - workorders: the work-order book (None: work orders not enabled, their routes answer 503).
    - language: "zh" | "en", for labels meant for people (severity_label).
    - timezone: IANA zone for displaying times (reported in /api/v1/status; times in the API
      itself are UTC).
    - started_ns: when the daemon started (UTC ns), for uptime; started_mono_ns: the same on the
      monotonic clock (None: not known, the wall clock serves). /healthz measures uptime and
      cycle ages on the monotonic clock where it can (monitor/core/clock.py), so a step of the
      wall clock neither hides a stall nor fakes one.
    - cycle_interval_s: the shortest probe interval; /healthz turns 503 after STALE_CYCLES of
      them without a finished cycle.
    - probe_intervals: each running probe's interval; /healthz also turns 503 when any one probe
      finished no cycle for STALE_CYCLES of its own intervals (a stalled ICMP scheduler must
      not hide behind RTSP cycles that still finish).
    - workorders: the daemon's work-order book (None: no work orders here).
    - assessment: availability over periods, score, spot checks, long-offline points (None:
      those endpoints answer 503).
    - reports: makes the report files of /api/v1/reports (None: it answers 503).
    - reload: the latest reload's outcome (None: none since start), shown by /healthz.
    - statedb: the state database's write health; /healthz answers 503 while writes fail.
    - metrics: the /metrics page, read at scrape time (monitor.app.selfmetrics; None: 503).
    - agents: the probe agents as of now (monitor.app.agent_hub.AgentHub.views; None: no
      agents configured), shown by /healthz; a silent one does not make it 503.
    - thumbnails: the frame check's thumbnail folder (probes.rtsp_frame.thumbnail_dir; None:
      none kept, /api/v1/thumbnails answers 404 saying so).
    """

    inventory: Inventory
    snapshot: Callable[[], Snapshot | None]
    faults: FaultBook
    maintenance: MaintenanceBook
    token: SecretStr | None
    language: Literal["zh", "en"]
    timezone: str
    started_ns: int
    started_mono_ns: int | None = None
    cycle_interval_s: float
    status_token: SecretStr | None = None
    probe_intervals: Mapping[str, float] = field(default_factory=dict)
    people: tuple[PersonConfig, ...] = ()
    workorders: WorkOrderBook | None = None
    assessment: Assessment | None = None
    reports: ReportMaker | None = None
    reload: Callable[[], ReloadOutcome | None] = lambda: None
    statedb: WriteHealth | None = None
    metrics: Callable[[], Awaitable[MetricsText]] | None = None
    agents: Callable[[], Sequence[AgentView]] | None = None
    thumbnails: Path | None = None


# --- request models ------------------------------------------------------------------------------

class FaultPath(_In):
    id: Annotated[str, Field(description='fault id, e.g. "F12"', max_length=32)]


class WindowPath(_In):
    id: Annotated[int, Field(ge=1, description="maintenance window id")]


class DeviceQuery(_In):
    region: Annotated[str | None, Field(description="only devices of this region")] = None
    site: Annotated[str | None, Field(description="only devices of this site")] = None
    kind: Annotated[Kind | None, Field(description="only devices of this kind")] = None
    state: Annotated[State | None, Field(description="only devices in this state (of `basis`)")] = None
    basis: Annotated[
        Basis,
        Field(description="which state `state` filters on: network (default), service, video, picture or "
                          "online; video + down = cameras that ping but send no picture; picture + down = cameras "
                          "whose picture the video-quality diagnosis faults (画面异常)"),
    ] = Basis.NETWORK
    q: Annotated[
        str | None,
        Field(max_length=64, description="only devices whose id or name contains this (case-insensitive): "
                                         "the phone page's point search"),
    ] = None
    limit: Annotated[int, Field(ge=1, le=10_000, description="devices per page")] = 1000
    offset: Annotated[int, Field(ge=0, description="devices skipped (inventory order)")] = 0


class FaultQuery(_In):
    state: Annotated[
        Literal["open", "pending", "firing", "resolved", "all"],
        Field(description="open = pending and firing (most severe first, then newest); otherwise newest first"),
    ] = "open"
    limit: Annotated[int, Field(ge=1, le=10_000, description="most faults returned")] = 500


class MaintenanceQuery(_In):
    active: Annotated[
        bool, Field(description="true: only windows active now; false: every window not yet over")
    ] = False


class DeleteQuery(_In):
    by: Annotated[
        Person | None,
        Field(description="who deletes the window (for the log); with a personal token absent or theirs"),
    ] = None


_BY = ("who: absent (or the same name) with a personal token, which records its person; required with the shared "
       "write token")


class AckIn(_Body):
    by: Annotated[Person | None, Field(description=f"who takes the fault (认领), e.g. 张工; {_BY}")] = None


# --- response models -----------------------------------------------------------------------------


class ReloadOut(_Out):
    at: Annotated[datetime, Field(description="when the reload ended (UTC)")]
    ok: Annotated[bool, Field(description="false: the new config could not be used; the old one still runs")]
    error: Annotated[str | None, Field(description="why it failed: located messages (FILE:LINE: key: reason), "
                                                   "one per line")] = None


class AgentHealthOut(_Out):
    """One probe agent as the central sees it; counts since the daemon started."""

    name: str
    online: Annotated[bool, Field(description="false: silent, its devices unknown (monitor blind)")]
    devices: Annotated[int, Field(description="devices it probes for the central")]
    last_heard_s: Annotated[float | None, Field(description="seconds since its latest message (null: none yet)")]
    state: Annotated[str | None, Field(description="its latest status: online, offline (its will), stopping")]
    results: Annotated[int, Field(description="results taken")]
    rejected: Annotated[dict[str, int], Field(description="dropped by reason: bad_result, bad_message")]
    duplicates: Annotated[int, Field(description="repeated results dropped")]
    silences: int
    drift: Annotated[list[str], Field(description="what differs from the central config: points, probes, probe_names")]
    spooled: Annotated[int | None, Field(description="results waiting in its spool, as its latest heartbeat said")]
    spool_dropped: Annotated[int | None, Field(description="results its full spool dropped since it started")]


class HealthOut(_Out):
    status: Annotated[
        Literal["ok", "starting", "stale", "failing"],
        Field(description="starting: no cycle finished yet, still within the grace time; stale: answered 503; "
                          "failing: the state database takes no writes, answered 503 (statedb_error says why)"),
    ]
    uptime_s: float
    last_cycle_age_s: Annotated[float | None, Field(description="seconds since the latest cycle finished")]
    probes: Annotated[
        dict[str, float | None],
        Field(description="per running probe: seconds since its latest cycle finished (null: none yet)"),
    ] = {}
    stale_probes: Annotated[
        list[str], Field(description=f"probes without a finished cycle for {STALE_CYCLES} of their intervals")
    ] = []
    statedb_error: Annotated[
        str | None,
        Field(description="why state database writes fail, e.g. \"database or disk is full (SQLITE_FULL, ENOSPC)\" "
                          "(null: they work); what could not be stored waits in memory and is retried"),
    ] = None
    reload: Annotated[
        ReloadOut | None,
        Field(description="the latest reload (SIGHUP); null: none since start. A failed one left the old config "
                          "running and does not make /healthz 503"),
    ] = None
    agents: Annotated[
        list[AgentHealthOut] | None, Field(description="the probe agents (null: none configured)")
    ] = None
    silent_agents: Annotated[
        list[str],
        Field(description="probe agents silent now: their devices are unknown (a fault says so); the central itself "
                          "works, so they do not make /healthz 503"),
    ] = []


class CycleOut(_Out):
    probe: str
    cycle: int
    ts: datetime
    ts_ns: int
    duration_s: float
    targets: int
    ok: int
    failed: int
    caller_timeouts: int
    cycles_skipped: int


class GroupRateOut(_Out):
    """Online rate (在线率) of one group: online / (online + offline) × 100 over its active
    devices; devices under construction or removed are `excluded`, undecided ones `unknown`."""

    scope: Literal["fleet", "region", "site"]
    group: Annotated[str, Field(description='region or site name; "all" for the fleet')]
    basis: Annotated[
        Basis,
        Field(description="what counts as online: the contract's `online`, or a measured basis (monitor.state.availability)"),
    ]
    kind: Annotated[str, Field(description='device kind, or "all"')]
    online: int
    offline: int
    unknown: int
    excluded: int
    total: Annotated[int, Field(description="active devices")]
    rate_pct: Annotated[float | None, Field(description="null while no active device is decided")]


class DeviceCountsOut(_Out):
    """Devices of the inventory by state; the states count active devices only."""

    total: int
    excluded: Annotated[int, Field(description="under construction or removed")]
    up: int
    down: int
    unreachable: Annotated[int, Field(description="offline because a parent (switch, link, UPS) is")]
    unknown: int


class OpenFaultsOut(_Out):
    """Open (pending and firing) faults by severity."""

    total: int
    critical: int
    major: int
    minor: int


class StatusOut(_Out):
    generated: datetime
    generated_ns: int
    timezone: Annotated[str, Field(description="zone the operators read times in (IANA)")]
    language: Literal["zh", "en"]
    cycle: Annotated[CycleOut | None, Field(description="the latest finished cycle; null before the first")]
    fleet: Annotated[GroupRateOut, Field(description="the whole fleet, every kind, the contract's online basis")]
    rates: Annotated[
        list[GroupRateOut],
        Field(description="every group and basis: fleet, then regions, then sites; each for all kinds and per kind"),
    ]
    devices: DeviceCountsOut
    open_faults: OpenFaultsOut


class LatestOut(_Out):
    """The device's latest probe result."""

    probe: str
    ts: datetime
    ts_ns: int
    ok: bool
    reason: str | None
    fields: Annotated[
        dict[str, float | int | bool | str],
        Field(description="measurement fields, units in the names (rtt_avg_ms, loss_pct …; docs/SCHEMA.md)"),
    ]


class DeviceOut(_Out):
    id: str
    name: str
    kind: Kind
    address: str | None
    site: str
    region: str
    parent: str | None
    status: Status
    lat: float | None
    lon: float | None
    model: str | None
    serial: Annotated[str | None, Field(description="serial number as the point list records it")]
    tags: list[str]
    state: State
    since: Annotated[datetime | None, Field(description="when the device entered `state`; null: never decided")]
    since_ns: int | None
    latest: Annotated[LatestOut | None, Field(description="latest ICMP result; null before the first one")]
    bases: Annotated[
        dict[str, State],
        Field(description="state per basis: online (what the contract counts), network (icmp), service (onvif; "
                          "http, tcp, nvr for platforms), video (rtsp), picture (the frame check's video-quality "
                          "verdict, with vqd on); a basis that does not apply to the device is absent"),
    ]
    results: Annotated[dict[str, LatestOut], Field(description="latest result of every probe that polls the device")]
    maintenance: Annotated[
        InMaintenanceOut | None,
        Field(description="the maintenance window the device is in now (维护中); null: none"),
    ] = None


class DeviceListOut(_Out):
    total: Annotated[int, Field(description="devices matching the filters, all pages")]
    limit: int
    offset: int
    devices: list[DeviceOut]


class FaultOut(_Out):
    id: str
    rule: str
    kind: str
    scope: Annotated[str, Field(description='"device:<id>", "site:<name>", "region:<name>" or "fleet"')]
    severity: Severity
    severity_label: Annotated[str, Field(description="severity in the configured language (紧急/严重/一般)")]
    state: FaultState
    title: str
    first_seen: datetime
    first_seen_ns: int
    last_seen: datetime
    last_seen_ns: int
    device_id: str | None
    site: str | None
    region: str | None
    value: float | None
    threshold: float | None
    unit: str
    affected: Annotated[list[str], Field(description="ids of further devices the fault covers")]
    fired: datetime | None
    fired_ns: int | None
    resolved: datetime | None
    resolved_ns: int | None
    acked_by: str | None
    acked: datetime | None
    acked_ns: int | None
    in_maintenance: bool
    details: dict[str, Any]


class FaultListOut(_Out):
    faults: list[FaultOut]


class DeletedOut(_Out):
    deleted: int


class WhoAmIOut(_Out):
    """Who the request's bearer token makes (monitor.app.access)."""

    kind: Annotated[
        Literal["person", "admin", "status", "anonymous"],
        Field(description="person: a personal token (api.people); admin: the shared write token; status: the "
                          "status token; anonymous: no token (reads open)"),
    ]
    name: Annotated[str | None, Field(description="the person (writes record it as `by`)")]
    roles: Annotated[list[Role], Field(description="the person's roles: read, duty, manager")]
    permissions: Annotated[list[Permission], Field(description="what the token may do")]
    language: Literal["zh", "en"]
    timezone: str
    workorders: Annotated[bool, Field(description="work orders are enabled in this daemon")]


class OpenApiOut(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


# --- conversions ---------------------------------------------------------------------------------


def _rate_out(r: GroupRate) -> GroupRateOut:
    return GroupRateOut(
        scope=r.scope, group=r.group, basis=Basis(r.basis), kind=r.kind, online=r.online, offline=r.offline,
        unknown=r.unknown, excluded=r.excluded, total=r.total, rate_pct=r.rate_pct,
    )


def _latest_out(r: ProbeResult) -> LatestOut:
    return LatestOut(probe=r.probe, ts=_utc(r.ts_ns), ts_ns=r.ts_ns, ok=r.ok, reason=r.reason, fields=dict(r.fields))


def _device_out(device: Device, state: State, since_ns: int, snapshot: Snapshot | None) -> DeviceOut:
    """`since_ns` 0 means never decided (monitor.state.tracker.StateTracker.since)."""
    latest = snapshot.latest.get(device.id) if snapshot is not None else None
    bases = {b: states[device.id] for b, states in snapshot.bases.items() if device.id in states} if snapshot else {}
    results = {p: _latest_out(r[device.id]) for p, r in snapshot.results.items() if device.id in r} if snapshot else {}
    return DeviceOut(
        id=device.id, name=device.name, kind=device.kind,
        address=None if device.address is None else str(device.address),
        site=device.site, region=device.region, parent=device.parent, status=device.status,
        lat=device.lat, lon=device.lon, model=device.model, serial=device.serial, tags=sorted(device.tags), state=state,
        since=_utc(since_ns) if since_ns else None, since_ns=since_ns or None,
        latest=None if latest is None else _latest_out(latest), bases=bases, results=results,
    )


def _fault_out(f: Fault, language: str) -> FaultOut:
    return FaultOut(
        id=f.id, rule=f.rule, kind=f.kind, scope=f.scope, severity=f.severity,
        severity_label=f.severity.zh if language == "zh" else f.severity.value, state=f.state, title=f.title,
        first_seen=_utc(f.first_seen_ns), first_seen_ns=f.first_seen_ns,
        last_seen=_utc(f.last_seen_ns), last_seen_ns=f.last_seen_ns,
        device_id=f.device_id, site=f.site, region=f.region, value=f.value, threshold=f.threshold, unit=f.unit,
        affected=list(f.affected), fired=_opt_utc(f.fired_ns), fired_ns=f.fired_ns,
        resolved=_opt_utc(f.resolved_ns), resolved_ns=f.resolved_ns,
        acked_by=f.acked_by, acked=_opt_utc(f.acked_ns), acked_ns=f.acked_ns,
        in_maintenance=f.in_maintenance, details=dict(f.details),
    )


# --- request plumbing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: its handler, the models of its inputs, and its own responses (status →
    (description, model)); the error responses its inputs imply are added by `_responses`.

    Access: a route with a `permission` is a write: it needs a token that grants it (a person's
    with the role, or the shared write token; monitor.app.access); `public` never needs a token
    (no fleet data in it); any other route is a read, which needs a token (status, write or a
    person's) when a status token is configured, as a bearer header. `media_type`: of
    the successful answers (PageText bodies when not JSON); `media_types`: those of a route
    answering a file in one of several (ReportFile bodies); errors are always JSON."""

    method: str
    path: str
    summary: str
    handler: Handler
    responses: Mapping[int, tuple[str, type[BaseModel]]]
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    permission: Permission | None = None
    public: bool = False
    media_type: str = _JSON
    media_types: tuple[str, ...] = ()

    @property
    def write(self) -> bool:
        return self.permission is not None


def _describe(exc: ValidationError, where: str) -> str:
    """ "body.start: Input should have timezone info; body.by: Field required" (input values
    are not echoed: they may be large)."""
    parts = []
    for error in exc.errors(include_url=False)[:_MAX_ERRORS_SHOWN]:
        loc = where + "".join(f"[{p}]" if isinstance(p, int) else f".{_printable(p)}" for p in error["loc"])
        parts.append(f"{loc}: {error['msg']}")
    more = exc.error_count() - _MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _printable(name: str) -> str:
    """A field name from the request (it may be an unknown one the client made up) as it can
    be shown in a message and a log line: control characters escaped, at most 64 characters."""
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)
    return escaped if len(escaped) <= 64 else escaped[:63] + "…"


def _validate(model: type[BaseModel], data: Mapping[str, str], where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _describe(exc, where)) from None


def _parse_query(model: type[BaseModel], request: web.Request) -> BaseModel:
    """The query string as `model`; a parameter given twice is an error rather than a guess."""
    query = request.query
    repeated = sorted(key for key in set(query) if len(query.getall(key)) > 1)
    if repeated:
        raise ApiError(400, f"query parameter given more than once: {', '.join(repeated)}")
    return _validate(model, dict(query), "query")


async def _parse_body(model: type[BaseModel], request: web.Request, timeout_s: float) -> BaseModel:
    if request.content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {request.content_type}")
    try:
        async with asyncio.timeout(timeout_s):  # a body sent a byte at a time must not hold the connection
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes") from None
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout_s:g} s", {"Connection": "close"}) from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, _describe(exc, "body")) from None


def _json(status: int, body: BaseModel, headers: Mapping[str, str] | None = None) -> web.Response:
    # pydantic writes UTF-8 without \u escapes: Chinese names stay readable in curl.
    return web.Response(status=status, text=body.model_dump_json(), content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, ErrorOut(error=message), headers)


RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_handler(endpoint: Endpoint, api: _Api) -> RouteHandler:
    """The aiohttp handler of `endpoint`: authorize, validate inputs, call, answer; one log
    line per write request, whatever its outcome short of a bug."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            _no_token_in_query(request)
            if endpoint.permission is not None:
                caller = api.authorize(request, endpoint.permission)
            elif not endpoint.public:
                caller = api.authorize_read(request)
            else:
                caller = Caller("anonymous")
            call = Call(
                path=_validate(endpoint.path_params, request.match_info, "path") if endpoint.path_params else None,
                query=_parse_query(endpoint.query, request) if endpoint.query else None,
                body=await _parse_body(endpoint.body, request, api.body_timeout_s) if endpoint.body else None,
                caller=caller,
            )
            reply = await endpoint.handler(call)
        except ApiError as exc:
            if endpoint.write and api.refused.note(request.remote):
                # The window's first refusal in full, the rest counted (ApiServer logs the count).
                # The path still percent-encoded (cannot forge log lines), without the query.
                level = logging.WARNING if exc.status in (401, 403) else logging.INFO
                log.log(level, "refused %s %s from %s: %s (further refusals counted, logged once a minute)",
                        request.method, request.url.raw_path, request.remote, exc.message)
            raise
        if reply.audit is not None:
            log.info("%s (from %s)", reply.audit, request.remote)
        if isinstance(reply.body, ReportFile):
            disposition = f'attachment; filename="{reply.body.filename}"'  # file_name: letters, digits, ._- only
            return web.Response(status=reply.status, body=reply.body.data, content_type=reply.body.media_type,
                                headers={"Content-Disposition": disposition})
        if isinstance(reply.body, Thumbnail):
            return web.Response(status=reply.status, body=reply.body.data, content_type=THUMBNAIL_MEDIA_TYPE,
                                headers={**PAGE_HEADERS, "Last-Modified": reply.body.last_modified})
        if isinstance(reply.body, (PageText, MetricsText)):
            return web.Response(
                status=reply.status, text=reply.body.root, content_type=endpoint.media_type, headers=PAGE_HEADERS
            )
        return _json(reply.status, reply.body)

    return handle


@web.middleware
async def _errors(request: web.Request, handler: RouteHandler) -> web.StreamResponse:
    """Every error as JSON {"error": …}: ours, aiohttp's (unknown route, wrong method), and
    bugs (logged, answered 500 without details)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.headers)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return _error(exc.status, f"method {request.method} not allowed here (allowed: {allowed})", {"Allow": allowed})
    except web.HTTPNotFound:
        return _error(404, f"no such endpoint: {request.path} (see /api/v1/openapi.json)")
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.url.raw_path)
        return _error(500, "internal error")


# --- the handlers --------------------------------------------------------------------------------


class _Api:
    """The endpoints' handlers over one ApiContext."""

    def __init__(self, ctx: ApiContext, body_timeout_s: float = 10.0) -> None:
        self.ctx = ctx
        self.body_timeout_s = body_timeout_s
        self.refused = Tally()  # refused writes, for the summary line

    def _identify(self, given: str) -> Caller | None:
        ctx = self.ctx
        return identify(given, write=ctx.token, status=ctx.status_token, people=ctx.people)

    def authorize(self, request: web.Request, permission: Permission) -> Caller:
        """The caller of a write needing `permission`. Raises ApiError 403 when writes are
        disabled or the token does not grant `permission` (the reason names the role needed),
        401 without a bearer token or with one matching none."""
        if self.ctx.token is None and not self.ctx.people:
            raise ApiError(
                403,
                "writes are disabled: no API token is configured (set api.token_env or api.token_file, "
                "or give people their own tokens in api.people)",
            )
        given = _bearer(request)
        if given is None:
            raise ApiError(401, "a bearer token is required: Authorization: Bearer <token>", _CHALLENGE)
        caller = self._identify(given)
        if caller is None:
            raise ApiError(401, "wrong token", _CHALLENGE)
        if not caller.may(permission):
            raise ApiError(403, caller.refusal(permission))
        return caller

    def authorize_read(self, request: web.Request) -> Caller:
        """The caller of a read. While no status token is configured reads are open: the bearer
        token's caller, anonymous without one, "unknown" for one that matches none. Else raises
        ApiError 401 unless the request carries a known token (status, write or a person's) as a
        bearer header."""
        given = _bearer(request)
        caller = self._identify(given) if given is not None else None
        if self.ctx.status_token is None:
            return caller or Caller("anonymous" if given is None else "unknown")
        if given is None:
            raise ApiError(401, "the status token is required: Authorization: Bearer <token>", _CHALLENGE)
        if caller is None:
            raise ApiError(401, "wrong token", _CHALLENGE)
        return caller

    # -- reads --

    async def health(self, call: Call) -> Reply:
        now, mono = time.time_ns(), time.monotonic_ns()

        def age_s(wall_ns: int, mono_ns: int | None) -> float:
            return (now - wall_ns if mono_ns is None else mono - mono_ns) / 1e9

        uptime_s = age_s(self.ctx.started_ns, self.ctx.started_mono_ns)
        snapshot = self.ctx.snapshot()
        limit_s = STALE_CYCLES * self.ctx.cycle_interval_s
        if snapshot is None:
            # The first cycle needs up to an interval to finish: grant the same grace time.
            last_age_s, status = None, "starting" if uptime_s <= limit_s else "stale"
        else:
            cycle = snapshot.cycle
            last_age_s = age_s(cycle.ts_ns, cycle.mono_ns) - cycle.duration_s
            status = "ok" if last_age_s <= limit_s else "stale"
        ages, stale = probe_ages(snapshot, self.ctx.probe_intervals, now, uptime_s, mono)
        probes = {name: None if a is None else round(a, 3) for name, a in ages.items()}
        if stale:
            status = "stale"
        failure = self.ctx.statedb.failure if self.ctx.statedb is not None else None
        if failure is not None:
            status = "failing"
        age = None if last_age_s is None else round(last_age_s, 3)
        reload = self.ctx.reload()
        agents = None if self.ctx.agents is None else [
            AgentHealthOut(
                name=a.name, online=a.online, devices=a.devices,
                last_heard_s=None if a.last_heard_s is None else round(a.last_heard_s, 3), state=a.state,
                results=a.results, rejected=dict(a.rejected), duplicates=a.duplicates, silences=a.silences,
                drift=list(a.drift), spooled=a.spooled, spool_dropped=a.spool_dropped,
            )
            for a in self.ctx.agents()
        ]
        body = HealthOut(status=status, uptime_s=round(uptime_s, 3), last_cycle_age_s=age, probes=probes,
                         stale_probes=stale, statedb_error=failure.cause if failure is not None else None,
                         reload=None if reload is None else ReloadOut(at=_utc(reload.at_ns), ok=reload.ok,
                                                                      error=reload.error),
                         agents=agents, silent_agents=[a.name for a in agents or () if not a.online])
        return Reply(503 if status in ("stale", "failing") else 200, body)

    async def metrics(self, call: Call) -> Reply:
        if self.ctx.metrics is None:
            raise ApiError(503, "no self-monitoring behind this API")
        return Reply(200, await self.ctx.metrics())

    async def status(self, call: Call) -> Reply:
        ctx = self.ctx
        now = time.time_ns()
        snapshot = ctx.snapshot()
        devices = ctx.inventory.devices.values()
        states: Mapping[str, State] = snapshot.states if snapshot is not None else {}
        rates = snapshot.rates if snapshot is not None else tuple(online_rates(devices, states))
        counts = {state: 0 for state in State}
        excluded = 0
        for device in devices:
            if device.counted:
                counts[states.get(device.id, State.UNKNOWN)] += 1
            else:
                excluded += 1
        open_faults = ctx.faults.open_faults()
        by_severity = {s: sum(1 for f in open_faults if f.severity is s) for s in Severity}
        body = StatusOut(
            generated=_utc(now), generated_ns=now, timezone=ctx.timezone, language=ctx.language,
            cycle=None if snapshot is None else _cycle_out(snapshot),
            fleet=_rate_out(_fleet_rate(rates)),
            rates=[_rate_out(r) for r in rates],
            devices=DeviceCountsOut(
                total=len(devices), excluded=excluded, up=counts[State.UP], down=counts[State.DOWN],
                unreachable=counts[State.UNREACHABLE], unknown=counts[State.UNKNOWN],
            ),
            open_faults=OpenFaultsOut(
                total=len(open_faults), critical=by_severity[Severity.CRITICAL], major=by_severity[Severity.MAJOR],
                minor=by_severity[Severity.MINOR],
            ),
        )
        return Reply(200, body)

    async def devices(self, call: Call) -> Reply:
        q: DeviceQuery = call.query
        snapshot = self.ctx.snapshot()
        states: Mapping[str, State] = snapshot.states if snapshot is not None else {}
        since: Mapping[str, int] = snapshot.since if snapshot is not None else {}
        needle = (q.q or "").strip().casefold() or None
        matching = [
            (d, states.get(d.id, State.UNKNOWN))
            for d in self.ctx.inventory.devices.values()
            if (q.region is None or d.region == q.region)
            and (q.site is None or d.site == q.site)
            and (q.kind is None or d.kind is q.kind)
            and (needle is None or needle in d.id.casefold() or needle in d.name.casefold())
        ]
        if q.state is not None:
            if q.basis is Basis.NETWORK:
                matching = [(d, s) for d, s in matching if s is q.state]
            else:
                by_basis = snapshot.bases.get(q.basis.value, {}) if snapshot is not None else {}
                matching = [(d, s) for d, s in matching if by_basis.get(d.id) is q.state]
        page = matching[q.offset : q.offset + q.limit]
        now = time.time_ns()
        body = DeviceListOut(
            total=len(matching), limit=q.limit, offset=q.offset,
            devices=[
                _device_out(d, s, since.get(d.id, 0), snapshot).model_copy(
                    update={"maintenance": in_maintenance(self.ctx.maintenance, d.id, now)})
                for d, s in page
            ],
        )
        return Reply(200, body)

    async def faults(self, call: Call) -> Reply:
        q: FaultQuery = call.query
        if q.state == "open":
            found = self.ctx.faults.open_faults()[: q.limit]
        else:
            state = None if q.state == "all" else FaultState(q.state)
            found = await self.ctx.faults.faults(state, q.limit)
        return Reply(200, FaultListOut(faults=[_fault_out(f, self.ctx.language) for f in found]))

    async def fault(self, call: Call) -> Reply:
        fault_id = call.path.id
        found = await self.ctx.faults.get(fault_id)
        if found is None:
            raise ApiError(404, f"no fault {fault_id!r}")
        return Reply(200, _fault_out(found, self.ctx.language))

    async def windows(self, call: Call) -> Reply:
        q: MaintenanceQuery = call.query
        now = time.time_ns()
        found = self.ctx.maintenance.windows(now if q.active else None)
        return Reply(200, WindowListOut(windows=[window_out(w, now, self.ctx.language) for w in found]))

    # -- the assessment (monitor.app.assess_views: the same answers as the CLI's) --

    async def availability(self, call: Call) -> Reply:
        return Reply(200, await self._assess(views.availability, call.query))

    async def score(self, call: Call) -> Reply:
        return Reply(200, await self._assess(views.score, call.query))

    async def spot_check(self, call: Call) -> Reply:
        return Reply(200, await self._assess(views.spot_check, call.path.device_id, call.query.at))

    async def long_offline(self, call: Call) -> Reply:
        return Reply(200, await self._assess(views.long_offline))

    async def _assess(self, answer: Callable[..., Awaitable[BaseModel]], *args: Any) -> BaseModel:
        """`answer(assessment, *args)`, its RequestError as the error it means."""
        if self.ctx.assessment is None:
            raise ApiError(503, "the assessment is not available in this API (no state database behind it)")
        try:
            return await answer(self.ctx.assessment, *args)
        except views.RequestError as exc:
            raise ApiError(exc.status, exc.message) from None

    # -- writes --

    async def whoami(self, call: Call) -> Reply:
        caller = call.caller
        if caller.kind == "unknown":
            raise ApiError(401, "wrong token", _CHALLENGE)
        body = WhoAmIOut(
            kind=caller.kind, name=caller.name, roles=sorted(caller.roles, key=list(Role).index),
            permissions=sorted(caller.permissions, key=list(Permission).index), language=self.ctx.language,
            timezone=self.ctx.timezone, workorders=self.ctx.workorders is not None,
        )
        return Reply(200, body)

    async def ack(self, call: Call) -> Reply:
        fault_id, by = call.path.id, call.who(call.body.by)
        try:
            fault = await self.ctx.faults.ack(fault_id, by)
        except KeyError:
            raise ApiError(404, f"no fault {fault_id!r}") from None
        except FaultStateError as exc:
            raise ApiError(409, str(exc)) from None
        return Reply(200, _fault_out(fault, self.ctx.language), f"fault {fault_id} acknowledged by {by}")

    async def create_window(self, call: Call) -> Reply:
        b: MaintenanceIn = call.body
        by = call.who(b.by)
        book = self.ctx.maintenance
        try:
            if b.every is not None and b.duration is not None:
                window = await book.create_recurring(b.match, b.every, b.duration, b.from_, b.until, b.reason, by)
                when = f"every {b.every} for {b.duration} s ({book.timezone})"
            else:
                assert b.start is not None and b.end is not None  # MaintenanceIn's validator
                window = await book.create(b.match, _ns(b.start), _ns(b.end), b.reason, by)
                when = f"{_utc(window.start_ns):%Y-%m-%d %H:%M} → {_utc(window.end_ns):%Y-%m-%d %H:%M} UTC"
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        audit = (
            f"maintenance window {window.id} created by {by}: {when}, "
            f"match {b.match.model_dump_json(exclude_defaults=True)}, reason {b.reason}"
        )
        return Reply(201, window_out(window, time.time_ns(), self.ctx.language), audit)

    async def delete_window(self, call: Call) -> Reply:
        # The shared token may leave `by` out here (ending a window records no one); a person is always named.
        window_id = call.path.id
        by = call.who(call.query.by) if call.caller.kind == "person" else call.query.by
        try:
            await self.ctx.maintenance.delete(window_id)
        except KeyError:
            raise ApiError(404, f"no maintenance window {window_id}") from None
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None
        return Reply(200, DeletedOut(deleted=window_id), f"maintenance window {window_id} deleted by {by or 'unnamed'}")


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fleetmon"'}


QUERY_TOKENS = frozenset({"token", "access_token"})
"""Query parameters refused: a token there would be logged by every proxy on the way."""


def _no_token_in_query(request: web.Request) -> None:
    """Raises ApiError 400 when the query names a token (QUERY_TOKENS, any case)."""
    if any(key.lower() in QUERY_TOKENS for key in request.query):
        raise ApiError(400, "tokens are not accepted in the URL (proxies and browser histories keep URLs): send "
                            "the header Authorization: Bearer <token>; the status page takes its token after "
                            "the #: /status#token=<token>")


def _bearer(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def _serve(asset: Asset) -> Handler:
    """The handler answering `asset`'s text."""
    body = PageText(asset.text)

    async def handler(call: Call) -> Reply:
        return Reply(200, body)

    handler.__name__ = asset.operation  # the OpenAPI operationId
    return handler


def _fleet_rate(rates: Iterable[GroupRate]) -> GroupRate:
    """The fleet's all-kinds rate on the contract's basis ("online"); all zero for an empty
    inventory (online_rates has no rows)."""
    return next(
        (r for r in rates if r.scope == "fleet" and r.kind == ALL and r.basis == Basis.ONLINE),
        GroupRate("fleet", ALL, ALL, 0, 0, 0, 0),
    )


def _cycle_out(snapshot: Snapshot) -> CycleOut:
    c = snapshot.cycle
    return CycleOut(
        probe=c.probe, cycle=c.cycle, ts=_utc(c.ts_ns), ts_ns=c.ts_ns, duration_s=c.duration_s, targets=c.targets,
        ok=c.ok, failed=c.failed, caller_timeouts=c.caller_timeouts, cycles_skipped=c.cycles_skipped,
    )


def _endpoints(
    api: _Api, orders: WorkOrderRoutes, reports: ReportRoutes, openapi: Handler, assets: tuple[Asset, ...],
    thumbs: ThumbnailRoutes,
) -> tuple[Endpoint, ...]:
    """Every route of the API: the single source of routes, validation and documentation.
    `orders`: the work-order handlers (monitor.app.api_workorders); `reports`: the report
    handler (monitor.app.api_reports); `thumbs`: the thumbnail handler (monitor.app.api_thumbs);
    `assets`: the status page and its files
    (monitor.app.status_page.load_assets), page first."""
    unknown_fault = (404, ("no such fault", ErrorOut))
    page, *files = assets
    off = {503: (wo.NOT_ENABLED, ErrorOut)}
    unknown_order = {404: ("no such work order", ErrorOut)}
    order_write = {
        200: ("the order with its events", WorkOrderDetailOut),
        **unknown_order,
        409: ("the order is closed, or the stamp is out of order (before the report or an earlier stamp, "
              "a stage already recorded)", ErrorOut),
        **off,
    }

    def action(name: str, summary: str, handler: Handler, body: type[BaseModel], **extra: Any) -> Endpoint:
        return Endpoint("POST", f"/api/v1/workorders/{{ref}}/{name}", summary, handler, {**order_write, **extra},
                        path_params=OrderPath, body=body, permission=Permission.WORKORDER)

    return (
        Endpoint("GET", "/healthz", "Liveness: are cycles still finishing?", api.health, {
            200: ("healthy, or starting within the grace time", HealthOut),
            503: (f"no cycle finished for {STALE_CYCLES} cycle intervals, or state database writes fail",
                  HealthOut),
        }, public=True),
        Endpoint("GET", "/metrics", "fleetmon's own health for Prometheus: cycles, queues, sink, outbox, faults, "
                 "process", api.metrics, {
                     200: ("Prometheus text exposition format 0.0.4", MetricsText),
                     503: ("no self-monitoring behind this API", ErrorOut),
                 }, media_type=METRICS_MEDIA_TYPE),
        Endpoint("GET", "/api/v1/status", "Online rates, device states and open faults", api.status, {
            200: ("fleet status", StatusOut),
        }),
        Endpoint("GET", "/api/v1/devices", "Devices with their state and latest probe result", api.devices, {
            200: ("one page of devices, in inventory order", DeviceListOut),
        }, query=DeviceQuery),
        Endpoint("GET", "/api/v1/faults", "Faults by state", api.faults, {
            200: ("faults", FaultListOut),
        }, query=FaultQuery),
        Endpoint("GET", "/api/v1/faults/{id}", "One fault", api.fault, {
            200: ("the fault", FaultOut), **dict([unknown_fault]),
        }, path_params=FaultPath),
        Endpoint("POST", "/api/v1/faults/{id}/ack", "Acknowledge (认领) an open fault", api.ack, {
            200: ("the acknowledged fault (acknowledging twice keeps the first)", FaultOut),
            **dict([unknown_fault]),
            409: ("the fault is already resolved", ErrorOut),
        }, path_params=FaultPath, body=AckIn, permission=Permission.FAULT_ACK),
        Endpoint("GET", "/api/v1/maintenance", "Maintenance windows not yet over, with their next occurrences",
                 api.windows, {
            200: ("windows by start", WindowListOut),
        }, query=MaintenanceQuery),
        Endpoint("POST", "/api/v1/maintenance", "Create an ad hoc maintenance window, one-off or recurring",
                 api.create_window, {
            201: ("the window", WindowOut),
        }, body=MaintenanceIn, permission=Permission.EXCLUDE),
        Endpoint("DELETE", "/api/v1/maintenance/{id}", "End an ad hoc maintenance window (a recurring one: its "
                 "schedule) now", api.delete_window, {
            200: ("the window is ended (kept in the state database for reports)", DeletedOut),
            404: ("no such window", ErrorOut),
            409: ("the window comes from config.yaml: change it there", ErrorOut),
        }, path_params=WindowPath, query=DeleteQuery, permission=Permission.EXCLUDE),
        Endpoint("GET", "/api/v1/whoami", "Who the request's token makes: person, roles, permissions", api.whoami, {
            200: ("the caller", WhoAmIOut),
            401: ("a bearer token that matches none", ErrorOut),
        }),
        Endpoint("GET", "/api/v1/workorders", "Work orders (工单) with their SLA clocks", orders.workorders, {
            200: ("orders", WorkOrderListOut), **off,
        }, query=OrderQuery),
        Endpoint("GET", "/api/v1/workorders/{ref}", "One work order, its events and SLA clocks", orders.workorder, {
            200: ("the order", WorkOrderDetailOut), **unknown_order, **off,
        }, path_params=OrderPath),
        Endpoint("POST", "/api/v1/workorders", "Report a fault by hand (故障申告): opens a work order",
                 orders.workorder_report, {
                     201: ("the new order", WorkOrderDetailOut), **off,
                 }, body=ReportIn, permission=Permission.WORKORDER),
        action("acknowledge", "Acknowledge (响应/认领) an order: an order without assignee becomes the caller's",
               orders.workorder_acknowledge, StampIn),
        action("arrive", "Record the arrival on site (到场)", orders.workorder_arrive, StampIn),
        action("restore", "Record the restore (修复), remote or on site", orders.workorder_restore, RestoreIn),
        action("replace", "Record a device exchanged (更换): old and new serial and model", orders.workorder_replace,
               ReplaceIn),
        action("confirm-replacement", "Confirm fleetmon's replacement proposal (the camera's serial changed)",
               orders.workorder_confirm_replacement, ConfirmIn),
        action("classify", "Set the cause class, the resolution class or the no-spare-part mark",
               orders.workorder_classify, ClassifyIn),
        action("note", "Add a note", orders.workorder_note, NoteIn),
        action("assign", "Give the order to someone (breaches count against the assignee)", orders.workorder_assign,
               AssignIn),
        action("close", "Close the order (after its restore), or cancel it (误报/重复, manager role)",
               orders.workorder_close, CloseIn),
        Endpoint("GET", "/api/v1/availability", "Availability over a period (考核在线率) per group and point",
                 api.availability, {
            200: ("the groups of the scope (and the points) on one basis", AvailabilityOut),
            404: ("no such region, site or kind in the point list", ErrorOut),
            503: ("no assessment behind this API", ErrorOut),
        }, query=AvailabilityQuery),
        Endpoint("GET", "/api/v1/score", "The assessment score of a period (考核得分), with its evidence", api.score, {
            200: ("every item, tier, deduction, the payment; evidence of every figure", ScoreOut),
            409: ("no scheme configured (assessment.score)", ErrorOut),
            422: ("a metric has no value: one entered by hand not given, or nothing was counted", ErrorOut),
            503: ("no assessment behind this API", ErrorOut),
        }, query=ScoreQuery),
        Endpoint("GET", "/api/v1/spot-check/{device_id}", "Spot check (抽查): one point at one moment", api.spot_check, {
            200: ("the point as seen and as counted, with the evidence around the moment", SpotCheckOut),
            404: ("no such point", ErrorOut),
            503: ("no assessment behind this API", ErrorOut),
        }, path_params=SpotCheckPath, query=SpotCheckQuery),
        Endpoint("GET", "/api/v1/long-offline", "Points offline for the configured days or more (掉线点位)",
                 api.long_offline, {
            200: ("the points, longest offline first", LongOfflineOut),
            503: ("no assessment behind this API", ErrorOut),
        }),
        Endpoint("GET", "/api/v1/reports/{kind}", "A report file (巡检日报 … 年报), made now", reports.report, {
            200: ("the report as PDF or XLSX (Content-Disposition: attachment; filename)", ReportFile),
            409: ("the point list is empty: nothing to report on", ErrorOut),
            503: (f"{NOT_AVAILABLE}; or the file could not be rendered (the reason says)", ErrorOut),
        }, path_params=ReportPath, query=ReportQuery, media_types=tuple(MEDIA_TYPES.values())),
        Endpoint("GET", "/api/v1/thumbnails/{device_id}", "A camera's latest picture from the frame check (画面截图)",
                 thumbs.thumbnail, {
            200: ("the JPEG (at most 320 px wide); Last-Modified: when the frame was taken", Thumbnail),
            404: ("no such point, no thumbnails kept (vqd off), or none of this camera yet (the reason says)",
                  ErrorOut),
        }, path_params=ThumbnailPath, media_type=THUMBNAIL_MEDIA_TYPE),
        Endpoint("GET", "/api/v1/openapi.json", "This document", openapi, {
            200: ("an OpenAPI 3.1 document", OpenApiOut),
        }, public=True),
        Endpoint("GET", page.path, page.summary, _serve(page), {
            200: ("the page; its script reads the JSON API", PageText),
        }, query=PageQuery, public=True, media_type=page.content_type),
        *(
            Endpoint("GET", f.path, f.summary, _serve(f), {200: ("the file", PageText)}, public=True,
                     media_type=f.content_type)
            for f in files
        ),
    )


# --- OpenAPI -------------------------------------------------------------------------------------


def _responses(endpoint: Endpoint, reads_need_token: bool) -> dict[int, tuple[str, type[BaseModel]]]:
    """The endpoint's own responses plus the errors its inputs and access imply."""
    out = dict(endpoint.responses)
    if endpoint.path_params or endpoint.query or endpoint.body:
        out[400] = ("malformed request: the reason names the offending part", ErrorOut)
    if endpoint.write:
        out[401] = ("missing or wrong bearer token", ErrorOut)
        out[403] = ("the token lacks the role (the reason names it), `by` names someone else, or writes are "
                    "disabled (no token configured)", ErrorOut)
    elif reads_need_token and not endpoint.public:
        out[401] = ("missing or wrong token: reads need the status token (or the write token)", ErrorOut)
    if endpoint.body:
        out[413] = (f"body larger than {MAX_BODY_BYTES} bytes", ErrorOut)
        out[415] = ("body is not application/json", ErrorOut)
    out[500] = ("a bug (logged)", ErrorOut)
    return dict(sorted(out.items()))


def openapi_document(endpoints: tuple[Endpoint, ...], reads_need_token: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `endpoints`; JSON Schemas (draft 2020-12, as OpenAPI 3.1
    uses) generated by pydantic from the endpoints' models. `reads_need_token`: a status token
    is configured (reads other than public ones need a token)."""
    inputs = {m for e in endpoints for m in (e.path_params, e.query, e.body) if m is not None}
    outputs = {model for e in endpoints for _, model in _responses(e, reads_need_token).values()}
    pairs = sorted(
        [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs],
        key=lambda pair: (pair[0].__name__, pair[1]),
    )
    refs, defs = models_json_schema(pairs, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    schemas = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        if e.write or reads_need_token and not e.public:
            security: list[dict[str, list[str]]] = [{"bearer": []}]
        else:
            security = []
        operation: dict[str, Any] = {
            "operationId": e.handler.__name__,
            "summary": e.summary,
            **({"description": _needs(e.permission)} if e.permission is not None else {}),
            "security": security,
            "responses": {
                str(status): {
                    "description": description,
                    "content": {
                        media: {"schema": refs[(model, "serialization")]}
                        for media in ((e.media_types or (e.media_type,)) if status < 400 else (_JSON,))
                    },
                }
                for status, (description, model) in _responses(e, reads_need_token).items()
            },
        }
        parameters = [
            *_parameters(e.path_params, "path", refs, schemas),
            *_parameters(e.query, "query", refs, schemas),
        ]
        if parameters:
            operation["parameters"] = parameters
        if e.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(e.body, "validation")]}},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    for model in {m for e in endpoints for m in (e.path_params, e.query) if m is not None}:
        del schemas[_name(refs[(model, "validation")])]  # spelled out as parameters instead
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fleetmon",
            "version": "1",
            "description": "Monitoring of video-surveillance fleets: online rates, devices, faults, maintenance, "
            "and a status page for phones (/status). Writes need a bearer token; reads too when a status token "
            "is configured. Times: UTC ISO-8601 plus *_ns integers (ns since the epoch).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _needs(permission: Permission) -> str:
    roles = " or ".join(r.value for r in roles_granting(permission))
    return (f"Needs a personal token with the {roles} role (recorded as `by`), or the shared write token "
            "(`by` in the request).")


def _parameters(
    model: type[BaseModel] | None, where: str, refs: Mapping[Any, Any], schemas: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """OpenAPI parameters (`where`: "path" or "query"), one per field of `model`."""
    if model is None:
        return []
    schema = schemas[_name(refs[(model, "validation")])]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = _not_null(prop)
        parameter = {"name": name, "in": where, "required": where == "path" or name in required}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        out.append({**parameter, "schema": prop})
    return out


def _name(ref: Mapping[str, str]) -> str:
    """The component name in {"$ref": "#/components/schemas/<name>"}."""
    return ref["$ref"].rsplit("/", 1)[1]


def _not_null(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the `null` pydantic adds for `X | None = None`: a query
    parameter is absent or has a value, it is never null."""
    out = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
    branches = [b for b in out.pop("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        out.update(branches[0])
    elif branches:
        out["anyOf"] = branches
    return out


# --- app and server ------------------------------------------------------------------------------


REFUSED = web.AppKey("refused", Tally)
"""The app's tally of refused writes (ApiServer logs it once a minute)."""


def create_app(ctx: ApiContext, body_timeout_s: float = 10.0) -> web.Application:
    """The aiohttp application serving `ctx`; the routes are those of `_endpoints`; a request
    body must arrive within `body_timeout_s` (else 408). Raises OSError when a file of the
    status page is missing (monitor/app/static)."""
    api = _Api(ctx, body_timeout_s)
    document: dict[str, Any] = {}

    async def openapi(call: Call) -> Reply:
        # Made on first request, not at start: the document and the JSON schemas of every
        # model it is made from would stay in the daemon's memory for nothing (~0.6 MB).
        if not document:
            document.update(openapi_document(endpoints, reads_need_token=ctx.status_token is not None))
        return Reply(200, OpenApiOut(document))

    orders = WorkOrderRoutes(ctx.workorders, ctx.inventory, ctx.language)
    endpoints = _endpoints(api, orders, ReportRoutes(ctx.reports), openapi, load_assets(),
                           ThumbnailRoutes(ctx.thumbnails, ctx.inventory))
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY_BYTES)
    for e in endpoints:
        app.router.add_route(e.method, e.path, _route_handler(e, api))
    app[REFUSED] = api.refused
    return app


class ApiServer:
    """The API served on `cfg.listen`:`cfg.port` while inside `async with`.

    Raises ValueError for a non-loopback address without a token (should ApiConfig's check be
    bypassed) or a configured status token missing from `ctx` (reads would be open), and
    OSError when the address cannot be bound (port in use …) or a file of the status page is
    missing."""

    def __init__(self, cfg: ApiConfig, ctx: ApiContext) -> None:
        if ctx.token is None and not ctx.people and not _is_loopback(cfg.listen):
            raise ValueError(f"refusing to serve the API on {cfg.listen} without a token")
        if cfg.status_token is not None and ctx.status_token is None:
            raise ValueError("refusing to serve the API with open reads: api.status_token is configured")
        self._cfg = cfg
        self._writes = (
            f"need a token ({'the shared one or ' if ctx.token is not None else ''}{len(ctx.people)} personal)"
            if ctx.token is not None or ctx.people else "disabled: no token configured"
        )
        self._reads = "need the status token" if ctx.status_token is not None else "open"
        app = create_app(ctx, body_timeout_s=cfg.header_timeout_s)
        # keepalive_timeout: aiohttp closes a connection idle (or slow with its next request) this long.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0, keepalive_timeout=cfg.idle_timeout_s)
        self.guard = Guard(connection_cap(cfg.max_connections), cfg.header_timeout_s)
        self._summaries = Summaries()
        self._summaries.add(tally_line(app[REFUSED], "refused requests"))
        self._summaries.add(tally_line(self.guard.over_cap, "connections refused over the cap"))
        self._summaries.add(tally_line(self.guard.slow, "connections closed without headers in time"))
        self._bad_requests = BadRequests()
        self._summaries.add(tally_line(self._bad_requests.tally, "malformed requests"))
        self._accept_errors: AcceptErrors | None = None
        self._summarizing: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the actual one when the config asked for 0)."""
        return int(self._runner.addresses[0][1])

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        try:
            await _GuardedSite(self._runner, self._cfg.listen, self._cfg.port, self.guard).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        logging.getLogger("aiohttp.server").addFilter(self._bad_requests)
        loop = asyncio.get_running_loop()
        self._accept_errors = AcceptErrors(loop.get_exception_handler())
        loop.set_exception_handler(self._accept_errors)
        self._summaries.add(self._accept_errors.summary)
        self._summarizing = asyncio.create_task(self._summaries.run(), name="api-log-summaries")
        host = f"[{self._cfg.listen}]" if ":" in self._cfg.listen else self._cfg.listen
        log.info(
            "HTTP API on http://%s:%d/, status page /status (writes %s, reads %s; at most %d connections, "
            "headers within %g s, idle %g s)", host, self.port, self._writes, self._reads, self.guard.cap,
            self._cfg.header_timeout_s, self._cfg.idle_timeout_s,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._runner.cleanup()
        finally:
            if self._summarizing is not None:
                self._summarizing.cancel()
                await asyncio.gather(self._summarizing, return_exceptions=True)
            self._summaries.flush()  # what the last window counted
            logging.getLogger("aiohttp.server").removeFilter(self._bad_requests)
            if self._accept_errors is not None:
                loop = asyncio.get_running_loop()
                if loop.get_exception_handler() is self._accept_errors:
                    loop.set_exception_handler(self._accept_errors.previous)


class _GuardedSite(web.BaseSite):
    """aiohttp's TCPSite with each connection wrapped by `guard` (monitor.app.api_guard)."""

    __slots__ = ("_host", "_port", "_guard")

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: Guard) -> None:
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server), self._host, self._port, backlog=128
        )
