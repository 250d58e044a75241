"""probes/vqd: config (per-camera overrides, strictness, the burst inside the timeout), the
measures' documented edge cases (IR black-and-white is no colour cast, bad frames refused)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from lab.vqd_data import photo
from monitor.core.model import Kind
from probes.rtsp import RtspFrameConfig
from probes.vqd import measures
from probes.vqd.config import VqdConfig
from probes.vqd.diagnose import diagnose
from tests.plugins.factories import device


def test_thresholds_overridden_per_camera_first_match_wins() -> None:
    cfg = VqdConfig.model_validate({"overrides": [
        {"match": {"site": ["lake"]}, "occlusion": 0.5},
        {"match": {"kind": ["camera"]}, "occlusion": 0.3, "dark": 0.9},
    ]})
    lake = device("c1", Kind.CAMERA, site="lake")
    other = device("c2", Kind.CAMERA, site="road")
    assert cfg.thresholds_for(lake).occlusion == 0.5 and cfg.thresholds_for(lake).dark == cfg.thresholds.dark
    assert (cfg.thresholds_for(other).occlusion, cfg.thresholds_for(other).dark) == (0.3, 0.9)
    assert cfg.thresholds_for(None) is cfg.thresholds


@pytest.mark.parametrize("data, message", [
    ({"thresholds": {"blurr": 0.5}}, "Extra inputs"),
    ({"thresholds": {"blur": 1.5}}, "less than or equal to 1"),
    ({"overrides": [{"blur": 0.5}]}, "match"),
])
def test_config_errors(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VqdConfig.model_validate(data)


def test_burst_must_fit_in_the_frame_check_timeout() -> None:
    with pytest.raises(ValidationError, match="burst_gap_s"):
        RtspFrameConfig(timeout_s=6, vqd=VqdConfig(enabled=True, burst_gap_s=3))
    assert RtspFrameConfig(timeout_s=8, vqd=VqdConfig(enabled=True, burst_gap_s=3)).vqd.enabled


def test_infrared_black_and_white_is_no_colour_cast() -> None:
    day = measures.prepare(photo("coffee"))
    night = measures.prepare(photo("camera")[:400, :600])  # grey: an IR picture
    assert measures.colour_cast(night, measures.reference(day)) == 0.0
    assert measures.colour_cast(night, None) == 0.0
    tinted = night.bgr.astype(np.float32) * [1.0, 1.0, 1.6]  # red gain: IR-cut filter stuck
    assert measures.colour_cast(measures.prepare(np.clip(tinted, 0, 255).astype(np.uint8)), None) > 0.3


@pytest.mark.parametrize("image, message", [
    (np.zeros((10, 10, 3), np.uint8), "too small"),
    (np.zeros((100, 100, 3), np.float32), "uint8"),
    (np.zeros((100, 100, 2), np.uint8), "channels"),
])
def test_bad_frames_refused(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        diagnose([image], None, VqdConfig().thresholds)


def test_solid_blue_no_video_screen() -> None:
    blue = np.zeros((270, 480, 3), np.uint8)
    blue[:] = (200, 20, 0)
    d = diagnose([blue, blue.copy()], None, VqdConfig().thresholds)
    assert d.faults == ("signal_loss",)  # frozen and dark too, but suppressed
