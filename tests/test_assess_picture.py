"""The period assessment counts the picture basis (画面正常, issue 17 deliverable 3) as the live
rates do: the picture tracker's stored transitions (probe "picture") are a basis of their own,
and `online` includes it exactly when `availability.online_requires` lists it.

Hand-made histories with hand-computed figures, and random ones driven through both the live
`combine` (monitor.state.availability) and the assessment, whose times per state must agree to
the nanosecond. Real state database; times in seconds from T0 (tests.test_assess_availability).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

import pytest

from monitor.assess.availability import availability
from monitor.assess.periods import NS
from monitor.core.model import Basis, Device, Kind
from monitor.state.availability import PICTURE, combine
from monitor.state.tracker import State, Transition
from monitor.state.db import StateDB
from tests.test_assess_availability import H, NET_VIDEO, Fleet, config, dev, inventory, period, s, seconds, tr

WITH_PICTURE = [Basis.NETWORK, Basis.VIDEO, Basis.PICTURE]


@pytest.fixture
async def fleet(tmp_path):
    async with StateDB(tmp_path / "state.db") as db:
        yield Fleet(db)


async def test_picture_down_time_lowers_the_period_rate_only_when_online_requires_the_picture(fleet):
    inv = inventory(dev("C1"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", PICTURE, -H, "unknown", "up"),
        tr("C1", PICTURE, 2 * H, "up", "down"), tr("C1", PICTURE, 4 * H, "down", "up"),  # frozen 2 h
        tr("C1", "rtsp", 6 * H, "up", "down"), tr("C1", "rtsp", 7 * H, "down", "up"),  # no stream 1 h
    )
    required = await availability(fleet.db, inv, period(), config(), online_requires=WITH_PICTURE)
    default = await availability(fleet.db, inv, period(), config(), online_requires=NET_VIDEO)
    assert required.points["C1"].figures[Basis.ONLINE].rate_pct == 70.0  # 2 h frozen + 1 h no stream
    assert default.points["C1"].figures[Basis.ONLINE].rate_pct == 90.0  # the stream only
    for report in (required, default):  # the picture's own figures do not depend on online_requires
        picture = report.points["C1"].figures[Basis.PICTURE]
        # While the stream is down there is no picture to judge: unreachable (the video is the cause).
        assert (seconds(picture, "up_ns"), seconds(picture, "down_ns"), seconds(picture, "unreachable_ns")) == (
            7 * H, 2 * H, H)
        assert picture.rate_pct == 70.0
        assert report.group().figures[Basis.PICTURE] == picture
        assert [(o.start_ns, o.end_ns, o.state) for o in report.points["C1"].outages(Basis.PICTURE)] == [
            (s(2 * H), s(4 * H), State.DOWN), (s(6 * H), s(7 * H), State.UNREACHABLE)]
    assert [(o.start_ns, o.end_ns, o.state) for o in required.points["C1"].outages()] == [
        (s(2 * H), s(4 * H), State.DOWN), (s(6 * H), s(7 * H), State.DOWN)]


async def test_a_point_never_judged_on_picture_is_not_held_against_it(fleet):
    inv = inventory(dev("C1"), dev("C2"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        *(tr(c, p, -H, "unknown", "up") for c in ("C1", "C2") for p in ("icmp", "rtsp")),
        tr("C1", PICTURE, -H, "unknown", "down"),  # C1: a covered lens all along; C2: never diagnosed
        tr("C2", PICTURE, 5 * H, "unknown", "unknown"),  # not a verdict: still undecided
    )
    report = await availability(fleet.db, inv, period(), config(), online_requires=WITH_PICTURE)
    c1, c2 = report.points["C1"].figures, report.points["C2"].figures
    assert c1[Basis.ONLINE].rate_pct == 0.0
    assert c2[Basis.ONLINE].rate_pct == 100.0  # network and video up; the picture does not apply before 5 h …
    # … and from 5 h its state is unknown: online is unknown then, left out under `exclude`.
    assert (seconds(c2[Basis.ONLINE], "up_ns"), seconds(c2[Basis.ONLINE], "undecided_ns")) == (5 * H, 5 * H)
    assert (seconds(c2[Basis.PICTURE], "span_ns"), c2[Basis.PICTURE].rate_pct) == (5 * H, None)
    fleet_picture = report.group().figures[Basis.PICTURE]
    assert (seconds(fleet_picture, "down_ns"), seconds(fleet_picture, "undecided_ns")) == (10 * H, 5 * H)


async def test_a_session_without_the_diagnosis_does_not_count_a_stale_picture(fleet):
    """The picture basis is watched by the frame check's cycles while vqd is on (the pipeline
    records them as probe "picture"): in a session where the frame check ran without vqd the
    last stored picture state is stale and does not apply; a stalled frame check blinds the
    picture too, said once (under rtsp_frame)."""
    inv = inventory(dev("C1"))
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", "rtsp_frame", -H, "unknown", "up"), tr("C1", PICTURE, -H, "unknown", "up"),
        tr("C1", PICTURE, 4 * H, "up", "down"),  # frozen at 4 h; vqd turned off at the restart
    )
    grace = 3 * H * NS // 2
    for hours, probes in ((range(-1, 5), ("icmp", "rtsp", "rtsp_frame", PICTURE)),
                          (range(5, 11), ("icmp", "rtsp", "rtsp_frame"))):
        await fleet.session(hours[0] * H, hours[-1] * H + 3600)
        for hour in hours:
            for probe in probes:
                if probe in ("rtsp_frame", PICTURE) and hour in (1, 2):
                    continue  # the frame check stalls: no cycle starting at 1 or 2 h
                await fleet.db.probe_cycle(probe, s(hour * H), s(hour * H + 60), grace)
    report = await availability(fleet.db, inv, period(), config(), online_requires=WITH_PICTURE)
    figures = report.points["C1"].figures
    picture, online = figures[Basis.PICTURE], figures[Basis.ONLINE]
    # Watched until 1:31 (cycle 0:00–0:01 + 1.5 h grace), blind until the 3:00 cycle.
    assert seconds(picture, "blind_ns") == 3 * H - (60 + 1.5 * H)
    assert (seconds(picture, "down_ns"), seconds(picture, "span_ns")) == (H, 5 * H)  # none after 5 h
    assert (seconds(online, "down_ns"), seconds(online, "blind_ns")) == (H, picture.blind_ns / NS)
    assert seconds(online, "up_ns") == 10 * H - H - picture.blind_ns / NS  # after 5 h: network and video
    assert [(g.probe, g.reason) for g in report.gaps] == [("rtsp_frame", "stalled")]


# -- the live combine and the assessment agree --------------------------------------------------

_DEVICES = (
    dev("SW", Kind.SWITCH),
    dev("C1", parent="SW"), dev("C2", parent="SW"),  # behind the switch
    dev("C3"),  # its picture judged only from the middle of the period
    dev("C4"),  # never judged on picture
)
_PROBES = {"SW": ("icmp",), "C1": ("icmp", "rtsp", PICTURE), "C2": ("icmp", "rtsp", "onvif", PICTURE),
           "C3": ("icmp", "rtsp", PICTURE), "C4": ("icmp", "rtsp")}
_STATES = ("up", "down", "unreachable", "unknown")


def _history(seed: int) -> list[Transition]:
    """Random transitions: every probe of a point judges it before the period (C3's picture
    only at its first event inside), then 80 changes at distinct whole seconds inside it."""
    rng = random.Random(seed)
    state: dict[tuple[str, str], str] = {}
    out = []
    for d, probes in _PROBES.items():
        for p in probes:
            if (d, p) != ("C3", PICTURE):
                state[d, p] = rng.choice(_STATES[:3])
                out.append(tr(d, p, -H, "unknown", state[d, p]))
    pairs = [(d, p) for d, probes in _PROBES.items() for p in probes]
    for at in sorted(rng.sample(range(1, 10 * H), 80)):
        d, p = rng.choice(pairs)
        new = rng.choice(_STATES)
        out.append(tr(d, p, at, state.get((d, p), "unknown"), new))
        state[d, p] = new
    return out


def _live(devices: Sequence[Device], history: list[Transition], start_ns: int, end_ns: int,
          online_requires: list[Basis]) -> Counter[tuple[str, Basis, State]]:
    """ns per (device, basis, state) over [start_ns, end_ns), from `combine` evaluated after
    every change, as the daemon's pipeline does. A probe polls a point from its first verdict
    on (the assessment's rule for a probe that has not judged a point yet)."""
    trackers: dict[str, dict[str, State]] = {}
    out: Counter[tuple[str, Basis, State]] = Counter()
    times = sorted({start_ns, end_ns, *(t.ts_ns for t in history if start_ns < t.ts_ns < end_ns)})
    pending = sorted(history, key=lambda t: t.ts_ns)
    i = 0
    for a, b in zip(times, times[1:]):
        while i < len(pending) and pending[i].ts_ns <= a:
            trackers.setdefault(pending[i].probe, {})[pending[i].device_id] = pending[i].new
            i += 1
        polled = {p: frozenset(states) for p, states in trackers.items()}
        for basis, states in combine(devices, trackers, polled, online_requires).items():
            for device_id, state in states.items():
                out[device_id, basis, state] += b - a
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("online_requires", [WITH_PICTURE, NET_VIDEO, [Basis.NETWORK, Basis.PICTURE]],
                         ids=["with-picture", "default", "network-picture"])
async def test_the_period_and_the_live_combine_agree_on_every_basis(fleet, seed, online_requires):
    history = _history(seed)
    await fleet.session(-2 * H, 11 * H)
    await fleet.record(*history)
    p = period()
    report = await availability(fleet.db, inventory(*_DEVICES), p, config(), online_requires=online_requires)
    live = _live(_DEVICES, history, p.start_ns, p.end_ns, online_requires)
    seen = 0
    for d in _DEVICES:
        figures = report.points[d.id].figures
        for basis in Basis:
            expected = {st: live[d.id, basis, st] for st in State}
            if not any(expected.values()):
                assert basis not in figures, (d.id, basis)
                continue
            f = figures[basis]
            got = {State.UP: f.up_ns, State.DOWN: f.down_ns, State.UNREACHABLE: f.unreachable_ns,
                   State.UNKNOWN: f.undecided_ns}
            assert got == expected, (d.id, basis)
            assert f.blind_ns == f.agent_silent_ns == f.excluded_ns == 0
            seen += 1
    assert Basis.PICTURE not in report.points["C4"].figures
    assert report.points["C3"].figures[Basis.PICTURE].span_ns < 10 * H * NS  # from its first verdict
    assert seen == 2 + 4 + 5 + 4 + 3  # SW: network, online; C1, C3: network, video, picture, online; C2 and service; C4


async def test_the_assess_views_show_the_picture_basis_when_asked(fleet):
    """`fleetmon availability --basis picture` / GET /api/v1/availability?basis=picture: the
    picture's figures per group and point, its outages, as the report has them."""
    from monitor.app.assess_text import availability_text
    from monitor.app.assess_views import AvailabilityQuery, availability_out

    inv = inventory(dev("C1"))
    await fleet.session(-H, 11 * H)
    await fleet.record(
        tr("C1", "icmp", -H, "unknown", "up"), tr("C1", "rtsp", -H, "unknown", "up"),
        tr("C1", PICTURE, -H, "unknown", "up"), tr("C1", PICTURE, 2 * H, "up", "down"),
        tr("C1", PICTURE, 3 * H, "down", "up"),
    )
    report = await availability(fleet.db, inv, period(), config(), online_requires=WITH_PICTURE)
    doc = availability_out(report, AvailabilityQuery(period="2026-09-22", basis="picture", points=True))
    assert doc.basis is Basis.PICTURE and doc.online_requires == WITH_PICTURE
    assert doc.groups[0].figures is not None and doc.groups[0].figures.rate_pct == 90.0
    assert doc.groups[0].figures.down_s == H
    assert doc.points is not None and [(o.start_ns, o.end_ns) for o in doc.points[0].outages] == [(s(2 * H), s(3 * H))]
    text = "\n".join(availability_text(doc, "zh"))
    assert "在线判据: network+video+picture; 口径: picture" in text and "90.000 %" in text
