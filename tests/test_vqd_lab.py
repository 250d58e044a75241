"""The lab's picture defects (lab/rtsp_server.py with scenes, lab/vqd_streams.py) diagnosed by the
frame check as each defect, and the picture judged clean again once the defect is switched off."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from functools import partial

import pytest

from lab.rtsp import RtspServer
from lab.vqd_streams import STREAM_DEFECTS, pick_defects, write_scenes
from probes.rtsp import RtspFrameConfig, RtspFrameProbe
from probes.vqd.config import VqdConfig
from tests.plugins.factories import device

pytestmark = [pytest.mark.alone, pytest.mark.peer, pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")]
ADDRESSES = [f"127.0.0.{i}" for i in range(2, 2 + len(STREAM_DEFECTS) + 1)]  # one camera per defect, one clean
camera = partial(device, site="s1", region="r1")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    scenes = write_scenes(tmp_path_factory.mktemp("scenes"))
    with RtspServer(bind="0.0.0.0", scenes=scenes) as server:  # 127.0.0.0/8: an address per camera
        yield server


def test_pick_defects_is_seeded_and_covers_every_defect() -> None:
    ids = [f"C{i}" for i in range(40)]
    picked = pick_defects(ids, per_defect=2, seed=3)
    assert picked == pick_defects(ids, per_defect=2, seed=3) != pick_defects(ids, per_defect=2, seed=4)
    assert sorted(picked.values()) == sorted(STREAM_DEFECTS * 2)


def test_set_defects_refuses_unknown_names(lab: RtspServer) -> None:
    lab.set_defects({"127.0.0.99": "smudge"})  # the server keeps its previous map and says why
    assert "want {address: one of" in lab.log_path.read_text()
    lab.set_defects({})


async def test_each_defect_diagnosed_then_cleared(lab: RtspServer, tmp_path) -> None:
    cameras = [camera(id=f"C{i}", address=a) for i, a in enumerate(ADDRESSES)]
    truth = dict(zip(ADDRESSES, STREAM_DEFECTS))  # the last address stays clean
    cfg = RtspFrameConfig(port=lab.port, max_concurrency=4, vqd=VqdConfig(enabled=True, burst_gap_s=2.0),
                          thumbnail_dir=tmp_path)

    async def check(expected: dict[str, str]) -> None:
        """One frame check of every camera; fails naming each camera judged other than `expected`
        (address → faults; absent: clean) with all its scores."""
        results = await asyncio.gather(*(probe.probe(c) for c in cameras))
        assert all(r.ok for r in results), [r.reason for r in results]
        fields = {str(c.address): r.series[0].fields for c, r in zip(cameras, results)}
        wrong = {a: (expected.get(a, ""), dict(f)) for a, f in fields.items() if f["faults"] != expected.get(a, "")}
        assert not wrong, wrong

    async with RtspFrameProbe(cfg) as probe:
        await check({})  # clean first: each camera's reference frame
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{c.id}.jpg" for c in cameras)
        lab.set_defects(truth)
        await check(truth)
        lab.set_defects({})  # the streams switched back
        await check({})
