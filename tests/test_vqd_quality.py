"""Video-quality diagnosis on the held-out photographs of lab/vqd_data.py (HELD_OUT: never seen
when the thresholds were chosen), with the shipped default thresholds and the full verdict
(suppression included). A quality assertion, not a timing.

Issue 17's target is precision and recall ≥ 0.95 per diagnosis and ≤ 1 % false alarms on clean
pictures. This test scores the held-out split bench/vqd.py prints at 384 px (docs/VQD.md,
"Accuracy"): 10 samples per label and photograph, seed 18, 1,300 samples, 130 per label, so
that one sample is 0.8 % of a label (at 3 per photograph one clean sample was 2.6 %, above the
target by itself, and one miss of 39 0.974). Every diagnosis must meet the target.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lab.vqd_data import DEFECTS, HELD_OUT, WIDTH, photo, quality, sample, score_all
from probes.vqd.config import Thresholds

TARGET = 0.95
PER_PHOTO, SEED = 10, 18  # bench/vqd.py's held-out split: --per-photo 10, its --seed 17 + 1


@pytest.fixture(scope="module")
def held_out():
    table, false_alarms = quality(score_all(HELD_OUT, PER_PHOTO, SEED), Thresholds())
    return {q.diagnosis: q for q in table}, false_alarms


@pytest.mark.parametrize("diagnosis", DEFECTS)
def test_diagnoses_meet_the_target(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    assert q.precision >= TARGET and q.recall >= TARGET, q


def test_false_alarms_on_clean_pictures(held_out) -> None:
    # Target 1 %: one of the 130 clean samples is 0.77 %, two are 1.54 %.
    assert held_out[1] <= 0.01


@pytest.mark.parametrize("label", ["clean", "bright", "occlusion", "noise", "moved"])
def test_the_sub_stream_render_is_the_same_sample(label: str) -> None:
    # One generator per sample, drawn before the size applies: at 640×360 the same crop,
    # exposures, defect and strength as at 384 px (a 4:3 draw's middle 16:9 band), only the
    # sensor noise, OSD and JPEG redrawn at that size. Another seed is another sample.
    src = photo("coffee")

    def band(seed: int, size) -> np.ndarray:
        """The first frame's luma, 16:9, averaged over blocks of 8 px at 384 px wide (sensor
        noise and snow are redrawn per size; the picture is not)."""
        image = cv2.cvtColor(sample("coffee", src, label, seed, size).frames[0], cv2.COLOR_BGR2GRAY)
        if size is None:
            top = (image.shape[0] - WIDTH * 9 // 16) // 2
            image = image[top:top + WIDTH * 9 // 16]
        return cv2.resize(image, (WIDTH // 8, WIDTH * 9 // 128), interpolation=cv2.INTER_AREA).astype(np.float32)

    inner = (slice(3, -3), slice(3, -3))  # the OSD at the corners is drawn at each size's scale
    for seed in (1, 2, 3):
        native, sub = band(seed, None), band(seed, (640, 360))
        # 0.3–2.6 grey levels apart (a cover, placed in the frame's own proportions, 6.6);
        # another sample 26–73
        assert np.abs(native - sub)[inner].mean() < 8, seed
        assert np.abs(native - band(seed + 10, (640, 360)))[inner].mean() > 20, seed
