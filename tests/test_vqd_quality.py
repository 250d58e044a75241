"""Video-quality diagnosis on the held-out photographs of lab/vqd_data.py (HELD_OUT: never seen
when the thresholds were chosen), with the shipped default thresholds and the full verdict
(suppression included). A quality assertion, not a timing.

Issue 17's target is precision and recall ≥ 0.95 per diagnosis and ≤ 1 % false alarms on clean
pictures. This test scores 3 samples per label and photograph (390, seed 18); bench/vqd.py
scores 10 (1,300) and prints the table (docs/VQD.md). Every diagnosis meets the target in
the bench; here every one must too.
"""

from __future__ import annotations

import pytest

from lab.vqd_data import DEFECTS, HELD_OUT, quality, score_all
from probes.vqd.config import Thresholds

TARGET = 0.95


@pytest.fixture(scope="module")
def held_out():
    table, false_alarms = quality(score_all(HELD_OUT, 3, 18), Thresholds())
    return {q.diagnosis: q for q in table}, false_alarms


@pytest.mark.parametrize("diagnosis", DEFECTS)
def test_diagnoses_meet_the_target(held_out, diagnosis: str) -> None:
    q = held_out[0][diagnosis]
    assert q.precision >= TARGET and q.recall >= TARGET, q


def test_false_alarms_on_clean_pictures(held_out) -> None:
    # Target 1 %: none of 130 in the bench; with 39 clean samples here one would be 2.6 %.
    assert held_out[1] <= 0.01
