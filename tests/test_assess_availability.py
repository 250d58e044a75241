"""Availability over a period, case by case, on hand-made histories with hand-computed figures.

Times are in seconds from an origin inside 2026; the state database is real, sessions and
windows go through StateDB / MaintenanceBook on the simulated clock of lab/history.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lab.history import SimClock, simulated
from monitor.assess.availability import AvailabilityError, availability
from monitor.assess.config import AvailabilityAssessmentConfig
from monitor.assess.model import Exclusion
from monitor.assess.periods import NS, Period
from monitor.assess.records import record_inventory_statuses
from monitor.core.config_base import SelectorConfig
from monitor.core.model import Basis, Device, Kind, Selector, Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.tracker import State, Transition
from rules.alerting.maintenance import MaintenanceBook
from tests.plugins.factories import device

T0 = 1_790_000_000 * NS  # 2026-09-22, a moment in the past: every period here has ended
H = 3600
NET_VIDEO = [Basis.NETWORK, Basis.VIDEO]


def s(seconds: float) -> int:
    return T0 + int(seconds * NS)


def dev(i: str, kind=Kind.CAMERA, parent=None, site="S1", region="R1", status=Status.ACTIVE) -> Device:
    return device(i, kind, site=site, region=region, parent=parent, status=status)


def tr(device: str, probe: str, at: float, old: str, new: str) -> Transition:
    return Transition(device, probe, s(at), State(old), State(new), None)


def period(start: float = 0, end: float = 10 * H) -> Period:
    return Period("test", "custom", s(start), s(end), "Asia/Shanghai")


def config(**kw) -> AvailabilityAssessmentConfig:
    return AvailabilityAssessmentConfig(**kw)


class Fleet:
    """A state database with sessions, written on a simulated clock."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.clock = SimClock(T0)

    async def session(self, start: float, end: float, crashed: bool = False) -> int:
        with simulated(self.clock):
            self.clock.now_ns = s(start)
            sid = await self.db.start_session(3)
            self.clock.now_ns = s(end)
            await self.db.heartbeat()
            if not crashed:
                await self.db.end_session()
        return sid

    async def record(self, *transitions: Transition) -> None:
        await self.db.record(transitions)


@pytest.fixture
async def fleet(tmp_path):
    async with StateDB(tmp_path / "state.db") as db:
        yield Fleet(db)


def inventory(*devices: Device) -> Inventory:
    return Inventory(devices)


def seconds(figures, name: str) -> float:
    return getattr(figures, name) / NS


async def test_camera_behind_a_dead_switch_is_offline_and_its_unreachable_time_is_kept_apart(fleet):
    inv = inventory(dev("SW", Kind.SWITCH), dev("C1", parent="SW"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("SW", "icmp", -H, "unknown", "up"), tr("C1", "icmp", -H, "unknown", "up"),
        tr("C1", "rtsp", -H, "unknown", "up"),
        tr("SW", "icmp", 2 * H, "up", "down"), tr("C1", "icmp", 2 * H, "up", "unreachable"),
        tr("C1", "rtsp", 2 * H, "up", "down"),  # the rtsp tracker does not know the switch
        tr("SW", "icmp", 3 * H, "down", "up"), tr("C1", "icmp", 3 * H, "unreachable", "up"),
        tr("C1", "rtsp", 3.5 * H, "down", "up"),  # video back half an hour later
    )
    report = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    cam = report.points["C1"]
    online, video, network = cam.figures[Basis.ONLINE], cam.figures[Basis.VIDEO], cam.figures[Basis.NETWORK]
    assert (seconds(online, "up_ns"), seconds(online, "unreachable_ns"), seconds(online, "down_ns")) == (8.5 * H, H, 0.5 * H)
    assert online.rate_pct == pytest.approx(85.0)
    assert (seconds(video, "unreachable_ns"), seconds(video, "down_ns")) == (H, 0.5 * H)
    assert (seconds(network, "unreachable_ns"), network.rate_pct) == (H, 90.0)
    assert Basis.SERVICE not in cam.figures  # no onvif verdict: the basis does not apply
    assert [(o.start_ns, o.end_ns, o.state) for o in cam.outages(Basis.ONLINE)] == [
        (s(2 * H), s(3 * H), State.UNREACHABLE), (s(3 * H), s(3.5 * H), State.DOWN),
    ]
    assert cam.longest_outage_ns(Basis.ONLINE) == 1.5 * H * NS  # one fault: unreachable, then down
    assert online.rate_parts == (8.5 * H * NS, 10 * H * NS)
    sw = report.points["SW"].figures[Basis.ONLINE]
    assert (seconds(sw, "down_ns"), sw.rate_pct) == (H, 90.0)
    fleet_online = report.group().figures[Basis.ONLINE]
    assert fleet_online.up_ns == online.up_ns + sw.up_ns
    assert fleet_online.rate_pct == pytest.approx(100 * (8.5 + 9) / 20)
    assert report.group("site", "S1", "camera").figures[Basis.ONLINE] == online


async def test_online_requires_decides_what_online_means(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", "rtsp", 1 * H, "up", "down"), tr("C1", "rtsp", 3 * H, "down", "up"),
    )
    both = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    ping = await availability(fleet.db, inv, period(), config(), online_requires=[Basis.NETWORK])
    assert both.points["C1"].figures[Basis.ONLINE].rate_pct == 80.0
    assert ping.points["C1"].figures[Basis.ONLINE].rate_pct == 100.0


async def test_time_fleetmon_did_not_watch_is_unknown_and_the_policy_decides(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 4 * H, crashed=True)  # last heartbeat at 4 h
    await fleet.session(6 * H, 11 * H)            # back at 6 h: 2 h blind
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", "icmp", 8 * H, "up", "down"), tr("C1", "rtsp", 8 * H, "up", "down"),
        tr("C1", "icmp", 9 * H, "down", "up"), tr("C1", "rtsp", 9 * H, "down", "up"),
    )
    rates = {}
    for policy in ("exclude", "count_as_up", "count_as_down"):
        report = await availability(fleet.db, inv, period(), config(unknown_policy=policy), online_requires=NET_VIDEO)
        online = report.points["C1"].figures[Basis.ONLINE]
        assert (seconds(online, "blind_ns"), seconds(online, "undecided_ns")) == (2 * H, 0)
        assert (seconds(online, "up_ns"), seconds(online, "down_ns")) == (7 * H, H)
        rates[policy] = online.rate_pct
    assert rates == {"exclude": 100 * 7 / 8, "count_as_up": 100 * 9 / 10, "count_as_down": 100 * 7 / 10}
    assert [(g.probe, g.start_ns, g.end_ns, g.reason) for g in report.gaps] == [(None, s(4 * H), s(6 * H), "not running")]
    assert any("not running for 2.00 h" in n for n in report.notes)


async def test_after_the_last_heartbeat_of_a_running_daemon_is_unknown_and_said_so(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 9.5 * H, crashed=True)  # no end_session: running (or crashed, not yet restarted)
    await fleet.record(tr("C1", "icmp", -H, "unknown", "up"))
    report = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    assert seconds(report.points["C1"].figures[Basis.ONLINE], "blind_ns") == 0.5 * H
    assert [(g.start_ns, g.end_ns, g.reason) for g in report.gaps] == [(s(9.5 * H), s(10 * H), "since the last heartbeat")]
    assert report.notes == ("fleetmon's last heartbeat was at 2026-09-22 07:43:20: the 1800 s since are unknown",)


async def test_an_undecided_probe_is_unknown_not_blind(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 11 * H)
    # The first start: icmp decided at once, rtsp only at 1 h (state unknown before).
    await fleet.record(tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", H, "unknown", "up"))
    report = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    online = report.points["C1"].figures[Basis.ONLINE]
    # Before rtsp's first verdict video does not apply yet: online is the network's.
    assert (seconds(online, "up_ns"), online.unknown_ns) == (10 * H, 0)
    assert seconds(report.points["C1"].figures[Basis.VIDEO], "span_ns") == 9 * H


async def test_excluded_time_is_counted_once_status_before_maintenance_before_cause(fleet):
    c1 = dev("C1")
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", "icmp", 1 * H, "up", "down"), tr("C1", "rtsp", 1 * H, "up", "down"),
        tr("C1", "icmp", 5 * H, "down", "up"), tr("C1", "rtsp", 5 * H, "down", "up"),
    )
    # 延建 until 2 h, then active.
    await record_inventory_statuses(fleet.db, inventory(replace(c1, status=Status.CONSTRUCTION)), s(-H))
    await record_inventory_statuses(fleet.db, inventory(c1), s(2 * H))
    # Two overlapping windows 1:30–3:00 and 2:30–3:30 (fine), and a power cut 3:00–4:30.
    with simulated(fleet.clock):
        fleet.clock.now_ns = s(0)
        book = await MaintenanceBook.load(fleet.db, inventory(c1), [])
        await book.create(SelectorConfig(site=["S1"]), s(1.5 * H), s(3 * H), "巡检", "张工")
        await book.create(SelectorConfig(kind=["camera"]), s(2.5 * H), s(3.5 * H), "巡检延长", "张工")
    cut = Exclusion("C1", s(3 * H), s(4.5 * H), "cause", "WO-0007 电力")
    report = await availability(fleet.db, inventory(c1), period(), config(), online_requires=NET_VIDEO,
                                exclusions=[cut])
    online = report.points["C1"].figures[Basis.ONLINE]
    assert seconds(online, "excluded_status_ns") == 2 * H          # 0–2 h (the first hour of it down)
    assert seconds(online, "excluded_maintenance_ns") == 1.5 * H   # 2–3:30
    assert seconds(online, "excluded_cause_ns") == 1 * H           # 3:30–4:30
    assert seconds(online, "down_ns") == 0.5 * H                   # 4:30–5:00, the rest of the outage
    assert seconds(online, "up_ns") == 5 * H
    assert online.rate_pct == pytest.approx(100 * 5 / 5.5)
    kinds = sorted((e.kind, e.reason) for e in report.points["C1"].exclusions)
    assert kinds == [("cause", "WO-0007 电力"), ("maintenance", "巡检 (maintenance #1)"),
                     ("maintenance", "巡检延长 (maintenance #2)"), ("status", "construction")]


async def test_a_window_deleted_early_ends_at_its_deletion(fleet):
    c1 = dev("C1")
    await fleet.session(-H, 11 * H)
    await fleet.record(tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"))
    with simulated(fleet.clock):
        fleet.clock.now_ns = s(0)
        book = await MaintenanceBook.load(fleet.db, inventory(c1), [])
        window = await book.create(SelectorConfig(), s(1 * H), s(5 * H), "抢修", "李工")
        fleet.clock.now_ns = s(2 * H)
        await book.delete(window.id)
        deleted_before_start = await book.create(SelectorConfig(), s(6 * H), s(7 * H), "取消", "李工")
        await book.delete(deleted_before_start.id)
    report = await availability(fleet.db, inventory(c1), period(), config(), online_requires=NET_VIDEO)
    assert seconds(report.points["C1"].figures[Basis.ONLINE], "excluded_maintenance_ns") == H


async def test_a_recurring_window_excludes_exactly_its_occurrences_with_its_reason(fleet):
    """每天 02:00–04:00 for C1 only, over three local days: three occurrences excluded, each in
    the evidence with the window's reason and number; the neighbour C2, down as long, is not."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from rules.alerting.config import MaintenanceMatch

    c1, c2 = dev("C1"), dev("C2")
    start = int(datetime(2026, 9, 23, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()) * NS
    days = Period("test", "custom", start, start + 3 * 24 * H * NS, "Asia/Shanghai")
    await fleet.session(-H, (start - T0) / NS + 4 * 24 * H)
    for d in ("C1", "C2"):
        await fleet.record(tr(d, "icmp", -H, "unknown", "down"), tr(d, "rtsp", -H, "unknown", "down"))
    with simulated(fleet.clock):
        fleet.clock.now_ns = s(0)
        book = await MaintenanceBook.load(fleet.db, inventory(c1, c2), [], "Asia/Shanghai")
        await book.create_recurring(MaintenanceMatch(devices=["C1"]), "daily 02:00", 2 * H, date(2026, 9, 22), None,
                                    "夜间割接", "张工")
    report = await availability(fleet.db, inventory(c1, c2), days, config(), online_requires=NET_VIDEO)
    one, two = (report.points[d].figures[Basis.ONLINE] for d in ("C1", "C2"))
    assert seconds(one, "excluded_maintenance_ns") == 3 * 2 * H
    assert seconds(one, "down_ns") == 3 * 22 * H
    assert seconds(two, "excluded_maintenance_ns") == 0 and seconds(two, "down_ns") == 3 * 24 * H
    assert [((e.start_ns - start) / NS / H, (e.end_ns - start) / NS / H, e.reason)
            for e in report.points["C1"].exclusions] == [
        (2.0, 4.0, "夜间割接 (maintenance #1)"), (26.0, 28.0, "夜间割接 (maintenance #1)"),
        (50.0, 52.0, "夜间割接 (maintenance #1)")]
    # The reports' annex of excluded time: one row per occurrence, with the window's reason and number.
    from types import SimpleNamespace

    from monitor.reports.content.parts_availability import exclusions
    from monitor.reports.content.words import Say

    annex = exclusions(SimpleNamespace(availability=report), Say("zh"))
    assert [(row[0], row[1], (row[2] - start) / NS / H, row[5]) for row in annex.rows] == [
        ("C1", "维护窗口", at, "夜间割接（维护窗口 #1）") for at in (2.0, 26.0, 50.0)]


async def test_a_point_counts_from_its_first_evidence_and_a_removed_point_is_excluded(fleet):
    old, new, gone = dev("OLD"), dev("NEW"), dev("GONE", status=Status.REMOVED)
    await fleet.session(-H, 11 * H)
    await record_inventory_statuses(fleet.db, inventory(old, replace(gone, status=Status.ACTIVE)), s(-H))
    await record_inventory_statuses(fleet.db, inventory(old, new, gone), s(4 * H))
    await fleet.record(
        tr("OLD", "icmp", -H, "unknown", "up"), tr("GONE", "icmp", -H, "unknown", "up"),
        tr("NEW", "icmp", 4 * H, "unknown", "up"),
    )
    report = await availability(fleet.db, inventory(old, new, gone), period(), config(), online_requires=NET_VIDEO)
    new_online = report.points["NEW"].figures[Basis.ONLINE]
    assert seconds(new_online, "span_ns") == 6 * H and new_online.rate_pct == 100.0
    gone_online = report.points["GONE"].figures[Basis.ONLINE]
    assert (seconds(gone_online, "up_ns"), seconds(gone_online, "excluded_status_ns")) == (4 * H, 6 * H)


async def test_a_stalled_probe_blinds_its_basis_only_and_a_probe_off_does_not_apply(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", "onvif", -H, "unknown", "up"),
    )
    grace = 3 * H * NS // 2  # the next cycle is due within 1.5 h of the end of the last
    for hour in range(-1, 11):  # hourly cycles; rtsp misses those starting at 3 … 5 h
        await fleet.db.probe_cycle("icmp", s(hour * H), s(hour * H + 60), grace)
        if hour not in (3, 4, 5):
            await fleet.db.probe_cycle("rtsp", s(hour * H), s(hour * H + 60), grace)
    report = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    figures = report.points["C1"].figures
    # rtsp's last cycle before the stall ended at 2:01; watched until 3:31; next cycle at 6:00.
    assert seconds(figures[Basis.VIDEO], "blind_ns") == 6 * H - (2 * H + 60 + 1.5 * H)
    assert figures[Basis.NETWORK].blind_ns == 0
    assert figures[Basis.ONLINE].blind_ns == figures[Basis.VIDEO].blind_ns
    assert Basis.SERVICE not in figures  # onvif recorded no cycle in this session: it was off
    assert [(g.probe, g.reason) for g in report.gaps] == [("rtsp", "stalled")]


async def test_daily_snapshot_is_the_mean_of_the_rates_at_the_check_times(fleet):
    # Two days; checks at 09:00 and 15:00 Beijing time.
    day = Period("2026-09-10..2026-09-11", "custom", 1_788_969_600 * NS, 1_789_142_400 * NS, "Asia/Shanghai")
    base = (day.start_ns - T0) / NS
    inv = inventory(dev("A"), dev("B"))
    await fleet.session(base - H, base + 49 * H)
    await fleet.record(
        tr("A", "icmp", base - H, "unknown", "up"), tr("B", "icmp", base - H, "unknown", "up"),
        tr("A", "icmp", base + 8 * H, "up", "down"), tr("A", "icmp", base + 10 * H, "down", "up"),  # down at day 1 09:00
    )
    # B under construction on day 2 from 12:00: not counted at day 2's 15:00.
    b = dev("B")
    await record_inventory_statuses(fleet.db, inventory(dev("A"), b), s(base - H))
    await record_inventory_statuses(fleet.db, inventory(dev("A"), replace(b, status=Status.CONSTRUCTION)),
                                    s(base + 36 * H))
    report = await availability(fleet.db, inv, day, config(definition="daily_snapshot"), online_requires=NET_VIDEO)
    fleet_online = report.group().figures[Basis.ONLINE]
    # instants: d1 09:00 (A down, B up) 50 %; d1 15:00 100 %; d2 09:00 100 %; d2 15:00 (A only) 100 %
    assert fleet_online.rate_pct == pytest.approx((50 + 100 + 100 + 100) / 4)
    assert report.group().checks[Basis.ONLINE] == ((1, 2), (2, 2), (2, 2), (1, 1))
    assert (fleet_online.checks_up, fleet_online.checks_offline, fleet_online.checks_excluded) == (6, 1, 1)
    assert report.points["A"].figures[Basis.ONLINE].rate_pct == 75.0
    assert report.points["B"].figures[Basis.ONLINE].rate_pct == 100.0


async def test_selection_by_ids_and_selector_and_groups_per_kind(fleet):
    inv = inventory(dev("SW", Kind.SWITCH), dev("C1", parent="SW"), dev("C2", parent="SW", site="S2", region="R2"))
    await fleet.session(-H, 11 * H)
    await fleet.record(*(tr(d, "icmp", -H, "unknown", "up") for d in ("SW", "C1", "C2")))
    only = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, device_ids=["C2"])
    assert list(only.points) == ["C2"]
    assert [(g.scope, g.group, g.kind) for g in only.groups] == [
        ("fleet", "all", "all"), ("fleet", "all", "camera"), ("region", "R2", "all"), ("region", "R2", "camera"),
        ("site", "S2", "all"), ("site", "S2", "camera"),
    ]
    r1 = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, selector=Selector.of(region=["R1"]))
    assert list(r1.points) == ["SW", "C1"] and r1.group("fleet", kind="switch").points == 1
    with pytest.raises(KeyError):
        r1.group("region", "R2")


async def test_an_empty_database_gives_points_without_evidence(fleet):
    report = await availability(fleet.db, inventory(dev("C1")), period(), config(), online_requires=NET_VIDEO)
    online = report.points["C1"].figures[Basis.ONLINE]
    assert online.span_ns == 0 and online.rate_pct is None
    assert any("no stored evidence" in n for n in report.notes)


# -- bad input: a clear error naming every problem, nothing computed ------------------------------


async def test_unknown_devices_and_an_empty_selection_are_errors(fleet):
    inv = inventory(dev("C1"))
    with pytest.raises(AvailabilityError) as err:
        await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, device_ids=["C1", "CX", "CY"])
    assert err.value.messages == ["unknown device: CX", "unknown device: CY"]
    with pytest.raises(AvailabilityError, match="no point of the inventory matches"):
        await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, selector=Selector.of(site=["nowhere"]))


async def test_bad_exclusions_are_errors_listing_each(fleet):
    inv = inventory(dev("C1"), dev("C2"))
    bad = [
        Exclusion("CX", s(0), s(H), "cause", "WO-1"),
        Exclusion("C1", s(2 * H), s(2 * H), "cause", "WO-2"),
        Exclusion("C1", s(3 * H), s(4 * H), "weather", "WO-3"),
        Exclusion("C2", s(1 * H), s(3 * H), "cause", "WO-4 电力"),
        Exclusion("C2", s(2 * H), s(5 * H), "cause", "WO-5 电力"),
        Exclusion("C1", s(1 * H), s(3 * H), "cause", "WO-6"),  # same time as WO-4, another point: fine
    ]
    with pytest.raises(AvailabilityError) as err:
        await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, exclusions=bad)
    messages = err.value.messages
    assert len(messages) == 3
    assert messages[0].startswith("exclusion 1 (C1, 'WO-2'): end ") and "is not after start" in messages[0]
    assert "kind 'weather' is not one of cause, maintenance, status" in messages[1]
    assert messages[2].startswith("exclusions 3 ('WO-4 电力', ") and "and 4 ('WO-5 电力'" in messages[2]
    assert "overlap on C2" in messages[2]
    # Touching is not overlapping; an order of a point no longer in the point list is left out.
    fine = [Exclusion("C1", s(0), s(H), "cause", "a"), Exclusion("C1", s(H), s(2 * H), "cause", "b"), bad[0]]
    report = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO, exclusions=fine)
    assert "1 exclusion(s) name points that are not in the point list: left out" in report.notes


def test_the_lookup_rows_are_made_on_first_use_once_and_shared_between_threads():
    """monitor.assess.timeline.tables fills a key's rows when a segment first needs them (all
    7^7 × 5 codes up front cost ~9 CPU-s per process, 7^8 × 5 with the picture): only what is asked is made, the same from
    any thread, equal ratio rows one object (the sweep compares them with `is`)."""
    from concurrent.futures import ThreadPoolExecutor

    from monitor.assess.config import UnknownPolicy
    from monitor.assess.history import PROBE_ORDER
    from monitor.assess.timeline import BASES, DOWN, EX_CAUSE, EX_NONE, EX_OUTSIDE, NA, UP, tables

    t = tables.__wrapped__((Basis.NETWORK, Basis.VIDEO), UnknownPolicy.EXCLUDE)  # a fresh one, not the cache's
    assert len(t.add) == 0
    others = [NA] * (len(PROBE_ORDER) - 1)
    icmp_up = sum(code * w for code, w in zip([UP, *others], t.weights, strict=True))
    icmp_down = sum(code * w for code, w in zip([DOWN, *others], t.weights, strict=True))
    codes = [key * 5 + ex for key in (icmp_up, icmp_down) for ex in (EX_NONE, EX_CAUSE, EX_OUTSIDE)]
    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(lambda code: (t.add[code], t.offline[code], t.checks[code], t.ratio[code]), codes * 8))
    assert rows == [(t.add[c], t.offline[c], t.checks[c], t.ratio[c]) for c in codes] * 8
    assert len(t.add) == len(t.offline) == len(t.checks) == len(t.ratio) == 2 * 5  # two keys, five layers each
    assert t.offline[codes[0]] == () and t.offline[codes[2]] == () and t.add[codes[2]] == ()  # outside: nowhere
    assert t.offline[codes[3]] == ((0, DOWN), (BASES.index(Basis.ONLINE), DOWN))  # network and online down
    assert t.ratio[codes[1]] is t.ratio[codes[4]]  # excluded, up or down: the same (empty) ratio row
    with pytest.raises(KeyError):
        t.add[7 ** len(PROBE_ORDER) * 5]
