"""probes/vqd: config (per-camera overrides, strictness, the burst inside the timeout), the
measures' documented edge cases (IR black-and-white is no colour cast, bad frames refused)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from lab.vqd_data import photo
from monitor.core.model import Kind
from probes.rtsp import RtspFrameConfig
from probes.vqd import measures
from probes.vqd.config import VqdConfig
from probes.vqd.diagnose import diagnose, judge
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


def _frame(image: np.ndarray) -> measures.Frame:
    return measures.prepare(np.clip(image, 0, 255).astype(np.uint8))


def test_dark_is_dark_and_darker_than_the_reference() -> None:
    street = photo("coffee").astype(np.float32)
    night = street * 0.15  # a street dark by nature: its reference is as dark
    ref = measures.reference(_frame(night))
    assert measures.luma(_frame(night * 1.1), ref) < 0.2  # as dark as usual: no fault
    assert measures.luma(_frame(night * 1.1), None) > 0.7  # absolute only: would be dark
    assert measures.luma(_frame(night * 0.1), ref) > 0.85  # IR lamp out: far darker than usual


def test_a_dark_picture_that_still_shows_the_scene_is_no_lost_signal() -> None:
    scene = photo("camera").astype(np.float32)
    ref = measures.reference(_frame(scene))
    rng = np.random.default_rng(1)
    dim, dim_later = (_frame(scene * 0.06 + rng.normal(0, 1.0, scene.shape)) for _ in range(2))  # sensor noise
    black = _frame(np.full_like(scene, 6.0))
    assert measures.signal_loss(dim, ref) < 0.5 < measures.signal_loss(dim, None)
    assert measures.signal_loss(black, ref) > 0.95
    d = diagnose([dim.bgr, dim_later.bgr], ref, VqdConfig().thresholds)
    assert d.faults == ("dark",)


def test_near_black_blocks_show_nothing_either_way_for_a_frozen_picture() -> None:
    # A live night picture whose noise the encoder and the scaling to 480 px wiped out: every
    # block identical between the two frames. Its near-black blocks are not judged: not frozen.
    scene = photo("camera").astype(np.float32)
    rng = np.random.default_rng(2)
    night = np.clip(scene * 0.05, 0, 255).astype(np.uint8)  # block means < BLACK_BLOCK
    assert measures.frozen([measures.prepare(night), measures.prepare(night.copy())]) == 0.0
    # A frozen picture half in the dark (a night street under a lamp): its lit half decides.
    half = np.concatenate([scene[:, : scene.shape[1] // 2] * 0.05, scene[:, scene.shape[1] // 2:]], axis=1)
    frozen = _frame(half)
    assert measures.frozen([frozen, _frame(half)]) == 1.0
    # ... and the same picture live: the lit half's sensor noise changes every lit block.
    live = [_frame(half + rng.normal(0, 1.5, half.shape)) for _ in range(2)]
    assert measures.frozen(live) < 0.2
    assert measures.frozen([frozen, frozen]) >= VqdConfig().thresholds.frozen


def test_cast_is_a_shift_of_every_block_not_an_object_across_part_of_the_view() -> None:
    scene = photo("coffee").astype(np.float32)
    ref = measures.reference(_frame(scene))
    covered = scene.copy()
    covered[:, : covered.shape[1] // 4] = (40, 140, 60)  # a green branch over a quarter of the view
    assert measures.colour_cast(_frame(covered), ref) < 0.05
    assert measures.colour_cast(_frame(scene * [1.0, 1.0, 1.5]), ref) > 0.25  # red gain up by half


def test_blur_against_the_reference() -> None:
    scene = photo("astronaut")
    ref = measures.reference(measures.prepare(scene))
    soft = cv2.GaussianBlur(scene, (0, 0), 3.0)
    assert measures.blur(measures.prepare(scene), ref) < 0.05
    assert measures.blur(measures.prepare(soft), ref) > VqdConfig().thresholds.blur


def test_a_displaced_view_is_moved_not_blurred_occluded_or_tinted() -> None:
    thresholds = VqdConfig().thresholds
    scores = {"blur": 0.9, "occlusion": 0.9, "cast": 0.9, "moved": 0.2}
    assert judge(scores, thresholds) == ("moved",)
    assert judge({**scores, "moved": 1.0}, thresholds) == ("blur",)  # unmatched: blurred beyond recognition


def test_a_gain_wide_open_on_a_scene_dark_by_nature_is_too_bright() -> None:
    dusk = photo("coffee").astype(np.float32) * 0.25  # dark by nature: nothing clips at 3.5×
    ref = measures.reference(_frame(dusk))
    threshold = VqdConfig().thresholds.bright
    assert measures.bright(_frame(dusk * 1.3), ref) < threshold  # an ordinary exposure change
    assert measures.bright(_frame(dusk * 3.5), ref) >= threshold
    assert measures.exposure_gain(_frame(dusk * 3.5), ref) == pytest.approx(np.log(3.5), abs=0.15)


def _gain(frame: measures.Frame, ref: measures.Reference) -> float:
    """The gain bright's gain term reads (×, not log)."""
    return float(np.exp(max(measures.exposure_gain(frame, ref) or 0.0, measures.clip_gain(frame, ref))))


def test_a_gain_wide_open_on_a_scene_bright_by_nature_is_read_at_its_size() -> None:
    # A sky and a pale façade: at ×4 the blocks that would show the gain clip flat or partly;
    # the median over every textured block read ×1.76 here (×1.75 for ×3.85 on the
    # labelled set's astronaut), the near-white share by rank reads the gain itself.
    building = photo("cv_building").astype(np.float32)
    ref = measures.reference(_frame(building))
    assert _gain(_frame(building * 1.3), ref) == pytest.approx(1.3, rel=0.1)  # an ordinary change
    assert _gain(_frame(building * 4.0), ref) == pytest.approx(4.0, rel=0.1)
    # Blocks partly clipped no longer vote: the bright cup scene at ×4 scored 0.427 (the gain
    # read ×2.35), under the threshold; now too bright, and ×1.3 is not.
    coffee = photo("coffee").astype(np.float32)
    ref = measures.reference(_frame(coffee))
    threshold = VqdConfig().thresholds.bright
    assert measures.bright(_frame(coffee * 1.3), ref) < threshold
    assert measures.bright(_frame(coffee * 4.0), ref) >= threshold


def test_clip_gain_is_silent_without_new_near_white() -> None:
    building = photo("cv_building").astype(np.float32)
    ref = measures.reference(_frame(building))
    assert measures.clip_gain(_frame(building), ref) == pytest.approx(0.0, abs=0.05)  # as bright as usual
    assert measures.clip_gain(_frame(building * 0.5), ref) == 0.0  # nothing near white: no reading
    cover = building.copy()
    cover[:, : cover.shape[1] // 2] = (120, 150, 200)  # a skin-coloured cover, lit but not white
    assert measures.clip_gain(_frame(cover), ref) < np.log(1.3)


def test_a_view_panned_onto_the_sky_is_no_gain_by_rank() -> None:
    # The rank reading compares histograms: the street panned up by 40 % of the height, at an
    # ordinary ×1.2, has more near white than its reference (×2.8 by rank, too bright alone);
    # its unclipped blocks read ×1.1, so the rank is not taken (RANK_AGREES).
    street = photo("cv_leuven_a").astype(np.float32)
    h = street.shape[0]
    view = int(h * 0.55)
    ref = measures.reference(_frame(street[h - view:]))
    panned = _frame(street[h - view - int(0.4 * h): h - int(0.4 * h)] * 1.2)
    threshold = VqdConfig().thresholds.bright
    assert measures.clip_gain(panned, ref) / measures.GAIN_SCALE >= threshold
    blocks = measures.exposure_gain(panned, ref)
    assert blocks is not None and blocks < np.log(measures.RANK_AGREES)
    assert measures.bright(panned, ref) < threshold


def test_cast_against_a_colour_reference_dark_enough_to_look_grey_in_cielab() -> None:
    dusk = photo("motorcycle_left").astype(np.float32) * 0.2 * [0.8, 1.0, 0.8]  # green under trees at dusk
    ref = measures.reference(_frame(dusk))
    assert measures._is_grey(ref.a, ref.b, 4.0) and not measures._ref_is_grey(ref, 4.0)  # coloured, not IR
    threshold = VqdConfig().thresholds.cast
    assert measures.colour_cast(_frame(dusk * 1.05), ref) < threshold  # the grey world would say 0.27
    assert measures.colour_cast(_frame(dusk * [0.6, 1.0, 1.0]), ref) >= threshold  # blue down: a cast
    grey = measures.reference(_frame(photo("camera").astype(np.float32) * 0.3))
    assert measures._ref_is_grey(grey, 4.0)


def test_occlusion_is_a_cover_not_a_flat_sky_under_a_cast() -> None:
    scene = photo("chelsea").astype(np.float32)
    scene[: scene.shape[0] // 2] = (250, 150, 40)  # the upper half a saturated blue sky over a brown scene
    ref = measures.reference(_frame(scene))
    threshold = VqdConfig().thresholds.occlusion
    # a red cast, darker: the sky's chroma moves unlike the brown scene's (0.5 by a*b* against the median move)
    assert measures.low_texture_share(_frame(scene * [0.6, 0.9, 1.3] * 0.8), ref) < threshold
    covered = scene.copy()
    covered[:, : scene.shape[1] // 3] = (40, 90, 50)  # a green branch from the left border, over sky and scene
    assert measures.low_texture_share(_frame(covered), ref) >= threshold


@pytest.mark.parametrize("shape", [(360, 480), (270, 480), (49, 67)])
def test_block_sums_are_each_blocks_sum_on_an_uneven_grid_and_one_row_or_column_short(shape) -> None:
    values = np.random.default_rng(3).random(shape, dtype=np.float32)
    rows, cols = measures.GRID
    ys = np.linspace(0, shape[0], rows + 1).astype(int)
    xs = np.linspace(0, shape[1], cols + 1).astype(int)
    expected = np.array([[values[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].sum() for j in range(cols)] for i in range(rows)])
    assert np.allclose(measures._block_sums(values), expected, rtol=1e-5)
    counts = np.outer(np.diff(ys), np.diff(xs))
    assert np.allclose(measures._block_means(values), expected / counts, rtol=1e-5)
    # a neighbour difference is a row (column) short: its last block row (column) sums one fewer
    short = np.allclose(measures._block_sums(values[:-1], shape)[:-1], expected[:-1], rtol=1e-5)
    assert short and np.allclose(measures._block_sums(values[:-1], shape)[-1],
                                 expected[-1] - np.add.reduceat(values[-1], xs[:-1]), rtol=1e-4)
    assert np.allclose(measures._block_sums(values[:, :-1], shape)[:, :-1], expected[:, :-1], rtol=1e-5)


def _warped(image: np.ndarray, turn_deg: float = 0.0, zoom: float = 1.0, pan: float = 0.0) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), turn_deg, zoom)
    matrix[0, 2] += pan * w
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_a_still_view_is_measured_without_orb_and_a_moved_one_by_orb() -> None:
    scene = photo("coffee")
    ref = measures.reference(measures.prepare(scene))
    rng = np.random.default_rng(5)
    again = np.clip(scene * 1.1 + rng.normal(0, 2, scene.shape), 0, 255).astype(np.uint8)  # exposure, noise
    still = measures.aligned(measures.prepare(again), ref)
    assert still is not None and still < 0.01
    assert measures.moved(measures.prepare(again), ref) == still
    slight = measures.aligned(measures.prepare(_warped(scene, pan=0.01)), ref)  # 1 % of the width
    assert slight == pytest.approx(0.01, abs=0.003)
    threshold = VqdConfig().thresholds.moved
    # displaced beyond ALIGNED_MAX, by a pan, a turn or a zoom at the default threshold: ORB decides
    for kind in ({"pan": 0.04}, {"turn_deg": 6.0}, {"zoom": 1.1}, {"pan": 0.2}):
        frame = measures.prepare(_warped(scene, **kind))
        assert measures.aligned(frame, ref) is None, kind
        assert measures.moved(frame, ref) >= (0.035 if "pan" in kind and kind["pan"] < 0.1 else threshold), kind
    another_scene = cv2.resize(photo("chelsea"), (scene.shape[1], scene.shape[0]))
    assert measures.aligned(measures.prepare(another_scene), ref) is None


def test_integer_block_sums_are_the_float_ones() -> None:
    """Block sums of uint8 frames summed as integers (no float copy) are the float32 sums, to
    the bit, up to the decoders' largest frame (480 × 2000), on slices of channels too."""
    rng = np.random.default_rng(5)
    for shape in ((270, 480), (360, 480, 3), (2000, 480, 3), (48, 64)):
        values = rng.integers(0, 256, shape, dtype=np.uint8)
        if values.ndim == 3:
            values = values[..., 1:]  # a view, as frame.lab[..., 1:]
        assert np.array_equal(measures._block_sums_u8(values), measures._block_sums(values.astype(np.float32)))
    white = np.full((2000, 480, 3), 255, np.uint8)  # the largest sums
    assert np.array_equal(measures._block_sums_u8(white), measures._block_sums(white.astype(np.float32)))
