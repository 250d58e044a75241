"""Spot check (抽查): one point at one moment, agreeing with the period figures, with evidence."""

from __future__ import annotations

import asyncio
import random

import pytest

from lab.history import DAY, HOUR, generate, write
from lab.process import free_ports
from monitor.assess.availability import AvailabilityError, availability
from monitor.assess.config import AvailabilityAssessmentConfig
from monitor.assess.periods import NS, Period
from monitor.assess.spotcheck import spot_check
from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.results import InfluxResults
from monitor.core.model import Basis
from monitor.state.db import StateDB
from monitor.state.tracker import State

ZONE = "Asia/Shanghai"
NET_VIDEO = [Basis.NETWORK, Basis.VIDEO]
NAMES = {"up_ns": "up", "down_ns": "down", "unreachable_ns": "unreachable", "undecided_ns": "unknown",
         "blind_ns": "not watched", "excluded_status_ns": "excluded: status",
         "excluded_maintenance_ns": "excluded: maintenance", "excluded_cause_ns": "excluded: cause",
         "agent_silent_ns": "agent silent"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    scenario = generate(260, "2026Q3", seed=5)
    path = tmp_path_factory.mktemp("spot") / "state.db"

    async def run():
        async with StateDB(path) as db:
            await write(scenario, db)

    asyncio.run(run())
    return scenario, path


async def check(path, scenario, device_id, at_ns, **kw):
    async with StateDB(path) as db:
        return await spot_check(db, scenario.inventory, device_id, at_ns, timezone=ZONE, online_requires=NET_VIDEO,
                                exclusions=scenario.exclusions, **kw)


async def test_a_spot_check_says_what_the_period_figures_count(stored):
    scenario, path = stored
    rng = random.Random(3)
    points = list(scenario.inventory.devices)
    async with StateDB(path) as db:
        for _ in range(120):
            device_id = rng.choice(points)
            at = rng.randrange(scenario.period.start_ns, scenario.period.end_ns - NS) // NS * NS
            spot = await spot_check(db, scenario.inventory, device_id, at, timezone=ZONE, online_requires=NET_VIDEO,
                                    exclusions=scenario.exclusions)
            second = Period("1 s", "custom", at, at + NS, ZONE)
            report = await availability(db, scenario.inventory, second, AvailabilityAssessmentConfig(),
                                        online_requires=NET_VIDEO, exclusions=scenario.exclusions, device_ids=[device_id])
            expected = {
                basis: next(NAMES[f] for f in NAMES if getattr(figures, f))
                for basis, figures in report.points[device_id].figures.items() if figures.span_ns
            } or {Basis.ONLINE: "not a point yet"}  # no time at all: before its first evidence
            assert spot.counted == expected, (device_id, spot.when)


async def test_a_camera_down_in_a_maintenance_window_with_a_power_cut(stored):
    scenario, path = stored
    window = scenario.windows[0]  # 河西乡光缆割接, day 10 01:00–05:00; the camera is down 02:00–08:00
    cut = next(e for e in scenario.exclusions if e.start_ns == scenario.period.start_ns + 10 * DAY + 2 * HOUR)
    spot = await check(path, scenario, cut.device_id, cut.start_ns + 30 * 60 * NS)
    assert spot.when.endswith("02:30:00")
    expected = {Basis.NETWORK: "down", Basis.VIDEO: "unreachable", Basis.ONLINE: "down"}
    if cut.device_id in scenario.onvif:
        expected[Basis.SERVICE] = "unreachable"  # the network is the cause, as for video
    assert spot.seen == expected
    assert set(spot.counted.values()) == {"excluded: maintenance"}
    shown = {(e.kind, e.start_ns, e.end_ns) for e in spot.exclusions}
    assert ("cause", cut.start_ns, cut.end_ns) in shown
    assert ("maintenance", window.start_ns, window.end_ns) in shown
    icmp = spot.probes["icmp"]
    assert icmp.state is State.DOWN and icmp.since_ns == cut.start_ns and icmp.coverage == "watched"
    assert icmp.before[-1].ts_ns == cut.start_ns and icmp.after[0].new is State.UP
    assert spot.session is not None and spot.not_running is None
    assert spot.results == () and "InfluxDB" in spot.results_note


async def test_while_fleetmon_was_not_running_the_spot_check_says_from_when_to_when(stored):
    scenario, path = stored
    crashed, restarted = scenario.sessions[0], scenario.sessions[1]
    spot = await check(path, scenario, "CAM-0000-03", crashed.end_ns + HOUR)
    assert set(spot.counted.values()) == {"not watched"} and set(spot.seen.values()) == {"not watched"}
    assert spot.session is None and spot.not_running == (crashed.end_ns, restarted.start_ns)
    assert {p.coverage for p in spot.probes.values()} == {"not watched"}


async def test_a_stalled_probe_blinds_its_basis(stored):
    scenario, path = stored
    probe, last_end, next_start = scenario.sessions[2].stalls[0]
    camera = next(d for d in scenario.inventory.devices.values() if d.kind.value == "camera" and d.status.value == "active"
                  and not any(o.device_id in (d.id, d.parent) and o.start_ns < next_start and last_end < o.end_ns
                              for o in scenario.outages))
    spot = await check(path, scenario, camera.id, next_start - HOUR)
    assert spot.probes[probe].coverage == "not watched" and spot.probes["icmp"].coverage == "watched"
    assert spot.counted[Basis.NETWORK] == "up" and spot.counted[Basis.VIDEO] == "not watched"
    assert Basis.SERVICE not in spot.counted  # onvif is off in that session
    assert spot.probes.get("onvif") is None or spot.probes["onvif"].coverage == "not running"


async def test_before_its_first_evidence_a_point_is_not_assessed(stored):
    scenario, path = stored
    late = next(d for d, joined in scenario.joined.items() if joined > scenario.period.start_ns)
    spot = await check(path, scenario, late, scenario.joined[late] - DAY)
    assert spot.counted == {Basis.ONLINE: "not a point yet"} and spot.seen == {Basis.ONLINE: "unknown"}
    icmp = spot.probes["icmp"]
    assert icmp.state is None and icmp.before == () and icmp.after[0].ts_ns == scenario.joined[late]


async def test_bad_spot_checks_are_clear_errors(stored):
    scenario, path = stored
    with pytest.raises(AvailabilityError, match="unknown device: CAM-9999"):
        await check(path, scenario, "CAM-9999", scenario.period.start_ns)
    with pytest.raises(AvailabilityError, match="that is in the future"):
        await check(path, scenario, "SW-0000", scenario.period.end_ns, now_ns=scenario.period.end_ns - 1)


# -- raw results from the real InfluxDB ---------------------------------------------------------


@pytest.mark.peer
async def test_raw_results_around_the_moment_come_from_influxdb(stored, influx, influx_db):
    scenario, path = stored
    at = scenario.period.start_ns + 30 * DAY
    lines = "\n".join([
        f"icmp,device_id=CAM-0000-01,kind=camera,site=s,region=r rtt_ms=3.25,ok=true {at - 60 * NS}",
        f'rtsp,device_id=CAM-0000-01,kind=camera,site=s,region=r ok=false,reason="timeout" {at + 30 * NS}',
        f"icmp,device_id=CAM-0000-02,kind=camera,site=s,region=r rtt_ms=1.0,ok=true {at}",  # another point
        f"icmp,device_id=CAM-0000-01,kind=camera,site=s,region=r rtt_ms=9.0,ok=true {at - 3600 * NS}",  # too early
    ])
    influx.write(lines, influx_db)
    reader = InfluxResults(InfluxDBConfig(url=influx.url, database=influx_db))
    spot = await check(path, scenario, "CAM-0000-01", at, results=reader)
    assert spot.results_note is None
    assert [(r.measurement, r.ts_ns - at) for r in spot.results] == [("icmp", -60 * NS), ("rtsp", 30 * NS)]
    assert spot.results[0].values["rtt_ms"] == 3.25 and spot.results[0].values["device_id"] == "CAM-0000-01"
    assert spot.results[1].values["reason"] == "timeout"

    quiet = await check(path, scenario, "CAM-0000-05", at, results=reader)
    assert quiet.results == () and quiet.results_note == "InfluxDB holds no probe result of this point within ±10 min"


@pytest.mark.peer
async def test_an_unavailable_influxdb_is_said_not_hidden(stored, influx):
    scenario, path = stored
    at = scenario.period.start_ns + 30 * DAY
    (port,) = free_ports(1)
    cases = {
        InfluxDBConfig(url=f"http://127.0.0.1:{port}"): "InfluxDB not available, raw probe results not shown: no answer from",
        InfluxDBConfig(url=influx.url, database="no_such_db"): "InfluxDB answered 200: database not found",
        InfluxDBConfig(api="v2", url=influx.url, org="o", bucket="b"): "reading results back needs the v1 query API",
    }
    for cfg, message in cases.items():
        spot = await check(path, scenario, "CAM-0000-01", at, results=InfluxResults(cfg))
        assert message in spot.results_note and spot.results == ()
        assert spot.counted  # the rest of the spot check is there all the same
