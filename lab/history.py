"""A generated quarter of fleet history, written through fleetmon's own code paths, for the
availability ground-truth test and benchmark.

`generate()` describes what happened, with every time on a grid (default 5 min) so that a test
can sample it exactly: the fleet (sites of one access switch and its cameras, ten townships),
outages (a dead camera, a camera with no video or no ONVIF service, a dead switch with its
cameras behind it), point-list status changes (延建 → active, active → 拆除, a site added
mid-quarter), monitoring sessions (a crash, a clean stop, a probe that stalls, a probe that
is switched off), maintenance windows (from the config and from the API, one ended early),
work-order exclusions (an excluded cause) for some outages, and a probe agent's silence (the
sites it probes are monitor-blind for a few hours, one of its cameras dead throughout).

`write()` stores it the way the daemon would: Transition objects (what each probe's tracker
would have published: hysteresis already settled, topology applied, nothing published while the
probe produced no results, UNKNOWN with the monitor-blind reason when an agent went silent, as
StateTracker.blind publishes it) through `StateDB.record`, sessions through `StateDB.start_session`,
`heartbeat` and `end_session`, probe cycles through `StateDB.probe_cycle`, statuses through
`record_inventory_statuses`, windows through `MaintenanceBook`. Those calls take their time from
the clock, so `write()` runs them on a simulated clock (`SimClock`).

Tracker semantics reproduced (monitor.state.tracker): icmp of a camera whose switch is dead is
UNREACHABLE; the rtsp and onvif trackers never poll switches (their parent's track stays
UNKNOWN), so a camera behind a dead switch is DOWN for them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Iterator, Sequence
from unittest import mock

from monitor.assess.model import Exclusion
from monitor.assess.periods import NS, Period, parse_period
from monitor.core.config_base import SelectorConfig
from monitor.core.model import Device, Kind, Status
from monitor.fleet.inventory import Inventory
from monitor.state.tracker import State, Transition, agent_silent_reason

TOWNSHIPS = ("城关镇", "河西乡", "东关镇", "南湖乡", "北山镇", "西坪乡", "石桥镇", "柳林乡", "白沙镇", "青龙乡")
HOUR = 3600 * NS
DAY = 24 * HOUR
PROBES = ("icmp", "rtsp", "onvif")


@dataclass(frozen=True, slots=True)
class Outage:
    """[start_ns, end_ns) of one device: "device" (dead: nothing answers), "video" (RTSP
    fails, the rest answers), "service" (ONVIF fails)."""

    device_id: str
    start_ns: int
    end_ns: int
    what: str


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """A daemon run: [start_ns, end_ns), end_ns being its last heartbeat; `crashed`: never
    stopped cleanly. `watched`: the daemon records probe cycles (probe_watch); `off`: probes
    not running in it; `stalls`: (probe, last cycle end, next cycle start)."""

    start_ns: int
    end_ns: int
    crashed: bool = False
    watched: bool = False
    off: tuple[str, ...] = ()
    stalls: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """A maintenance window. `created_ns`/`deleted_ns` set: an ad hoc window from the API
    (created then, deleted then); else one from the config."""

    match: SelectorConfig
    start_ns: int
    end_ns: int
    reason: str
    created_ns: int | None = None
    deleted_ns: int | None = None


@dataclass(frozen=True, slots=True)
class SilencePlan:
    """Probe agent `agent`, which probes every device of `sites`, was silent over [start_ns,
    end_ns): its devices' states go UNKNOWN (monitor blind) at the start, and take the world's
    state again at the end (its first results after the silence)."""

    agent: str
    sites: frozenset[str]
    start_ns: int
    end_ns: int


@dataclass
class Scenario:
    """What happened. `inventories`: (load time, inventory) in time order, the daemon loading
    its point list (the last one is the current point list); `joined`: when each device got its
    first verdict (it was probed from then on); `onvif`: the cameras the onvif probe polls."""

    period: Period
    grid_ns: int
    t0_ns: int
    end_ns: int
    cycle_ns: int
    grace_ns: int
    inventories: list[tuple[int, Inventory]]
    joined: dict[str, int]
    onvif: frozenset[str]
    outages: list[Outage]
    sessions: list[SessionPlan]
    windows: list[WindowPlan]
    exclusions: list[Exclusion] = field(default_factory=list)
    silences: list[SilencePlan] = field(default_factory=list)

    @property
    def inventory(self) -> Inventory:
        return self.inventories[-1][1]


def generate(
    points: int = 1850,
    period: str = "2026Q3",
    *,
    seed: int = 1,
    outages_per_camera: float = 4.0,
    outages_per_switch: float = 1.0,
    cameras_per_site: int = 24,
    grid_s: int = 300,
) -> Scenario:
    """A scenario of about `points` devices over `period` (Asia/Shanghai; must be over).
    Outage counts are Poisson-like means per device over the period."""
    rng = random.Random(seed)
    tz = "Asia/Shanghai"
    p = parse_period(period, tz)
    if p.clipped:
        raise ValueError(f"period {period} has not ended yet")
    grid = grid_s * NS
    start, end = p.start_ns, p.end_ns
    t0 = start - DAY  # fleetmon started a day before the period: every device judged by then
    days = (end - start) // DAY

    def at(day: int, hour: int = 0, minute: int = 0) -> int:
        return start + day * DAY + hour * HOUR + minute * 60 * NS

    def on_grid(ts: int) -> int:
        return t0 + (ts - t0) // grid * grid

    # -- the fleet ------------------------------------------------------------------------------
    devices: list[Device] = []
    sites = max(1, round(points / (cameras_per_site + 1)))
    address = int(ipaddress.IPv4Address("10.64.0.1"))
    for s in range(sites):
        region = TOWNSHIPS[s % len(TOWNSHIPS)]
        site = f"{region}-{s // len(TOWNSHIPS) + 1:03d}"
        sw = Device(f"SW-{s:04d}", f"{site} 交换机", Kind.SWITCH, ipaddress.IPv4Address(address), site, region)
        address += 1
        devices.append(sw)
        for c in range(cameras_per_site if s < sites - 1 else max(1, points - len(devices))):
            devices.append(Device(
                f"CAM-{s:04d}-{c:02d}", f"{site} 摄像机{c + 1}", Kind.CAMERA, ipaddress.IPv4Address(address), site,
                region, parent=sw.id,
            ))
            address += 1
    cameras = [d for d in devices if d.kind is Kind.CAMERA]
    onvif = frozenset(d.id for d in cameras if rng.random() < 0.5)

    # -- monitoring sessions ---------------------------------------------------------------------
    sessions = [
        SessionPlan(t0, at(20, 8), crashed=True),                         # kill -9; back at 16:05
        SessionPlan(at(20, 16, 5), at(45, 3)),                            # stopped for an upgrade
        SessionPlan(at(45, 5), end + DAY, watched=True, off=("onvif",),   # the new one records cycles
                    stalls=(("rtsp", at(60, 1, 5), at(60, 8)),)),
    ]

    # -- points joining and changing status ------------------------------------------------------
    new_site = sites - 2  # a site connected mid-quarter
    joined = {d.id: (at(50, 8) if d.site == devices[new_site * (cameras_per_site + 1)].site else t0) for d in devices}
    changes: dict[int, dict[str, Status]] = {t0: {}}
    statuses = {d.id: Status.ACTIVE for d in devices}
    pool = [c for c in cameras if joined[c.id] == t0]
    rng.shuffle(pool)
    construction, removed, removed_before = pool[:5], pool[5:8], pool[8]
    for cam in construction:  # 延建 at first, active mid-quarter
        statuses[cam.id] = Status.CONSTRUCTION
        changes.setdefault(on_grid(at(rng.randrange(10, 60), rng.randrange(24))), {})[cam.id] = Status.ACTIVE
    for cam in removed:  # 拆除 mid-quarter
        changes.setdefault(on_grid(at(rng.randrange(30, days - 5), rng.randrange(24))), {})[cam.id] = Status.REMOVED
    statuses[removed_before.id] = Status.REMOVED  # removed before the period
    changes.setdefault(joined[devices[new_site * (cameras_per_site + 1)].id], {})
    inventories = []
    for ts in sorted(changes):
        statuses.update(changes[ts])
        present = [replace(d, status=statuses[d.id]) for d in devices if joined[d.id] <= ts]
        inventories.append((ts, Inventory(present)))

    # -- outages ---------------------------------------------------------------------------------
    outages: list[Outage] = []

    def plan(device: Device, mean: float, kinds: Sequence[tuple[str, float]]) -> None:
        free_from = max(joined[device.id], t0 + HOUR)
        count = sum(1 for _ in range(int(mean * 4)) if rng.random() < 0.25)  # binomial, mean `mean`
        for ts in sorted(rng.randrange(free_from, end) for _ in range(count)):
            length = _length(rng)
            a = on_grid(max(ts, free_from))
            b = on_grid(min(a + length, end + DAY - HOUR)) + grid
            what = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            if what == "service" and device.id not in onvif:
                what = "video"
            outages.append(Outage(device.id, a, b, what))
            free_from = b + grid

    # Edge cases on purpose, on cameras with no other outage: one across the crash, one across
    # the period's start, one inside the first maintenance window with an excluded cause too.
    first = [c for c in cameras if joined[c.id] == t0 and c not in (*construction, *removed, removed_before)]
    maint_cam = next(c for c in first if c.region == TOWNSHIPS[1])
    crash_cam, edge_cam = [c for c in first if c is not maint_cam][:2]
    # A probe agent's sites: up to two with no status change (of one township, when there are
    # enough), one camera dead across the silence (three quarters into the period, 10:00–14:30):
    # that time is monitor-blind, never down.
    changed = {d.site for d in (*construction, *removed, removed_before)} | {devices[new_site * (cameras_per_site + 1)].site}
    quiet = sorted({c.site for c in first} - changed - {c.site for c in (maint_cam, crash_cam, edge_cam)})
    agent_sites = [s for s in quiet if s.startswith(TOWNSHIPS[8])][:2] or quiet[-1:]
    silent_cam = next((c for c in first if agent_sites and c.site == agent_sites[0]), None)
    silent_day = days * 3 // 4
    silences = [SilencePlan("forest-a", frozenset(agent_sites), at(silent_day, 10), at(silent_day, 14, 30))] \
        if silent_cam is not None else []
    outages += [
        Outage(maint_cam.id, at(10, 2), at(10, 8), "device"),
        Outage(crash_cam.id, at(20, 6), at(20, 12), "device"),
        Outage(edge_cam.id, start - 2 * HOUR, start + 3 * HOUR, "video"),
    ]
    for cam in cameras:
        if cam not in (maint_cam, crash_cam, edge_cam, silent_cam):
            plan(cam, outages_per_camera, (("device", 0.5), ("video", 0.35), ("service", 0.15)))
    for sw in (d for d in devices if d.kind is Kind.SWITCH):
        plan(sw, outages_per_switch, (("device", 1.0),))

    # -- maintenance windows ----------------------------------------------------------------------
    def sel(**kw: list) -> SelectorConfig:
        return SelectorConfig(**kw)

    some_site = lambda region: next(d.site for d in devices if d.region == region)  # noqa: E731
    windows = [
        WindowPlan(sel(region=[TOWNSHIPS[1]]), at(10, 1), at(10, 5), "河西乡光缆割接"),
        WindowPlan(sel(site=[some_site(TOWNSHIPS[4])]), at(40, 22), at(41, 6), "站点设备更换"),
        WindowPlan(sel(kind=[Kind.SWITCH]), at(55, 2), at(55, 3), "交换机固件升级"),
        WindowPlan(sel(site=[some_site(TOWNSHIPS[6])]), at(20), at(20, 6), "夜间巡检"),
        WindowPlan(sel(site=[some_site(TOWNSHIPS[6])]), at(20, 4), at(20, 10), "夜间巡检（延长）"),
        WindowPlan(sel(site=[construction[0].site]), at(5, 9), at(5, 17), "延建点位调试"),
        WindowPlan(sel(region=[TOWNSHIPS[3]]), start - 2 * HOUR, start + 3 * HOUR, "季度切换维护"),
        WindowPlan(sel(site=[some_site(TOWNSHIPS[7])]), at(62, 8), at(62, 20), "临时抢修",
                   created_ns=at(62, 7), deleted_ns=at(62, 12)),
    ]

    # -- work orders with an excluded cause: some outages of the quarter --------------------------
    in_period = [o for o in outages if o.what == "device" and start <= o.start_ns and o.end_ns <= end]
    chosen = rng.sample(in_period, min(40, len(in_period)))
    if not any(o.device_id == maint_cam.id for o in chosen):
        chosen.append(next(o for o in outages if o.device_id == maint_cam.id))
    causes = ("电力", "市政", "运营商", "人为破坏")
    exclusions = [
        Exclusion(o.device_id, o.start_ns, o.end_ns, "cause", f"WO-{i:04d} {causes[i % len(causes)]}")
        for i, o in enumerate(chosen)
    ]
    # After the exclusions are chosen: no work order takes the silent camera's outage out.
    if silent_cam is not None:
        outages.append(Outage(silent_cam.id, at(silent_day, 8), at(silent_day, 20), "device"))
    return Scenario(p, grid, t0, end + DAY, HOUR, 2 * HOUR, inventories, joined, onvif, outages, sessions, windows,
                    exclusions, silences)


def _length(rng: random.Random) -> int:
    """An outage's length: mostly minutes, some hours, a few days."""
    r = rng.random()
    if r < 0.7:
        return rng.randrange(5, 60) * 60 * NS
    if r < 0.95:
        return rng.randrange(1, 12) * HOUR
    return rng.randrange(1, 5) * DAY


# --- what the trackers would have published ------------------------------------------------------


def producing(scenario: Scenario, probe: str, device: Device) -> list[tuple[int, int]]:
    """[start, end) stretches in which `probe` delivered results for `device`: its sessions,
    minus stalls and sessions with the probe off, minus time the point was removed (the daemon
    does not probe 拆除 points), minus its agent's silences, from its first verdict on."""
    removed = _status_spans(scenario, device.id, Status.REMOVED)
    removed += [(s.start_ns, s.end_ns) for s in scenario.silences if device.site in s.sites]
    out = []
    for s in scenario.sessions:
        if probe in s.off:
            continue
        spans = [(s.start_ns, s.end_ns)]
        for p, a, b in s.stalls:
            if p == probe:
                spans = _subtract(spans, [(a, b)])
        out += _subtract(spans, removed + [(0, scenario.joined[device.id])])
    return out


def world(scenario: Scenario, device: Device, ts: int, outages: dict[str, list[Outage]]) -> dict[str, State]:
    """Each probe's verdict on `device` at `ts` (probes that poll it)."""
    def out(device_id: str | None, *what: str) -> bool:
        return device_id is not None and any(o.start_ns <= ts < o.end_ns and o.what in what for o in outages.get(device_id, ()))

    dead, parent_dead = out(device.id, "device"), out(device.parent, "device")
    states = {"icmp": State.UNREACHABLE if parent_dead else State.DOWN if dead else State.UP}
    if device.kind is Kind.CAMERA:
        failing = dead or parent_dead
        states["rtsp"] = State.DOWN if failing or out(device.id, "video") else State.UP
        if device.id in scenario.onvif:
            states["onvif"] = State.DOWN if failing or out(device.id, "service") else State.UP
    return states


def transitions(scenario: Scenario) -> Iterator[Transition]:
    """Every transition the trackers publish, device by device: a probe's first verdict at the
    device's `joined`, then a change whenever the world changed while the probe was producing,
    or at the start of a producing stretch when it changed while it was not; UNKNOWN (monitor
    blind) when its agent goes silent, if it had a verdict."""
    by_device: dict[str, list[Outage]] = {}
    for o in scenario.outages:
        by_device.setdefault(o.device_id, []).append(o)
    for device in scenario.inventory.devices.values():
        times = {scenario.joined[device.id]}
        for d in (device.id, device.parent):
            for o in by_device.get(d, ()) if d else ():
                times |= {o.start_ns, o.end_ns}
        for probe in PROBES:
            stretches = producing(scenario, probe, device)
            edges = sorted(times | {t for s in stretches for t in s})
            starts = [a for a, _ in stretches]
            silent_at = {s.start_ns: s.agent for s in scenario.silences if device.site in s.sites}
            last: State | None = None
            for ts in edges:
                if ts in silent_at and last not in (None, State.UNKNOWN):
                    yield Transition(device.id, probe, ts, last, State.UNKNOWN, agent_silent_reason(silent_at[ts]))
                    last = State.UNKNOWN
                i = bisect_right(starts, ts) - 1
                if i < 0 or ts >= stretches[i][1]:
                    continue  # not producing: the tracker holds its state
                state = world(scenario, device, ts, by_device).get(probe)
                if state is None:
                    break  # the probe does not poll this device
                if state is not last:
                    yield Transition(device.id, probe, ts, last or State.UNKNOWN, state, None)
                    last = state


def _status_spans(scenario: Scenario, device_id: str, status: Status) -> list[tuple[int, int]]:
    spans, since, current = [], None, None
    for ts, inventory in scenario.inventories:
        device = inventory.devices.get(device_id)
        now = device.status if device else None
        if now is not current:
            if current is status:
                spans.append((since, ts))
            since, current = ts, now
    if current is status:
        spans.append((since if since is not None else 0, 2**62))
    return spans


def _subtract(spans: list[tuple[int, int]], cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    for ca, cb in cuts:
        out = []
        for a, b in spans:
            if cb <= a or b <= ca:
                out.append((a, b))
                continue
            if a < ca:
                out.append((a, ca))
            if cb < b:
                out.append((cb, b))
        spans = out
    return spans


# --- writing it ------------------------------------------------------------------------------------


class SimClock:
    """Stands in for the `time` module of the modules `write()` drives: time_ns() is whatever
    the simulation says it is."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def time_ns(self) -> int:
        return self.now_ns


@contextlib.contextmanager
def simulated(clock: SimClock) -> Iterator[None]:
    import monitor.state.db
    import rules.alerting.maintenance

    with mock.patch.object(monitor.state.db, "time", clock), mock.patch.object(rules.alerting.maintenance, "time", clock):
        yield


async def write(scenario: Scenario, db, batch: int = 20_000) -> int:
    """Store the scenario in an open StateDB; returns the number of transitions stored."""
    from monitor.assess.records import record_inventory_statuses
    from rules.alerting.config import MaintenanceWindowConfig
    from rules.alerting.maintenance import MaintenanceBook

    clock = SimClock(scenario.t0_ns)
    with simulated(clock):
        for ts, inventory in scenario.inventories:
            await record_inventory_statuses(db, inventory, ts)
        for s in scenario.sessions:
            clock.now_ns = s.start_ns
            await db.start_session(len(scenario.inventory.devices))
            if s.watched:
                for probe in (p for p in PROBES if p not in s.off):
                    stalls = [(a, b) for p, a, b in s.stalls if p == probe]
                    ts = s.start_ns
                    while ts + 5 * 60 * NS <= s.end_ns:
                        if not any(a < ts + 5 * 60 * NS and ts < b for a, b in stalls):
                            await db.probe_cycle(probe, ts, ts + 5 * 60 * NS, scenario.grace_ns)
                        ts += scenario.cycle_ns
            clock.now_ns = s.end_ns
            await db.heartbeat()
            if not s.crashed:
                await db.end_session()
        configured = [
            MaintenanceWindowConfig(match=w.match, start=_dt(w.start_ns), end=_dt(w.end_ns), reason=w.reason)
            for w in scenario.windows if w.created_ns is None
        ]
        book = await MaintenanceBook.load(db, scenario.inventory, configured)
        for w in (w for w in scenario.windows if w.created_ns is not None):
            clock.now_ns = w.created_ns
            window = await book.create(w.match, w.start_ns, w.end_ns, w.reason, "值班员")
            if w.deleted_ns is not None:
                clock.now_ns = w.deleted_ns
                await book.delete(window.id)
    count, pending = 0, []
    for t in transitions(scenario):
        pending.append(t)
        if len(pending) >= batch:
            await db.record(pending)
            count, pending = count + len(pending), []
    await db.record(pending)
    return count + len(pending)


def _dt(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns // NS, timezone.utc)
