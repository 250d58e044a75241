"""画面正常 as a basis the online definition can include (issue 17, deliverable 3): the frame
check's video-quality verdict (probes.rtsp_frame.vqd: `video_quality.picture_ok`) feeds the
`picture` basis through its own tracker (monitor.state.availability.PICTURE); with
availability.online_requires [network, video, picture] a camera with a frozen picture is
offline, under the default it is online; device_state and online_rate carry the basis.

Real peers: the Pipeline on a real state database, recorder and alerting, a real InfluxDB for
what it writes; the frame check's results as the probe makes them (a `video_quality` series).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab.influxdb import InfluxServer
from monitor.app.config import ConfigError, load_config
from monitor.assess.availability import availability
from monitor.assess.config import AvailabilityAssessmentConfig
from monitor.assess.periods import Period
from monitor.app.pipeline import Pipeline
from monitor.app.snapshot import Snapshot
from monitor.core.model import Basis
from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.sink import InfluxSink
from monitor.metrics.writer import MetricsWriter
from monitor.state.availability import PICTURE, AvailabilityConfig, picture_verdict
from monitor.state.db import StateDB
from monitor.state.tracker import State, StateTracker
from probes.base import ProbeResult, Series
from probes.icmp import IcmpConfig, IcmpProbe
from probes.rtsp import RtspFrameConfig, RtspFrameProbe
from probes.vqd.config import VqdConfig
from tests.test_pipeline import CAMERAS, DEVICES, INV, report, result, running
from tests.test_pipeline import flow as pipeline_flow

U, D, X, K = State.UP, State.DOWN, State.UNREACHABLE, State.UNKNOWN
WITH_PICTURE = [Basis.NETWORK, Basis.VIDEO, Basis.PICTURE]
DEFAULT = AvailabilityConfig().online_requires


def frame(device_id: str, faults: str | None) -> ProbeResult:
    """A frame check's result: a decoded burst diagnosed with `faults` ("" = picture normal),
    or, with None, no frame decoded (no series)."""
    if faults is None:
        return ProbeResult(device_id, "rtsp_frame", time.time_ns(), False, "no frame decoded", {"up": False})
    scores = {"frozen_score": 0.99 if "frozen" in faults else 0.1, "blur_score": 0.05}
    series = Series("video_quality", {}, {**scores, "faults": faults, "picture_ok": not faults, "frames": 2})
    return ProbeResult(device_id, "rtsp_frame", time.time_ns(), True, None, {"up": True}, series=(series,))


@contextlib.asynccontextmanager
async def flow(tmp_path: Path, online_requires: list[Basis], metrics: MetricsWriter | None = None,
               snapshots: list[Snapshot] | None = None) -> AsyncIterator[Pipeline]:
    """icmp over every device and the frame check with vqd over the cameras, with the picture
    tracker the daemon makes for it (hysteresis 1/1 like the probes' here)."""
    probe = RtspFrameProbe(RtspFrameConfig(enabled=True, vqd=VqdConfig(enabled=True)))
    probes = [running(IcmpProbe(IcmpConfig())), running(probe, CAMERAS)]
    picture = StateTracker(INV, PICTURE, down_after=1, up_after=1)
    async with pipeline_flow(tmp_path, probes, metrics, snapshots, online_requires, picture) as (pipeline, _):
        yield pipeline


def feed(pipeline: Pipeline, faults: dict[str, str | None]) -> None:
    """Every device answers ping; each camera's frame check as `faults` says (absent: not checked)."""
    for d in DEVICES:
        pipeline.on_result(result("icmp", d.id, True))
    pipeline.on_cycle(report("icmp", len(DEVICES), len(DEVICES)))
    for camera, found in faults.items():
        pipeline.on_result(frame(camera, found))
    pipeline.on_cycle(report("rtsp_frame", len(CAMERAS), sum(f is not None for f in faults.values())))


@pytest.mark.parametrize(("online_requires", "c2_online"), [(WITH_PICTURE, D), (DEFAULT, U)])
async def test_a_frozen_picture_is_offline_only_when_online_requires_the_picture(tmp_path, online_requires, c2_online):
    snapshots: list[Snapshot] = []
    async with flow(tmp_path, online_requires, snapshots=snapshots) as pipeline:
        feed(pipeline, {"C1": "", "C2": "frozen"})  # C3 never checked
        unchecked = pipeline.snapshot
        assert unchecked is not None
        pipeline.on_result(frame("C3", None))  # now checked: no frame decoded
        pipeline.on_cycle(report("rtsp_frame", 3, 2))
    last = snapshots[-1]
    assert unchecked.bases["picture"] == {"C1": U, "C2": D, "C3": K}  # never checked: unknown
    # No frame: the video is down and speaks for it; the picture cannot be judged.
    assert last.bases["video"] == {"C1": U, "C2": U, "C3": D}
    assert last.bases["picture"] == {"C1": U, "C2": D, "C3": X}
    assert {d: last.bases["online"][d] for d in ("C1", "C2", "C3")} == {"C1": U, "C2": c2_online, "C3": D}
    if online_requires == WITH_PICTURE:
        assert unchecked.bases["online"]["C3"] is K  # the picture required and not yet seen
    fleet = {r.basis: r for r in last.rates if r.scope == "fleet" and r.kind == "camera"}
    assert (fleet["picture"].online, fleet["picture"].offline, fleet["picture"].rate_pct) == (1, 2, pytest.approx(100 / 3))
    async with StateDB(tmp_path / "state.db") as db:
        stored = [(t.device_id, t.probe, t.old, t.new, t.reason) for t in await db.transitions()
                  if t.probe == PICTURE]
    # The tracker's verdicts only: C3's unreachable picture is derived from its video, not seen.
    assert stored == [("C1", PICTURE, K, U, None), ("C2", PICTURE, K, D, "picture: frozen")]


async def test_the_picture_clears_when_a_check_finds_it_normal_again(tmp_path):
    async with flow(tmp_path, WITH_PICTURE) as pipeline:
        feed(pipeline, {"C1": "", "C2": "frozen", "C3": "blur,dark"})
        before = pipeline.snapshot
        feed(pipeline, {"C2": ""})
        after = pipeline.snapshot
    assert before is not None and after is not None
    assert [before.bases["online"][c] for c in ("C1", "C2", "C3")] == [U, D, D]
    assert [after.bases["online"][c] for c in ("C1", "C2", "C3")] == [U, U, D]
    assert before.results["rtsp_frame"]["C3"].series[0].fields["faults"] == "blur,dark"


async def test_device_state_and_online_rate_carry_the_picture(tmp_path, influx: InfluxServer, influx_db: str):
    cfg = InfluxDBConfig(url=influx.url, database=influx_db, flush_interval_s=0.05, timeout_s=5.0)
    async with InfluxSink(cfg) as sink:
        async with flow(tmp_path, WITH_PICTURE, MetricsWriter(sink)) as pipeline:
            feed(pipeline, {"C1": "", "C2": "frozen", "C3": ""})
    states = {(r["device_id"], r["basis"]): r["state"] for r in influx.rows("SELECT * FROM device_state", influx_db)
              if r["basis"] in ("picture", "online") and r["device_id"] in ("C1", "C2", "C3")}
    assert states == {("C1", "picture"): "up", ("C2", "picture"): "down", ("C3", "picture"): "up",
                      ("C1", "online"): "up", ("C2", "online"): "down", ("C3", "online"): "up"}
    rates = {r["basis"]: r for r in influx.rows(
        "SELECT * FROM online_rate WHERE scope = 'fleet' AND kind = 'camera'", influx_db)}
    assert set(rates) == {"online", "network", "video", "picture"}
    assert (rates["picture"]["online"], rates["picture"]["offline"]) == (2, 1)


@pytest.mark.parametrize("online_requires", [WITH_PICTURE, DEFAULT])
async def test_the_period_assessment_reads_what_the_pipeline_stored(tmp_path, online_requires):
    """End to end: the picture's transitions and its cycles (watched with the frame check's
    while vqd is on) go to the state database, and the period assessment counts the picture
    basis from them, in online only when online_requires lists it."""
    start = time.time_ns()
    async with flow(tmp_path, online_requires) as pipeline:
        feed(pipeline, {"C1": "", "C2": "frozen", "C3": ""})
        feed(pipeline, {"C1": "", "C2": "frozen", "C3": ""})
    end = time.time_ns() + 1
    async with StateDB(tmp_path / "state.db") as db:
        watched = await db.execute(lambda conn: {r[0] for r in conn.execute("SELECT probe FROM probe_watch")})
        report = await availability(db, INV, Period("test", "custom", start, end, "Asia/Shanghai"),
                                    AvailabilityAssessmentConfig(), online_requires=online_requires)
    assert watched == {"icmp", "rtsp_frame", PICTURE}
    c1, c2 = report.points["C1"].figures, report.points["C2"].figures
    assert c2[Basis.PICTURE].down_ns > 0 and c2[Basis.PICTURE].up_ns == 0
    assert c1[Basis.PICTURE].up_ns > 0 and c1[Basis.PICTURE].down_ns == 0
    expected = c2[Basis.PICTURE].down_ns if online_requires == WITH_PICTURE else 0
    assert c2[Basis.ONLINE].down_ns == expected


async def test_without_the_diagnosis_no_picture_cycle_is_recorded(tmp_path):
    probe = RtspFrameProbe(RtspFrameConfig(enabled=True))
    async with pipeline_flow(tmp_path, [running(IcmpProbe(IcmpConfig())), running(probe, CAMERAS)]) as (pipeline, _):
        feed(pipeline, {"C1": ""})
    async with StateDB(tmp_path / "state.db") as db:
        watched = await db.execute(lambda conn: {r[0] for r in conn.execute("SELECT probe FROM probe_watch")})
    assert watched == {"icmp", "rtsp_frame"}


def test_the_verdict_comes_from_the_video_quality_series_only():
    assert picture_verdict(frame("C1", "")).ok is True
    frozen = picture_verdict(frame("C1", "frozen"))
    assert frozen is not None and (frozen.ok, frozen.reason, frozen.probe) == (False, "picture: frozen", PICTURE)
    assert picture_verdict(frame("C1", None)) is None  # no frame decoded
    assert picture_verdict(ProbeResult("C1", "rtsp_frame", 1, True, None, {"up": True})) is None  # vqd off


@pytest.mark.parametrize(("yaml", "message"), [
    ("availability:\n  online_requires: [network, video, picture]\n",
     ":2: availability: online_requires lists picture (画面正常), which needs probes.rtsp_frame.enabled and "
     "probes.rtsp_frame.vqd.enabled"),
    ("probes:\n  rtsp_frame: {enabled: true}\navailability:\n  online_requires: [network, picture]\n",
     ":4: availability: online_requires lists picture"),
    ("probes:\n  rtsp_frame: {enabled: false, vqd: {enabled: true}}\navailability:\n  online_requires: [picture]\n",
     ":4: availability: online_requires lists picture"),
    ("availability:\n  online_requires: [network, online]\n",
     "online_requires lists measured bases: network, service, video, picture"),
])
def test_picture_without_the_frame_checks_diagnosis_is_a_located_error(tmp_path, yaml, message):
    path = tmp_path / "config.yaml"
    path.write_text(f"state: {{database: {tmp_path / 'state.db'}}}\n" + yaml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_picture_with_the_diagnosis_on_is_accepted(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"state: {{database: {tmp_path / 'state.db'}}}\n"
                    "probes:\n  rtsp_frame: {enabled: true, vqd: {enabled: true}}\n"
                    "availability:\n  online_requires: [network, video, picture]\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.availability.online_requires == WITH_PICTURE
    assert cfg.probes.rtsp_frame.thumbnail_dir == tmp_path / "thumbnails"
