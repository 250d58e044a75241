"""Availability over a period (考核在线率): for every point, and every group of points (fleet,
region, site, each for all kinds and per kind), the share of time it was online on each basis
(network, service, video, picture 画面正常 and the contract's online, see
monitor.state.availability), from the stored transitions. The picture basis applies to the
points the frame check judged with vqd on (its tracker's transitions, stored as probe
"picture"); online counts it where `online_requires` lists it, as the live rates do.

Every moment of a point's time in the period is one of (per basis):
- **excluded**, whatever its state, for the highest of: its status was 延建/拆除 (point_status
  history), a maintenance window matched it, an `Exclusion` given by the caller (a work order
  with an excluded cause: 市政, 电力, 人为破坏, 不可抗力, 运营商, 采购方原因) covered it;
- **unknown**: *blind* (no monitoring session, i.e. before a session started or after its last
  heartbeat; or a probe of the basis stalled, see monitor.assess.records), *agent silent* (the
  probe agent watching the point was silent: monitor blind, 探测代理失联, from the transition
  StateTracker.blind stored to the point's next one) or *undecided* (the stored state is
  UNKNOWN otherwise); never silently up or down: `unknown_policy` decides;
- **counted**: up, down, or unreachable (behind a dead parent: the camera is not online
  either, so it counts as offline; its time is kept apart as well).
Before a point's first stored evidence (first transition or status row) it was not a point yet:
that time is in no bucket.

A probe joins a point's basis at its first verdict on it; in a session where probe cycles are
recorded (probe_watch), a probe that did not run is not part of any basis.

Definitions (`assessment.availability.definition`):
- point_time: rate = up ÷ (up + down + unreachable) over the summed times of the points;
- daily_snapshot: at each daily check instant the rate is (points up) ÷ (points counted); the
  period's rate is the mean over the instants that had a counted point. With the default
  checks on every day of the period this is the mean of the daily rates.
With `count_as_up`/`count_as_down`, unknown time (or an unknown check) is added to the
denominator, and for count_as_up to the numerator.

Group figures are sums over the group's points, so points and groups agree by construction;
a group's daily_snapshot rate is computed from the same per-instant counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from array import array
import itertools
import operator
from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter
from typing import Collection, Iterable, NamedTuple, Sequence

from monitor.assess.config import AvailabilityAssessmentConfig, Definition, UnknownPolicy
from monitor.assess.history import PROBE_ORDER, History, load_history
from monitor.assess.model import Exclusion
from monitor.assess.periods import NS, Period, check_instants, format_local
from monitor.assess.timeline import (
    B_BLIND,
    B_CAUSE,
    B_SILENT,
    B_DOWN,
    B_MAINTENANCE,
    B_STATUS,
    B_UNDECIDED,
    B_UNREACHABLE,
    B_UP,
    BASES,
    BUCKETS,
    C_EXCLUDED,
    C_OFFLINE,
    C_UNKNOWN,
    C_UP,
    CHECK_BUCKETS,
    DOWN,
    EXCLUSION_KINDS,
    UNREACHABLE,
    Tally,
    coverage,
    epochs_of,
    exclusion_layer,
    paint,
    sweep,
    tables,
)
from monitor.core.model import Basis, Device, Selector
from monitor.fleet.inventory import Inventory
from monitor.state.availability import PICTURE
from monitor.state.db import StateDB
from monitor.state.tracker import State, silent_agent_of

ALL = "all"
_OFFLINE_STATE = {DOWN: State.DOWN, UNREACHABLE: State.UNREACHABLE}


class AvailabilityError(ValueError):
    """Bad input to an availability computation; `messages` lists every problem, one line each."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


@dataclass(frozen=True, slots=True)
class Figures:
    """One basis of a point, or summed over a group's points, over the period.

    Times in ns, disjoint: up, down, unreachable (counted); undecided (state unknown), blind (not
    watched by fleetmon), agent_silent (monitor blind: the point's probe agent was silent)
    (unknown); excluded for status (延建/拆除), maintenance, cause (a work order's
    excluded cause); each excluded moment is in one bucket only (status before maintenance
    before cause). checks_*: daily check instants (point × instant for groups) by class, for
    daily_snapshot. rate_pct: the online rate in % by the configured definition and unknown
    policy, None when nothing was counted. rate_parts: (numerator, denominator) it was
    divided from, under the unknown policy: ns for point_time, checks for daily_snapshot; None
    for a group's daily_snapshot rate (a mean over instants, see GroupAvailability.checks)."""

    up_ns: int = 0
    down_ns: int = 0
    unreachable_ns: int = 0
    undecided_ns: int = 0
    blind_ns: int = 0
    excluded_status_ns: int = 0
    excluded_maintenance_ns: int = 0
    excluded_cause_ns: int = 0
    checks_up: int = 0
    checks_offline: int = 0
    checks_unknown: int = 0
    checks_excluded: int = 0
    rate_pct: float | None = None
    rate_parts: tuple[int, int] | None = None
    agent_silent_ns: int = 0

    @property
    def offline_ns(self) -> int:
        return self.down_ns + self.unreachable_ns

    @property
    def counted_ns(self) -> int:
        return self.up_ns + self.down_ns + self.unreachable_ns

    @property
    def unknown_ns(self) -> int:
        return self.undecided_ns + self.blind_ns + self.agent_silent_ns

    @property
    def excluded_ns(self) -> int:
        return self.excluded_status_ns + self.excluded_maintenance_ns + self.excluded_cause_ns

    @property
    def span_ns(self) -> int:
        """All of the time the basis applied to the point(s) in the period."""
        return self.counted_ns + self.unknown_ns + self.excluded_ns

    def as_dict(self) -> dict[str, float | int | None]:
        """For JSON: times in seconds (ms precision), counts, the rate."""
        out: dict[str, float | int | None] = {
            name[:-3] + "_s": round(getattr(self, name) / NS, 3)
            for name in (
                "up_ns", "down_ns", "unreachable_ns", "offline_ns", "counted_ns", "undecided_ns", "blind_ns",
                "agent_silent_ns", "unknown_ns", "excluded_status_ns", "excluded_maintenance_ns", "excluded_cause_ns", "excluded_ns",
                "span_ns",
            )
        }
        out.update(
            checks_up=self.checks_up, checks_offline=self.checks_offline, checks_unknown=self.checks_unknown,
            checks_excluded=self.checks_excluded, rate_pct=self.rate_pct,
            rate_parts=list(self.rate_parts) if self.rate_parts is not None else None,
        )
        return out


class Outage(NamedTuple):
    """Counted offline time of a point on a basis: [start_ns, end_ns), down or unreachable.
    The evidence behind down_ns + unreachable_ns (they sum to exactly that). A named tuple: a
    quarter of a large fleet has hundreds of thousands."""

    start_ns: int
    end_ns: int
    state: State


@dataclass(frozen=True, slots=True)
class PointAvailability:
    """One point: `figures` per basis that applied to it in the period (online always),
    `exclusions` in force during the period, clipped to it (kind "status", "maintenance" or
    "cause"; they may overlap: `figures` count the time once), and `outages(basis)`."""

    device: Device
    figures: dict[Basis, Figures]
    exclusions: tuple[Exclusion, ...]
    offline: dict[Basis, array]  # flat start, end, class (timeline codes): see outages()

    def outages(self, basis: Basis = Basis.ONLINE) -> tuple[Outage, ...]:
        """The counted offline intervals on `basis` (the minutes behind its down and
        unreachable time), in time order; () when the basis did not apply."""
        flat = self.offline.get(basis, array("q"))
        return tuple(Outage(flat[i], flat[i + 1], _OFFLINE_STATE[flat[i + 2]]) for i in range(0, len(flat), 3))

    def longest_outage_ns(self, basis: Basis = Basis.ONLINE) -> int:
        """The longest stretch of counted offline time on `basis`, down and unreachable joined
        where one follows the other (one fault, e.g. Zhangjiagang's "单一故障发生时间"); 0 when
        none."""
        longest, start, end = 0, None, None
        for outage in self.outages(basis):
            if outage.start_ns != end:
                start = outage.start_ns
            end = outage.end_ns
            longest = max(longest, end - start)
        return longest


@dataclass(frozen=True, slots=True)
class GroupAvailability:
    """A group of points: scope "fleet" | "region" | "site", `group` its name ("all" for the
    fleet), `kind` a device kind or "all"; `figures` are the sums of its points' (a basis is
    present when it applied to one of them); `checks` (daily_snapshot): per check instant and
    basis, (points online, points counted) under the unknown policy."""

    scope: str
    group: str
    kind: str
    points: int
    figures: dict[Basis, Figures]
    checks: dict[Basis, tuple[tuple[int, int], ...]]


@dataclass(frozen=True, slots=True)
class CoverageGap:
    """Time in the period when fleetmon was not watching: `probe` None = no monitoring session
    at all ("not running"), else that probe stalled inside a session ("stalled"); or when probe
    agent `agent` was silent ("agent silent", probe None: its devices, every probe), from its
    blind transitions to the first of its devices' next ones (it was heard again then; each
    point's own figures count to its own next transition)."""

    probe: str | None
    start_ns: int
    end_ns: int
    reason: str
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    """Availability of the selected points over `period`. `points` in inventory order;
    `groups` fleet first, then regions and sites by name, each "all" kinds first;
    `check_instants_ns` the daily checks (daily_snapshot only); `gaps` when fleetmon was not
    watching (the time since the last heartbeat of a running daemon included); `notes` for people (a clipped period …)."""

    period: Period
    definition: Definition
    unknown_policy: UnknownPolicy
    online_requires: tuple[Basis, ...]
    check_instants_ns: tuple[int, ...]
    points: dict[str, PointAvailability]
    groups: tuple[GroupAvailability, ...]
    gaps: tuple[CoverageGap, ...]
    notes: tuple[str, ...]

    def group(self, scope: str = "fleet", group: str = ALL, kind: str = ALL) -> GroupAvailability:
        """A group's figures. KeyError when no selected point is in it."""
        for g in self.groups:
            if (g.scope, g.group, g.kind) == (scope, group, kind):
                return g
        raise KeyError((scope, group, kind))


async def availability(
    db: StateDB,
    inventory: Inventory,
    period: Period,
    config: AvailabilityAssessmentConfig,
    *,
    online_requires: Sequence[Basis],
    exclusions: Iterable[Exclusion] = (),
    device_ids: Collection[str] | None = None,
    selector: Selector | None = None,
) -> AvailabilityReport:
    """Availability of the points of `inventory` (or those in `device_ids` and/or matching
    `selector`) over `period`, by `config` (assessment.availability) and `online_requires`
    (availability.online_requires: what "online" means, as for the live rates).

    `exclusions`: time taken out of the assessment by the caller, e.g. the downtime of work
    orders with an excluded cause (WorkOrderBook.excluded; kind "cause", "maintenance" and
    "status" are accepted too). Two of them for the same point must not overlap: the same
    downtime excluded twice means two orders claim it; maintenance windows, on the other hand,
    may overlap each other and anything else (time is excluded once). One naming a point no
    longer in the point list is left out, and a note says how many were.

    Reads the state database on its thread and computes on a worker thread. Raises
    AvailabilityError (nothing read) for an unknown device id, a selection matching no point,
    or a bad exclusion (end not after start, unknown kind, overlap)."""
    checked = check_inputs(inventory, period, device_ids, selector, exclusions)
    ids = [d.id for d in checked.devices]
    history = await db.execute(lambda conn: load_history(conn, ids, period.start_ns, period.end_ns))
    return await asyncio.to_thread(
        compute, history, checked.devices, period, config, tuple(online_requires), checked.exclusions, checked.notes
    )


class Checked(NamedTuple):
    """Inputs found good: the selected points in inventory order, the exclusions by point,
    notes for people about what was left out."""

    devices: list[Device]
    exclusions: dict[str, list[Exclusion]]
    notes: list[str]


def check_inputs(
    inventory: Inventory,
    period: Period,
    device_ids: Collection[str] | None,
    selector: Selector | None,
    exclusions: Iterable[Exclusion],
) -> Checked:
    """The inputs of `availability` checked. Raises AvailabilityError with every problem."""
    problems = []
    if device_ids is not None:
        problems += [f"unknown device: {d}" for d in device_ids if d not in inventory.devices]
    devices = [
        d for d in inventory.devices.values()
        if (device_ids is None or d.id in device_ids) and (selector is None or selector.matches(d))
    ]
    if not devices and not problems:
        problems.append("no point of the inventory matches the selection")

    def when(ts: int) -> str:
        return format_local(ts, period.timezone)

    given: dict[str, list[tuple[int, Exclusion]]] = defaultdict(list)
    gone = 0
    for i, e in enumerate(exclusions):
        where = f"exclusion {i} ({e.device_id}, {e.reason!r})"
        if e.end_ns <= e.start_ns:
            problems.append(f"{where}: end {when(e.end_ns)} is not after start {when(e.start_ns)}")
        elif e.kind not in EXCLUSION_KINDS:
            problems.append(f"{where}: kind {e.kind!r} is not one of {', '.join(EXCLUSION_KINDS)}")
        elif e.device_id not in inventory.devices:
            gone += 1  # an order of a point since taken off the point list: nothing to exclude from
        else:
            given[e.device_id].append((i, e))
    for device_id, items in given.items():
        items.sort(key=lambda x: (x[1].start_ns, x[1].end_ns))
        for (i, a), (j, b) in itertools.pairwise(items):
            if b.start_ns < a.end_ns:
                problems.append(
                    f"exclusions {i} ({a.reason!r}, {when(a.start_ns)} – {when(a.end_ns)}) and {j} ({b.reason!r}, "
                    f"{when(b.start_ns)} – {when(b.end_ns)}) overlap on {device_id}: the same time would be excluded "
                    "twice; correct or merge them"
                )
    if problems:
        raise AvailabilityError(problems)
    notes = [f"{gone} exclusion(s) name points that are not in the point list: left out"] if gone else []
    return Checked(devices, {d: [e for _, e in items] for d, items in given.items()}, notes)


def compute(
    history: History,
    devices: Sequence[Device],
    period: Period,
    config: AvailabilityAssessmentConfig,
    online_requires: tuple[Basis, ...],
    exclusions: dict[str, list[Exclusion]],
    notes: Sequence[str] = (),
) -> AvailabilityReport:
    """The report from evidence already read (`availability` checks the inputs); `notes` from
    the check are kept."""
    start, end = period.start_ns, period.end_ns
    t = tables(online_requires, config.unknown_policy)
    snapshot = config.definition is Definition.DAILY_SNAPSHOT
    instants = check_instants(period, config.check_minutes()) if snapshot else ()
    n = len(PROBE_ORDER)

    epochs, changes = epochs_of(coverage(history, start, end))
    epoch_events = [(None, ts, n, index) for ts, index in changes[1:]]
    windows = [(w, w.match.selector()) for w in history.windows]

    # Leaves: (region, site, kind); groups are sums of leaves.
    leaf_time: dict[tuple[str, str, str], list[int]] = {}
    leaf_checks: dict[tuple[str, str, str], list[int]] = {}
    leaf_ratio: dict[tuple[str, str, str], list[list[int]]] = {}
    leaf_points: dict[tuple[str, str, str], int] = defaultdict(int)
    leaf_bases: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    points: dict[str, PointAvailability] = {}
    for device in devices:
        pieces, evidence = exclusion_layer(device, history, start, end, windows, exclusions.get(device.id, ()))
        layer = paint(start, end, pieces)
        events = history.changes.get(device.id, []) + epoch_events + [(None, ts, n + 1, code) for ts, code in layer[1:]]
        events.sort(key=itemgetter(1))  # stable: a device's changes stay in stored order
        leaf = (device.region, device.site, device.kind.value)
        if leaf not in leaf_time:
            leaf_time[leaf] = [0] * (len(BASES) * BUCKETS)
            leaf_checks[leaf] = [0] * (len(BASES) * CHECK_BUCKETS)
            leaf_ratio[leaf] = [[0] * (len(instants) + 1) for _ in range(2 * len(BASES))] if snapshot else []
        tally = sweep(
            start, end, history.initial[device.id], changes[0][1], layer[0][1], events, t, epochs, instants,
            leaf_ratio[leaf] if snapshot else None,
        )
        leaf_time[leaf] = list(map(operator.add, leaf_time[leaf], tally.time))
        leaf_checks[leaf] = list(map(operator.add, leaf_checks[leaf], tally.checks))
        leaf_points[leaf] += 1
        applied = _applied(tally)
        leaf_bases[leaf].update(applied)
        points[device.id] = PointAvailability(
            device,
            {BASES[b]: _figures(tally.time, tally.checks, b, config) for b in applied},
            tuple(evidence),
            {BASES[b]: tally.offline[b] for b in applied},
        )

    groups = _groups(leaf_time, leaf_checks, leaf_ratio, leaf_points, leaf_bases, config, len(instants))
    notes = ([period.note] if period.note else []) + list(notes)
    gaps = coverage_gaps(history, start, end)
    blind = sum(g.end_ns - g.start_ns for g in gaps if g.reason == "not running")
    if blind:
        notes.append(f"fleetmon was not running for {blind / NS / 3600:.2f} h of the period: that time is unknown")
    for g in gaps:
        if g.reason == "since the last heartbeat":
            notes.append(
                f"fleetmon's last heartbeat was at {format_local(g.start_ns, period.timezone)}: the "
                f"{(g.end_ns - g.start_ns) / NS:.0f} s since are unknown"
            )
    for g in gaps:
        if g.reason == "agent silent":
            notes.append(f"probe agent {g.agent} was silent from {format_local(g.start_ns, period.timezone)} for "
                         f"{(g.end_ns - g.start_ns) / NS / 60:.1f} min: its points' state then is unknown (monitor blind)")
    missing = sum(1 for d in devices if history.first_seen[d.id] is None)
    if missing:
        notes.append(f"{missing} point(s) have no stored evidence at all (never judged, no status recorded)")
    return AvailabilityReport(
        period, config.definition, config.unknown_policy, online_requires, instants, points, groups, gaps, tuple(notes)
    )


def _applied(tally: Tally) -> list[int]:
    """Indexes of the bases that applied to the point at some time (online always)."""
    online = BASES.index(Basis.ONLINE)
    return [
        b for b in range(len(BASES))
        if b == online
        or any(tally.time[b * BUCKETS: (b + 1) * BUCKETS])
        or any(tally.checks[b * CHECK_BUCKETS: (b + 1) * CHECK_BUCKETS])
    ]


def _figures(time: Sequence[int], checks: Sequence[int], b: int, config: AvailabilityAssessmentConfig) -> Figures:
    """Figures of basis index `b` from flat buckets, the rate by the definition: of the times,
    or of the point's checks (a group's daily_snapshot rate is set by `_groups`)."""
    tb, cb = time[b * BUCKETS: (b + 1) * BUCKETS], checks[b * CHECK_BUCKETS: (b + 1) * CHECK_BUCKETS]
    if config.definition is Definition.POINT_TIME:
        up, offline, unknown = tb[B_UP], tb[B_DOWN] + tb[B_UNREACHABLE], tb[B_UNDECIDED] + tb[B_BLIND] + tb[B_SILENT]
    else:
        up, offline, unknown = cb[C_UP], cb[C_OFFLINE], cb[C_UNKNOWN]
    num, den = _parts(up, offline, unknown, config.unknown_policy)
    return Figures(
        tb[B_UP], tb[B_DOWN], tb[B_UNREACHABLE], tb[B_UNDECIDED], tb[B_BLIND], tb[B_STATUS], tb[B_MAINTENANCE],
        tb[B_CAUSE], cb[C_UP], cb[C_OFFLINE], cb[C_UNKNOWN], cb[C_EXCLUDED], 100.0 * num / den if den else None,
        (num, den), tb[B_SILENT],
    )


def _parts(up: int, offline: int, unknown: int, policy: UnknownPolicy) -> tuple[int, int]:
    """(online, counted) under the unknown policy."""
    if policy is UnknownPolicy.COUNT_AS_UP:
        up += unknown
    elif policy is UnknownPolicy.COUNT_AS_DOWN:
        offline += unknown
    return up, up + offline


def _groups(
    leaf_time: dict[tuple[str, str, str], list[int]],
    leaf_checks: dict[tuple[str, str, str], list[int]],
    leaf_ratio: dict[tuple[str, str, str], list[list[int]]],
    leaf_points: dict[tuple[str, str, str], int],
    leaf_bases: dict[tuple[str, str, str], set[int]],
    config: AvailabilityAssessmentConfig,
    instants: int,
) -> tuple[GroupAvailability, ...]:
    members: dict[tuple[str, str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for leaf in leaf_time:
        region, site, kind = leaf
        for key in (("fleet", ALL), ("region", region), ("site", site)):
            members[(*key, ALL)].append(leaf)
            members[(*key, kind)].append(leaf)
    # Per-instant counts of each leaf: its difference arrays summed up.
    per_instant = {
        leaf: [list(itertools.accumulate(diff[:instants])) for diff in ratio] for leaf, ratio in leaf_ratio.items()
    }
    order = {"fleet": 0, "region": 1, "site": 2}
    out = []
    for key in sorted(members, key=lambda k: (order[k[0]], k[1], k[2] != ALL, k[2])):
        leaves = members[key]
        time = _sum(leaf_time[leaf] for leaf in leaves)
        checks = _sum(leaf_checks[leaf] for leaf in leaves)
        bases = sorted(set().union(*(leaf_bases[leaf] for leaf in leaves)))
        figures, series = {}, {}
        for b in bases:
            figures[BASES[b]] = _figures(time, checks, b, config)
            if config.definition is Definition.DAILY_SNAPSHOT:
                num = _sum(per_instant[leaf][2 * b] for leaf in leaves) if instants else []
                den = _sum(per_instant[leaf][2 * b + 1] for leaf in leaves) if instants else []
                rates = [u / c for u, c in zip(num, den) if c]
                rate = 100.0 * sum(rates) / len(rates) if rates else None
                figures[BASES[b]] = dataclasses.replace(figures[BASES[b]], rate_pct=rate, rate_parts=None)
                series[BASES[b]] = tuple(zip(num, den))
        out.append(GroupAvailability(*key, sum(leaf_points[leaf] for leaf in leaves), figures, series))
    return tuple(out)


def _sum(lists: Iterable[list[int]]) -> list[int]:
    it = iter(lists)
    total = list(next(it))
    for values in it:
        total = list(map(operator.add, total, values))
    return total


def coverage_gaps(history: History, start: int, end: int) -> tuple[CoverageGap, ...]:
    """When nobody watched: no session (probe None: "not running", or "since the last
    heartbeat" of a session that has not stopped, the daemon maybe still running), or a probe
    stalled inside one ("stalled")."""
    sessions = [(s, last, 1) for _, s, last in history.sessions]
    gaps = [
        CoverageGap(None, a, b, "since the last heartbeat" if a == history.open_heartbeat_ns else "not running")
        for (a, code), (b, _) in itertools.pairwise(paint(start, end, sessions) + [(end, 0)])
        if code == 0 and b > a
    ]
    for probe in PROBE_ORDER:
        if probe == PICTURE:
            continue  # its cycles are the frame check's (one stall, said once, under rtsp_frame)
        seen = [(w.start_ns, w.end_ns, 2) for w in history.watches if w.probe == probe]
        if not seen:
            continue  # a probe that never ran in a recorded session is off, not stalled
        runs = {w.session_id for w in history.watches if w.probe == probe}
        inside = [(s, last, 1) for sid, s, last in history.sessions if sid in runs]
        gaps += [
            CoverageGap(probe, a, b, "stalled")
            for (a, code), (b, _) in itertools.pairwise(paint(start, end, inside + seen) + [(end, 0)])
            if code == 1 and b > a
        ]
    gaps += agent_silences(history, start, end)
    return tuple(sorted(gaps, key=lambda g: (g.start_ns, g.probe or "", g.agent or "")))


def agent_silences(history: History, start: int, end: int) -> list[CoverageGap]:
    """The silences of probe agents over [start, end): per agent and moment it went silent
    (its blind transitions share it), until the first next transition of one of its devices
    (the agent was heard again), the period's end while none has one."""
    begun: dict[tuple[str, int], int] = {}  # (agent, silent since) → end
    for reason, device_id, slot, ts in history.silences:
        agent = silent_agent_of(reason)
        if agent is None:
            continue
        after = next((t for _, t, s, _ in history.changes.get(device_id, ()) if s == slot and t > ts), end)
        key = (agent, ts)
        begun[key] = min(begun.get(key, end), after)
    return [
        CoverageGap(None, max(ts, start), stop, "agent silent", agent)
        for (agent, ts), stop in begun.items() if stop > max(ts, start)
    ]
