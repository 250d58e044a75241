"""Video-quality diagnosis of one camera check: the measures, their thresholds, the verdicts.

`diagnose(frames, reference, thresholds, decode_errors)` → `Diagnosis`: every score, and the
faults, in DIAGNOSES order. A fault hides the ones it makes meaningless (SUPPRESSED_BY), in
this precedence:
1. signal loss hides everything else but decoding errors (a "no video" screen is also dark,
   flat, frozen and one colour); a dark frame that still follows the reference scene is dark,
   not a lost signal (measures.signal_loss);
2. dark hides blur, occlusion, cast, noise and moved (nothing can be judged in the dark);
3. blur hides bright (fog and a dirty dome lift the blacks like glare, but soften the edges;
   glare leaves them sharp), and bright hides occlusion, frozen, cast and moved;
4. blur hides occlusion, cast and moved (a blurred scene is flat and unmatched everywhere);
5. occlusion hides cast and moved (the cover has its own colour and hides the features);
6. a view matched to the reference but displaced (moved < 1) hides the measures against the
   reference (DISPLACED_HIDES: occlusion, blur, cast): it is moved, not occluded.
A reference frame (measures.reference) makes blur, darkness, brightness, occlusion, colour
cast, signal loss and the moved camera relative to what this camera normally sees; without
one, moved is not judged and the others use absolute measures (weaker: docs/VQD.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from probes.vqd import measures
from probes.vqd.config import Thresholds
from probes.vqd.measures import Frame, Reference

DIAGNOSES = (
    "signal_loss", "dark", "bright", "blur", "occlusion", "frozen", "cast", "noise", "moved", "decode_errors",
)
_CANNOT_SEE = ("signal_loss", "dark", "bright")
SUPPRESSED_BY: Mapping[str, tuple[str, ...]] = {
    "signal_loss": (),
    "dark": ("signal_loss",),
    "bright": ("signal_loss", "blur"),  # fog lifts the blacks too; glare leaves edges sharp
    "blur": ("signal_loss", "dark"),
    "occlusion": (*_CANNOT_SEE, "blur"),
    "frozen": ("signal_loss", "bright"),  # a clipped white picture has no noise left to change
    "cast": (*_CANNOT_SEE, "blur", "occlusion"),
    "noise": ("signal_loss", "dark"),
    "moved": (*_CANNOT_SEE, "blur", "occlusion"),
    "decode_errors": (),
}
DISPLACED_HIDES = ("occlusion", "blur", "cast")
"""Judged against the reference frame: meaningless once the view is displaced (moved < 1)."""
TITLES = {
    "zh": {"signal_loss": "无信号", "dark": "画面过暗", "bright": "画面过亮", "blur": "画面模糊", "occlusion": "画面遮挡",
           "frozen": "画面冻结", "cast": "偏色", "noise": "画面噪声", "moved": "镜头移位", "decode_errors": "花屏卡顿"},
    "en": {"signal_loss": "no signal", "dark": "too dark", "bright": "too bright", "blur": "blurred",
           "occlusion": "occluded", "frozen": "frozen picture", "cast": "colour cast", "noise": "noisy",
           "moved": "camera moved", "decode_errors": "mosaic or stutter"},
}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """scores: diagnosis → score (larger is worse; `moved` absent without a reference,
    `decode_errors` absent when the decoder's report is unknown); faults: the diagnoses at or
    above their threshold and not suppressed, in DIAGNOSES order; width/height of the frames
    analysed (after scaling down)."""

    scores: Mapping[str, float]
    faults: tuple[str, ...]
    width: int
    height: int

    @property
    def ok(self) -> bool:
        return not self.faults


def scores(frames: list[Frame], reference: Reference | None, decode_errors: int | None = None) -> dict[str, float]:
    """Every score of the burst `frames` (the first is judged, the others show change)."""
    first = frames[0]
    out = {
        "signal_loss": measures.signal_loss(first, reference),
        "dark": measures.luma(first, reference),
        "bright": measures.bright(first, reference),
        "blur": measures.blur(first, reference),
        "occlusion": measures.low_texture_share(first, reference),
        "frozen": measures.frozen(frames),
        "cast": measures.colour_cast(first, reference),
        "noise": measures.noise(frames),
    }
    if reference is not None:
        out["moved"] = measures.moved(first, reference)
    if decode_errors is not None:
        out["decode_errors"] = float(decode_errors)
    return out


def judge(scores: Mapping[str, float], thresholds: Thresholds) -> tuple[str, ...]:
    """The faults: scores at or above their thresholds, minus the suppressed ones. One more
    rule for the moved camera: a view matched to the reference but displaced (moved < 1)
    makes the measures against the reference meaningless (DISPLACED_HIDES: blocks that lost
    their texture or changed colour show another part of the scene, a zoom softens the
    picture), so it is moved, not occluded, blurred or tinted; an unmatched view with a flat
    region is a cover."""
    raw = {name for name, score in scores.items() if score >= getattr(thresholds, name)}
    if "moved" in raw and scores["moved"] < 1.0:
        raw.difference_update(DISPLACED_HIDES)
    return tuple(n for n in DIAGNOSES if n in raw and not raw.intersection(SUPPRESSED_BY[n]))


def diagnose(
    images: list[np.ndarray], reference: Reference | None, thresholds: Thresholds, decode_errors: int | None = None,
) -> Diagnosis:
    """Diagnose a burst of decoded images (uint8 BGR or grey, seconds apart, at least one).
    Raises ValueError for no image or an image measures.prepare refuses."""
    if not images:
        raise ValueError("no frame to diagnose")
    frames = [measures.prepare(image) for image in images]
    if reference is not None and reference.frame.gray.shape != frames[0].gray.shape:
        reference = None  # the stream's resolution changed: the reference no longer applies
    found = scores(frames, reference, decode_errors)
    h, w = frames[0].gray.shape
    return Diagnosis({k: round(v, 4) for k, v in found.items()}, judge(found, thresholds), w, h)
