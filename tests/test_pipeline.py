"""The daemon's data flow as one object (monitor.app.pipeline), without schedulers or sockets:
results, traps and cycles are handed to it as the schedulers would, and what comes out is read
where it lands: the real state database, the real rules and fault book, a real InfluxDB, the
real RTSP probe (hints), the log."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.influxdb import InfluxServer
from lab.onvif import OnvifSimulator
from lab.rtsp import SUB_STREAM, RtspServer
from monitor.app.pipeline import EARLY_EVALUATION_S, EARLY_SPACING, Pipeline, Running
from monitor.app import pipeline as pipeline_module
from monitor.app.scheduler import CALLER_TIMEOUT, CycleReport
from monitor.app.snapshot import Snapshot
from monitor.core.model import Basis, Device, Kind
from monitor.fleet.inventory import Inventory
from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.sink import InfluxSink
from monitor.metrics.writer import MetricsWriter
from monitor.state.db import StateDB
from monitor.state.recorder import Recorder
from monitor.state.tracker import MONITOR_LATE, State, StateTracker
from monitor.state.transition_log import TransitionLog
from probes.base import Probe, ProbeResult
from probes.icmp import IcmpConfig, IcmpProbe
from probes.onvif import OnvifConfig, OnvifProbe
from probes.rtsp import RtspConfig, RtspFrameConfig, RtspFrameProbe, RtspProbe
from rules.alerting.config import NotifyConfig
from rules.alerting.service import Alerting
from rules.config import DeviceDownRule, FlappingConfig
from rules.model import FaultState

U, D, X, K = State.UP, State.DOWN, State.UNREACHABLE, State.UNKNOWN


def dev(device_id: str, kind: Kind, parent: str | None = None, address: str | None = None) -> Device:
    address = address or f"198.18.7.{len(DEVICES) + 1}"
    return Device(device_id, device_id, kind, ipaddress.ip_address(address), "S1", "R1", parent=parent)


DEVICES: list[Device] = []
for _args in [("L1", Kind.LINK), ("SW1", Kind.SWITCH, "L1"), ("C1", Kind.CAMERA, "SW1", "127.0.0.1"),
              ("C2", Kind.CAMERA, "SW1"), ("C3", Kind.CAMERA, "SW1")]:
    DEVICES.append(dev(*_args))
INV = Inventory(DEVICES)
CAMERAS = tuple(d for d in DEVICES if d.kind is Kind.CAMERA)


def running(probe: Probe, devices=DEVICES) -> Running:
    return Running(probe, StateTracker(INV, probe.name, down_after=1, up_after=1), tuple(devices), 1.0)


def result(probe: str, device_id: str, ok: bool, reason: str | None = None, **fields) -> ProbeResult:
    return ProbeResult(device_id, probe, time.time_ns(), ok, None if ok else reason or "timeout", {"up": ok, **fields})


def report(probe: str, targets: int, ok: int) -> CycleReport:
    return CycleReport(probe, 0, time.time_ns(), 0.5, targets, ok, targets - ok, 0, 0)


@contextlib.asynccontextmanager
async def flow(tmp_path: Path, probes: list[Running], metrics: MetricsWriter | None = None,
               snapshots: list[Snapshot] | None = None, online_requires: list[Basis] | None = None,
               picture: StateTracker | None = None) -> AsyncIterator[tuple[Pipeline, Alerting]]:
    """A Pipeline over INV on a real state DB, recorder and alerting (rule: device_down); online
    requires network and video unless `online_requires` says otherwise; `picture`: the picture
    basis's tracker, when the probes include the frame check with vqd."""
    async with StateDB(tmp_path / "state.db") as db:
        await db.start_session(len(DEVICES))
        async with Recorder(db) as recorder, Alerting(
            INV, db, rules=[DeviceDownRule(name="down")], flapping=FlappingConfig(), maintenance=[],
            notify=NotifyConfig(), language="en", timezone="Asia/Shanghai",
        ) as alerting:
            pipeline = Pipeline(
                INV, {r.probe.name: r for r in probes}, alerting=alerting, recorder=recorder, metrics=metrics,
                online_requires=online_requires or [Basis.NETWORK, Basis.VIDEO],
                on_snapshot=None if snapshots is None else snapshots.append, picture=picture,
            )
            try:
                yield pipeline, alerting
            finally:
                pipeline.close()


async def until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_results_and_cycles_make_bases_rates_a_snapshot_and_stored_transitions(tmp_path):
    icmp, rtsp = running(IcmpProbe(IcmpConfig())), running(RtspProbe(RtspConfig()), CAMERAS)
    snapshots: list[Snapshot] = []
    async with flow(tmp_path, [icmp, rtsp], snapshots=snapshots) as (pipeline, _):
        for d in DEVICES:
            pipeline.on_result(result("icmp", d.id, d.id != "C3"))
        pipeline.on_cycle(report("icmp", 5, 4))
        for d, ok in zip(CAMERAS, (True, False, False)):
            pipeline.on_result(result("rtsp", d.id, ok, "connection refused"))
        pipeline.on_cycle(report("rtsp", 3, 1))
    first, last = snapshots
    assert pipeline.snapshot is last and last.cycle.probe == "rtsp" and set(last.cycles) == {"icmp", "rtsp"}
    assert first.bases["video"] == {"C1": K, "C2": K, "C3": X}  # no RTSP result yet: applies, undecided
    assert last.states == {"L1": U, "SW1": U, "C1": U, "C2": U, "C3": D}  # the network tracker's
    # C3 is offline on the network: its video is unreachable, not a second problem.
    assert last.bases["video"] == {"C1": U, "C2": D, "C3": X}
    assert last.bases["online"] == {"L1": U, "SW1": U, "C1": U, "C2": D, "C3": D}
    assert "service" not in {r.basis for r in last.rates}  # no ONVIF probe runs
    fleet = {(r.basis, r.kind): r for r in last.rates if r.scope == "fleet"}
    assert (fleet[("online", "camera")].online, fleet[("online", "camera")].offline) == (1, 2)
    assert (fleet[("network", "all")].online, fleet[("network", "all")].offline) == (4, 1)
    assert set(last.latest) == {d.id for d in DEVICES} and last.latest["C3"].probe == "icmp"
    assert last.results["rtsp"]["C2"].reason == "connection refused"
    assert last.since["C3"] > 0
    async with StateDB(tmp_path / "state.db") as db:
        stored = [(t.device_id, t.probe, t.old, t.new) for t in await db.transitions()]
        (session,) = await db.sessions()
    # In arrival order: every device's first verdict, each probe's.
    assert stored == [*((d.id, "icmp", K, D if d.id == "C3" else U) for d in DEVICES),
                      ("C1", "rtsp", K, U), ("C2", "rtsp", K, D), ("C3", "rtsp", K, D)]
    assert session.last_seen_ns > session.started_ns  # a heartbeat per cycle


async def test_one_generation_of_tables_every_device_is_in(tmp_path, monkeypatch):
    """Memory at 100,000 devices (docs/PERFORMANCE.md "## Memory"): the previous snapshot is let go
    before a cycle's tables are built; online shares network's table when only ICMP runs; the
    snapshot's results are the live ones (a result after the cycle shows, no copy per cycle)."""
    held: list[Snapshot | None] = []
    real_combine = pipeline_module.combine

    def combine(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        held.append(pipeline.snapshot)
        return real_combine(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "combine", combine)
    snapshots: list[Snapshot] = []
    async with flow(tmp_path, [running(IcmpProbe(IcmpConfig()))], snapshots=snapshots,
                    online_requires=[Basis.NETWORK]) as (pipeline, _):
        for cycle in range(2):
            for d in DEVICES:
                pipeline.on_result(result("icmp", d.id, True))
            pipeline.on_cycle(report("icmp", 5, 5))
        pipeline.on_result(result("icmp", "C2", False, "timeout"))
        last = pipeline.snapshot
        assert last is snapshots[-1] and held == [None, None]
        assert last.bases["online"] is last.bases["network"] and last.bases["online"] == dict.fromkeys(last.states, U)
        assert last.latest["C2"].reason == "timeout" and last.results["icmp"]["C2"].ok is False
        assert last.states["C2"] is U  # the states are the cycle's


async def test_a_caller_timeout_makes_the_device_unknown_never_down_and_writes_no_point(tmp_path):
    """The scheduler's caller timeout says fleetmon ran late, not that the device failed: the
    device becomes unknown (reason MONITOR_LATE, stored), no fault fires, no point is written,
    and its next real result decides afresh."""
    icmp = running(IcmpProbe(IcmpConfig()))
    written: list[tuple[str, str]] = []

    class Recording(MetricsWriter):  # results recorded, the cycle's points not written
        def result(self, device, result):
            written.append((result.device_id, result.reason))

        def device_states(self, *args, **kwargs): pass
        def online_rates(self, *args): pass
        def faults_open(self, *args): pass
        def cycle(self, *args): pass

    snapshots: list[Snapshot] = []
    async with flow(tmp_path, [icmp], metrics=Recording(None), snapshots=snapshots) as (pipeline, alerting):
        for d in DEVICES:
            pipeline.on_result(result("icmp", d.id, True))
        pipeline.on_cycle(report("icmp", 5, 5))
        for d in DEVICES:
            pipeline.on_result(result("icmp", d.id, d.id != "C2", reason=CALLER_TIMEOUT))
        pipeline.on_cycle(report("icmp", 5, 4))
        late = snapshots[-1]
        assert not alerting.faults.open_faults()
        pipeline.on_result(result("icmp", "C2", False))  # the next real verdict: down (down_after 1)
        pipeline.on_cycle(report("icmp", 5, 4))
    assert late.states["C2"] == K and late.states["C1"] == U
    assert snapshots[-1].states["C2"] == D
    assert ("C2", CALLER_TIMEOUT) not in written and written.count(("C2", "timeout")) == 1
    async with StateDB(tmp_path / "state.db") as db:
        c2 = [(t.old, t.new, t.reason) for t in await db.transitions() if t.device_id == "C2"]
    assert c2 == [(K, U, None), (U, K, MONITOR_LATE), (K, D, "timeout")]


async def test_early_evaluations_are_spaced_by_three_times_the_last_ones_duration(tmp_path, monkeypatch):
    """At 100,000 devices an evaluation takes ~0.5 s: a stream of transitions must not keep the
    event loop evaluating; the next early evaluation waits 3 × the last one's duration (at
    least EARLY_EVALUATION_S)."""
    icmp = running(IcmpProbe(IcmpConfig()))
    async with flow(tmp_path, [icmp]) as (pipeline, _):
        loop = asyncio.get_running_loop()
        for d in DEVICES:
            pipeline.on_result(result("icmp", d.id, True))
        pipeline.on_cycle(report("icmp", 5, 5))  # fast: the plain delay
        pipeline.on_result(result("icmp", "C1", False))
        assert pipeline._early.when() - loop.time() == pytest.approx(EARLY_EVALUATION_S, abs=0.1)
        slow = pipeline_module.rates_of_bases

        def slowly(*args, **kwargs):
            time.sleep(0.5)
            return slow(*args, **kwargs)

        monkeypatch.setattr(pipeline_module, "rates_of_bases", slowly)
        pipeline.on_cycle(report("icmp", 5, 4))  # took ≥ 0.5 s
        pipeline.on_result(result("icmp", "C1", True))
        assert pipeline._early.when() - loop.time() >= EARLY_SPACING * 0.5 - 0.05


async def test_each_cycle_is_recorded_so_that_a_stalled_probe_is_seen(tmp_path):
    icmp, rtsp = running(IcmpProbe(IcmpConfig())), running(RtspProbe(RtspConfig()), CAMERAS)
    rtsp = Running(rtsp.probe, rtsp.tracker, rtsp.devices, 60.0)
    async with flow(tmp_path, [icmp, rtsp]) as (pipeline, _):
        first, second = report("icmp", 5, 5), report("icmp", 5, 5)
        pipeline.on_cycle(first)
        pipeline.on_cycle(second)
        late = CycleReport("icmp", 2, second.ts_ns + 10 * 10**9, 0.5, 5, 5, 0, 0, 0)  # 10 s later: > 2 intervals
        pipeline.on_cycle(late)
        video = report("rtsp", 3, 3)
        pipeline.on_cycle(video)
    async with StateDB(tmp_path / "state.db") as db:
        rows = await db.execute(lambda conn: conn.execute(
            "SELECT probe, start_ns, end_ns, grace_ns FROM probe_watch ORDER BY probe, start_ns").fetchall())
    half = 500_000_000
    assert rows == [
        ("icmp", first.ts_ns, second.ts_ns + half, 2 * 10**9),  # grace: twice the 1 s interval
        ("icmp", late.ts_ns, late.ts_ns + half, 2 * 10**9),  # a new stretch: the gap between is a stall
        ("rtsp", video.ts_ns, video.ts_ns + half, 120 * 10**9),
    ]


async def test_a_device_down_is_evaluated_within_a_second_not_at_the_end_of_the_cycle(tmp_path):
    async with flow(tmp_path, [running(IcmpProbe(IcmpConfig()))]) as (pipeline, alerting):
        for d in DEVICES:
            pipeline.on_result(result("icmp", d.id, d.id not in ("SW1", "C1", "C2", "C3")))
        started = time.monotonic()
        (fault,) = await until(alerting.faults.open_faults, 3 * EARLY_EVALUATION_S, "the early evaluation")
        assert time.monotonic() - started >= EARLY_EVALUATION_S * 0.9  # the devices behind it reported first
        assert fault.device_id == "SW1" and fault.state is FaultState.FIRING
        assert fault.affected == ("C1", "C2", "C3")  # one fault, the cameras behind it listed


async def test_no_early_evaluation_once_closed(tmp_path):
    async with flow(tmp_path, [running(IcmpProbe(IcmpConfig()))]) as (pipeline, alerting):
        pipeline.close()
        pipeline.on_result(result("icmp", "C2", False))
        await asyncio.sleep(EARLY_EVALUATION_S + 0.5)
        assert alerting.faults.open_faults() == []


async def test_the_onvif_stream_uri_is_handed_to_the_rtsp_probe(tmp_path):
    with RtspServer() as server:
        # The template leads to a 404; only the learned URI (its path and port, on the device's
        # own address) reaches the sub stream.
        cfg = RtspConfig(port=server.port, url_template="rtsp://{host}:{port}/template/path")
        async with RtspProbe(cfg) as rtsp:
            onvif = running(OnvifProbe(OnvifConfig()), CAMERAS)
            async with flow(tmp_path, [onvif, running(rtsp, CAMERAS)]) as (pipeline, _):
                c1 = INV.devices["C1"]
                assert (await rtsp.probe(c1)).reason == "404 Not Found"
                pipeline.on_result(result("onvif", "C1", True, stream_uri=f"rtsp://u:p@10.99.0.7:{server.port}{SUB_STREAM}"))
                learned = await rtsp.probe(c1)
                assert learned.ok and learned.fields["video_codec"] == "JPEG"
                # Only the probe's own hints are passed: another probe's field of that name is not one.
                pipeline.on_result(result("rtsp", "C1", True, stream_uri="rtsp://10.99.0.7/elsewhere"))
                assert (await rtsp.probe(c1)).fields["video_codec"] == "JPEG"


async def test_onvif_main_stream_goes_to_the_rtsp_probe_and_its_sub_stream_to_the_frame_check(tmp_path, monkeypatch):
    """End to end: the ONVIF probe against the simulator (a 1920×1080 main profile whose path
    the RTSP server does not serve, a 640×360 sub profile on SUB_STREAM) → the pipeline → the
    video-online probe keeps the main stream (404), the frame check reads the sub-stream unless
    configured (or overridden for the camera) to read the main one."""
    monkeypatch.setenv("FLEETMON_TEST_ONVIF_PASSWORD", "Cam-pass-7731")
    with RtspServer() as server:
        identity = {"password": "Cam-pass-7731", "rtsp_port": server.port,
                    "media": [{"width": 1920, "height": 1080, "uri": "/main/not/served"},
                              {"width": 640, "height": 360, "uri": SUB_STREAM}]}
        async with OnvifSimulator({"default": identity}, hosts=["127.0.0.1"]) as sim:
            onvif = OnvifProbe(OnvifConfig(port=sim.port, timeout_s=3, username="admin",
                                           password_env="FLEETMON_TEST_ONVIF_PASSWORD"))
            template = "rtsp://{host}:{port}/template/path"
            rtsp = RtspProbe(RtspConfig(port=server.port, url_template=template))
            frame = RtspFrameProbe(RtspFrameConfig(enabled=True, port=server.port, url_template=template))
            main_frame = RtspFrameProbe(RtspFrameConfig(enabled=True, port=server.port, url_template=template,
                                                        stream_overrides=[{"match": {"region": ["R1"]}, "stream": "main"}]))
            probes = [running(onvif, CAMERAS), running(rtsp, CAMERAS), running(frame, CAMERAS)]
            async with onvif, rtsp, frame, main_frame, flow(tmp_path, probes) as (pipeline, _):
                c1 = INV.devices["C1"]
                assert (await frame.probe(c1)).reason == "404 Not Found"  # nothing learned: the template
                told = await onvif.probe(c1)
                assert told.fields["sub_stream_uri"].endswith(SUB_STREAM)
                pipeline.on_result(told)
                assert (await rtsp.probe(c1)).reason == "404 Not Found"  # the main stream's path
                sub = await frame.probe(c1)
                assert sub.ok and (sub.fields["width"], sub.fields["height"]) == (320, 240), sub.reason
                # A pipeline runs one probe per name: the overridden one is handed the hints as it would be.
                for hint in set(OnvifProbe.offers) & set(RtspFrameProbe.learns):
                    main_frame.learn("C1", hint, told.fields[hint])
                assert main_frame.stream_for(c1) == "main"
                assert (await main_frame.probe(c1)).reason == "404 Not Found"


async def test_a_cycle_writes_its_basis_online_rates_faults_and_itself(tmp_path, influx: InfluxServer, influx_db: str):
    cfg = InfluxDBConfig(url=influx.url, database=influx_db, flush_interval_s=0.05, timeout_s=5.0)
    icmp, rtsp = running(IcmpProbe(IcmpConfig())), running(RtspProbe(RtspConfig()), CAMERAS)
    async with InfluxSink(cfg) as sink:
        async with flow(tmp_path, [icmp, rtsp], MetricsWriter(sink)) as (pipeline, alerting):
            for d in DEVICES:
                pipeline.on_result(result("icmp", d.id, d.id != "C3", rtt_avg_ms=1.5))
            await until(alerting.faults.open_faults, 3, "the fault of C3")
            for d in CAMERAS:
                pipeline.on_result(result("rtsp", d.id, d.id == "C1"))
            pipeline.on_cycle(report("rtsp", 3, 1))

    def rows(q: str) -> list[dict]:
        return influx.rows(q, influx_db)

    # The cycle of rtsp settles video and online for the cameras it polls, not the switch.
    states = {(r["device_id"], r["basis"]): r["state"] for r in rows('SELECT * FROM device_state')}
    assert states == {("C1", "video"): "up", ("C2", "video"): "down", ("C3", "video"): "unreachable",
                      ("C1", "online"): "up", ("C2", "online"): "down", ("C3", "online"): "down"}
    bases = {r["basis"] for r in rows("SELECT * FROM online_rate WHERE scope = 'fleet' AND kind = 'all'")}
    assert bases == {"online", "network", "video"}
    assert {r["severity"]: r["count"] for r in rows("SELECT * FROM faults_open")} == {"critical": 0, "major": 0, "minor": 1}
    (cycle,) = rows("SELECT * FROM fleetmon_cycle")
    assert (cycle["probe"], cycle["targets"], cycle["ok"], cycle["failed"]) == ("rtsp", 3, 1, 2)
    (event,) = rows("SELECT * FROM fault_event")
    assert (event["device_id"], event["event"], event["state"], event["rule"], event["severity"]) == (
        "C3", "firing", "firing", "down", "minor")
    assert len(rows("SELECT * FROM icmp")) == 5 and len(rows("SELECT * FROM rtsp")) == 3


def test_the_log_names_a_dead_switch_once_and_sums_up_the_devices_behind_it(caplog):
    caplog.set_level(logging.DEBUG, logger="fleetmon")
    icmp = StateTracker(INV, "icmp", down_after=1, up_after=1)
    rtsp = StateTracker(INV, "rtsp", down_after=1, up_after=1)
    tlog = TransitionLog(INV, {"icmp": icmp, "rtsp": rtsp}, network="icmp")
    for d in DEVICES:
        tlog.log([t for t in [icmp.observe(result("icmp", d.id, d.id == "L1"))] if t is not None])
    tlog.log([rtsp.observe(result("rtsp", "C1", False, "connect timeout"))])
    tlog.summary()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["switch SW1 unknown → down: timeout"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["1 devices: first verdict up", "3 devices unreachable behind switch SW1 (SW1)"]
    # The camera's video lost behind a dead switch is no news: debug, with the probe's name.
    (video,) = [r for r in caplog.records if "rtsp" in r.getMessage()]
    assert video.levelno == logging.DEBUG and video.getMessage() == "camera C1 rtsp unknown → down: connect timeout"
    caplog.clear()
    tlog.summary()
    assert caplog.records == []  # counted once


@pytest.mark.parametrize("network", [None, "icmp"])
def test_without_a_network_probe_every_probe_is_named(caplog, network):
    caplog.set_level(logging.INFO, logger="fleetmon")
    rtsp = StateTracker(INV, "rtsp", down_after=1, up_after=1)
    TransitionLog(INV, {"rtsp": rtsp}, network=network).log([rtsp.observe(result("rtsp", "C2", False, "404 Not Found"))])
    assert [r.getMessage() for r in caplog.records] == ["camera C2 rtsp unknown → down: 404 Not Found"]


async def test_no_rate_for_a_basis_before_its_probe_judged_a_device_of_the_group(tmp_path, influx: InfluxServer,
                                                                                influx_db: str):
    """Start-up (issue 13): the network says the cameras are down, the video probe has not run yet.
    Their video is UNREACHABLE by derivation, but no video probe judged any of them: a video
    online rate of 0.00 % would be false (unknown is not down), so none is written."""
    cfg = InfluxDBConfig(url=influx.url, database=influx_db, flush_interval_s=0.05, timeout_s=5.0)
    icmp, rtsp = running(IcmpProbe(IcmpConfig())), running(RtspProbe(RtspConfig()), CAMERAS)
    snapshots: list[Snapshot] = []
    async with InfluxSink(cfg) as sink:
        async with flow(tmp_path, [icmp, rtsp], MetricsWriter(sink), snapshots) as (pipeline, _):
            for d in DEVICES:
                pipeline.on_result(result("icmp", d.id, d.kind is not Kind.CAMERA))
            pipeline.on_cycle(report("icmp", 5, 2))
            early = snapshots[-1]
            pipeline.on_result(result("rtsp", "C1", False, "connection refused"))
            pipeline.on_cycle(report("rtsp", 3, 0))
            judged = snapshots[-1]
    assert early.bases["video"] == {"C1": X, "C2": X, "C3": X}  # derived, not judged by rtsp
    video = {(r.scope, r.kind): r for r in early.rates if r.basis == "video"}
    assert video[("region", "camera")].offline == 3 and video[("region", "camera")].rate_pct is None
    online = {(r.scope, r.kind): r for r in early.rates if r.basis == "online"}
    assert online[("region", "camera")].rate_pct == 0.0  # the network judged them: a true 0 %
    # Once rtsp judged one camera of the group, the unreachable ones count as offline again.
    assert {(r.scope, r.kind): r.rate_pct for r in judged.rates if r.basis == "video"}[("region", "camera")] == 0.0
    rows = influx.rows("SELECT online_rate_pct FROM online_rate WHERE basis = 'video' AND \"scope\" = 'region' "
                       "AND kind = 'camera'", influx_db)
    assert [r["online_rate_pct"] for r in rows] == [0.0]  # only the judged cycle's
