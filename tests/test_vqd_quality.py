"""Video-quality diagnosis on the held-out photographs of lab/vqd_data.py (HELD_OUT: never seen
when the thresholds were chosen), with the shipped default thresholds and the full verdict
(suppression included). A quality assertion, not a timing.

Issue 17's target is precision and recall ≥ 0.95 per diagnosis and ≤ 1 % false alarms on clean
pictures. This test scores 3 samples per label and photograph (390, seed 18); bench/vqd.py
scores 10 (1,300) and prints the table (docs/VQD.md). Where the bench is below target —
bright recall (a 3.5× gain on a scene dark by nature, a veil at its weakest), occlusion
(0.938/0.931) and cast precision (0.926) — the floors below hold what is measured on this
smaller sample so that a change cannot make it worse unnoticed.
"""

from __future__ import annotations

import pytest

from lab.vqd_data import DEFECTS, HELD_OUT, quality, score_all
from probes.vqd.config import Thresholds

TARGET = 0.95
# (precision, recall) floors where this sample is below target; measured 0.973/0.923 and 1.0/0.923.
FLOORS = {"occlusion": (0.95, 0.90), "bright": (0.95, 0.90)}


@pytest.fixture(scope="module")
def held_out():
    table, false_alarms = quality(score_all(HELD_OUT, 3, 18), Thresholds())
    return {q.diagnosis: q for q in table}, false_alarms


@pytest.mark.parametrize("diagnosis", [d for d in DEFECTS if d not in FLOORS])
def test_diagnoses_meeting_the_target(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    assert q.precision >= TARGET and q.recall >= TARGET, q


@pytest.mark.parametrize("diagnosis", sorted(FLOORS))
def test_diagnoses_below_target_hold_their_floor(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    precision, recall = FLOORS[diagnosis]
    assert q.precision >= precision and q.recall >= recall, q


def test_false_alarms_on_clean_pictures(held_out) -> None:
    # Target 1 %: 0.77 % (one of 130) in the bench; here one of 39 (a cast of 0.152 on
    # cv_street_2, threshold 0.141), which this sample cannot resolve below 2.6 %.
    assert held_out[1] <= 1 / 39
