"""Video-quality diagnosis on the held-out photographs of lab/vqd_data.py (astronaut, chelsea,
rocket, brick, gravel: never seen when the thresholds were chosen), with the shipped default
thresholds and the full verdict (suppression included). A quality assertion, not a timing.

Issue 17's target is precision and recall ≥ 0.95 per diagnosis and ≤ 1 % false alarms on clean
pictures. This test scores 8 samples per label and photograph (400); bench/vqd.py scores 40
(2,000), where only frozen and noise meet the target. Below target there (blur recall 0.835,
occlusion recall 0.745, dark 0.882/0.820 — near-black frames read as a lost signal —, bright
recall 0.725, cast precision 0.817 — an occluder or glare shifts the grey world —, signal_loss
precision 0.840, moved precision 0.895, false alarms 1.5 %), held here as floors so that a
change cannot make them worse unnoticed.
"""

from __future__ import annotations

import pytest

from lab.vqd_data import HELD_OUT, quality, score_all
from probes.vqd.config import Thresholds

TARGET = 0.95
# (precision, recall) floors where the target is not met yet; on this sample measured 0.905/0.95,
# 1.0/0.725, 0.938/0.75, 1.0/0.75, 0.841/0.925, 0.8/1.0, 0.975/0.975.
FLOORS = {
    "blur": (0.90, 0.80), "occlusion": (0.95, 0.70), "dark": (0.85, 0.75), "bright": (0.95, 0.70),
    "cast": (0.80, 0.85), "signal_loss": (0.80, 0.95), "moved": (0.85, 0.95),
}


@pytest.fixture(scope="module")
def held_out():
    table, false_alarms = quality(score_all(HELD_OUT, 8, 18), Thresholds())
    return {q.diagnosis: q for q in table}, false_alarms


@pytest.mark.parametrize("diagnosis", ["frozen", "noise"])
def test_diagnoses_meeting_the_target(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    assert q.precision >= TARGET and q.recall >= TARGET, q


@pytest.mark.parametrize("diagnosis", sorted(FLOORS))
def test_diagnoses_below_target_hold_their_floor(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    precision, recall = FLOORS[diagnosis]
    assert q.precision >= precision and q.recall >= recall, q


def test_false_alarms_on_clean_pictures(held_out) -> None:
    assert held_out[1] <= 0.02  # target 1 %: 0 % on this sample, 1.5 % on the bench's
