"""Video-quality diagnosis on the held-out photographs of lab/vqd_data.py (astronaut, chelsea,
rocket, brick, gravel: never seen when the thresholds were chosen), with the shipped default
thresholds and the full verdict (suppression included). A quality assertion, not a timing.

Issue 17's target is precision and recall ≥ 0.95 per diagnosis and ≤ 1 % false alarms on clean
pictures. Met today: frozen, noise, moved, false alarms. Below target (measured, see
bench/vqd.py), held here as floors so a change cannot make them worse unnoticed: occlusion
recall, dark recall (near-black frames are read as a lost signal), bright recall, cast
precision (an occluder or glare shifts the grey world), signal_loss precision, blur precision.
"""

from __future__ import annotations

import pytest

from lab.vqd_data import HELD_OUT, quality, score_all
from probes.vqd.config import Thresholds

TARGET = 0.95
# (precision, recall) floors where the target is not met yet; measured 0.905/0.95, 1.0/0.725,
# 0.938/0.75, 1.0/0.75, 0.841/0.925, 0.8/1.0 on this seed.
FLOORS = {
    "blur": (0.90, 0.95), "occlusion": (0.95, 0.70), "dark": (0.90, 0.75), "bright": (0.95, 0.75),
    "cast": (0.80, 0.90), "signal_loss": (0.80, 0.95),
}


@pytest.fixture(scope="module")
def held_out():
    table, false_alarms = quality(score_all(HELD_OUT, 8, 18), Thresholds())
    return {q.diagnosis: q for q in table}, false_alarms


@pytest.mark.parametrize("diagnosis", ["frozen", "noise", "moved"])
def test_diagnoses_meeting_the_target(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    assert q.precision >= TARGET and q.recall >= TARGET, q


@pytest.mark.parametrize("diagnosis", sorted(FLOORS))
def test_diagnoses_below_target_hold_their_floor(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    precision, recall = FLOORS[diagnosis]
    assert q.precision >= precision and q.recall >= recall, q


def test_false_alarms_on_clean_pictures(held_out) -> None:
    assert held_out[1] <= 0.01
